"""Scheduled metrics: named functions of (model, data) that the loop runs at its evaluations.

A metric never trains and never writes files: it receives a :class:`MetricContext` and
returns ``{column: value}``; the loop puts the values in ``metrics.parquet``. Register one
with ``@register_metric("name", cost=...)`` and ask for it with
``--set eval.metrics='["name"]'``.

Schedule. The loop hands every evaluation (every ``train.eval_every`` steps, and the last
step) to :func:`compute_metrics`, which runs the metrics :func:`due_metrics` says are due:

* ``eval.metrics_every = N`` (explicit): every metric at the steps divisible by ``N``.
* ``eval.metrics_every = null`` (the default): each metric by its registered cost class.
  ``"cheap"`` metrics (about one forward pass over the data, e.g. ``layer_norms``,
  ``sample_mse_acc``; the class of a metric registered without one) run at every evaluation.
  ``"expensive"`` ones (Hessian-vector products, n x n eigendecompositions, all-pairs searches)
  run at log-spaced evaluations: step 0, the last step, and the first evaluation in each bin
  ``[10^(k/K), 10^((k+1)/K))`` of steps, ``K = eval.metrics_per_decade`` -- every evaluation
  early on, about K per decade later, which is what a log-step plot shows evenly. For
  ``mlp-add`` (3000 steps, evaluations every 20, K = 10) that is 21 of its 151 evaluations:
  0, 20, 40, 60, 80, 100, 140, 160, 200, 260, 320, 400, 520, 640, 800, 1000, 1260, 1600,
  2000, 2520, 3000.

The schedule is a function of (config, step) only, so a resumed run computes the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
from torch import nn

from groklab.config import Config
from groklab.errors import GroklabError

__all__ = [
    "MetricContext",
    "METRICS",
    "METRIC_COSTS",
    "COST_CLASSES",
    "register_metric",
    "check_metric_names",
    "is_evaluation_step",
    "log_spaced_due",
    "metric_due",
    "due_metrics",
    "compute_metrics",
]


@dataclass(frozen=True)
class MetricContext:
    """Everything a scheduled metric may look at, handed over by the loop, so a metric never
    rebuilds the task or the model and never imports the trainer.

    ``model`` is the network being trained (``groklab.models.protocol``); ``train_x`` ...
    ``test_y`` the data on the training device; ``task`` the task's
    :class:`~groklab.tasks.TaskData` (its operation ``table``, ``target_directions``, ...);
    ``objective(logits, labels)`` the training loss; ``initial_model()`` the model at its
    initialisation (built on first call, then the same object for the whole run, on the
    CPU). ``generator`` is seeded from (seed, step), so a stochastic metric gives the same
    value in a resumed run. ``shared`` lets metrics of one evaluation share an intermediate
    result (e.g. the Hessian trace of ``sharpness`` and ``robustness``); it lives as long as
    the context, i.e. one evaluation."""

    model: nn.Module
    config: Config
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    step: int
    generator: torch.Generator
    task: Any
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    initial_model: Callable[[], nn.Module]
    shared: dict = field(default_factory=dict, compare=False, repr=False)

    def shared_value(self, key: str, compute: Callable[[], object]):
        """``compute()`` the first time ``key`` is asked for in this evaluation, the cached value after."""
        if key not in self.shared:
            self.shared[key] = compute()
        return self.shared[key]


Cost = Literal["cheap", "expensive"]
COST_CLASSES: tuple[str, ...] = ("cheap", "expensive")
MetricFn = Callable[[MetricContext], dict[str, float]]
METRICS: dict[str, MetricFn] = {}
METRIC_COSTS: dict[str, str] = {}


def register_metric(name: str, cost: Cost = "cheap") -> Callable[[MetricFn], MetricFn]:
    """Decorator adding a metric function to the registry under ``name``.

    ``cost`` picks its default cadence (module docstring): ``"cheap"`` = every evaluation,
    ``"expensive"`` = log-spaced evaluations.
    """
    if cost not in COST_CLASSES:
        raise ValueError(f"cost must be one of {COST_CLASSES}, got {cost!r}")

    def add(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        METRIC_COSTS[name] = cost
        return fn

    return add


def check_metric_names(names) -> None:
    """Raise :class:`GroklabError` for a name that is not registered."""
    for name in names:
        if name not in METRICS:
            raise GroklabError(f"eval.metrics: unknown metric '{name}'; available: {', '.join(sorted(METRICS))}")


def is_evaluation_step(step: int, config: Config) -> bool:
    """Whether the loop evaluates at ``step``: every ``train.eval_every`` steps and at the last."""
    return step % config.train.eval_every == 0 or step == config.train.steps


def _log_bin(step: int, per_decade: int) -> float:
    """Index of the log bin ``[10^(k/K), 10^((k+1)/K))`` holding ``step`` (-inf for step 0).
    The tiny offset keeps exact powers of ten in their own bin despite rounding."""
    return -math.inf if step <= 0 else math.floor(per_decade * math.log10(step) + 1e-9)


def log_spaced_due(step: int, eval_every: int, last_step: int, per_decade: int) -> bool:
    """Whether evaluation ``step`` is on the log-spaced schedule: step 0, ``last_step``, or the
    first evaluation (multiple of ``eval_every``) in its bin of ``per_decade`` bins per decade."""
    if step == 0 or step == last_step:
        return True
    previous = (step - 1) // eval_every * eval_every  # the evaluation before this one
    return _log_bin(step, per_decade) > _log_bin(previous, per_decade)


def metric_due(name: str, step: int, config: Config) -> bool:
    """Whether metric ``name`` is due at ``step`` under ``config``'s schedule (module docstring)."""
    ev, t = config.eval, config.train
    if ev.metrics_every is not None:
        return step % ev.metrics_every == 0
    if not is_evaluation_step(step, config):
        return False
    if METRIC_COSTS.get(name, "cheap") == "cheap":
        return True
    return log_spaced_due(step, t.eval_every, t.steps, ev.metrics_per_decade)


def due_metrics(config: Config, step: int) -> tuple[str, ...]:
    """The names of ``config.eval.metrics`` due at ``step``, in their configured order."""
    return tuple(name for name in config.eval.metrics if metric_due(name, step, config))


def compute_metrics(names, ctx: MetricContext, scheduled: bool = True) -> dict[str, float]:
    """Run the named metrics and merge their columns. With ``scheduled`` (what the loop asks
    for at each evaluation) only those due at ``ctx.step`` under ``ctx.config`` run."""
    out: dict[str, float] = {}
    for name in names:
        if scheduled and not metric_due(name, ctx.step, ctx.config):
            continue
        out.update({k: float(v) for k, v in METRICS[name](ctx).items()})
    return out


@register_metric("layer_norms")
def layer_norms(ctx: MetricContext) -> dict[str, float]:
    """l2 norm of every trainable parameter tensor, as columns ``norm.<name>``."""
    return {f"norm.{name}": p.detach().norm().item() for name, p in ctx.model.named_parameters()}
