"""Metrics: pure functions of (model, data) -> numbers, and the scheduled ones registered by
name (:mod:`groklab.metrics.registry`). Importing the package registers them all."""

from groklab.metrics import registry, robustness  # noqa: F401  (robustness registers paper 000's metrics)
from groklab.metrics import regression  # noqa: F401,E402  (sample_mse_acc for regression tasks)
from groklab.metrics import lazyrich  # noqa: F401,E402  (registers toy_stats, alignment, laziness)
