"""Metrics: pure functions of (model, data) -> numbers, and the scheduled ones registered by
name (:mod:`groklab.metrics.registry`). Importing the package registers them all."""

from groklab.metrics import registry, robustness  # noqa: F401  (robustness registers paper 000's metrics)
