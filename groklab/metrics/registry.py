"""Scheduled metrics: named functions of (model, data) run every ``eval.metrics_every`` steps.

A metric never trains and never writes files: it receives a :class:`MetricContext` and
returns ``{column: value}``; the loop puts the values in ``metrics.parquet``. Register one
with ``@register_metric("name")`` and ask for it with ``--set eval.metrics='["name"]'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from groklab.config import Config
from groklab.errors import GroklabError

__all__ = ["MetricContext", "METRICS", "register_metric", "check_metric_names", "compute_metrics"]


@dataclass(frozen=True)
class MetricContext:
    """What a scheduled metric may look at. ``generator`` is seeded from (seed, step), so a
    stochastic metric gives the same value in a resumed run."""

    model: nn.Module
    config: Config
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    step: int
    generator: torch.Generator


MetricFn = Callable[[MetricContext], dict[str, float]]
METRICS: dict[str, MetricFn] = {}


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator adding a metric function to the registry under ``name``."""

    def add(fn: MetricFn) -> MetricFn:
        METRICS[name] = fn
        return fn

    return add


def check_metric_names(names) -> None:
    """Raise :class:`GroklabError` for a name that is not registered."""
    for name in names:
        if name not in METRICS:
            raise GroklabError(f"eval.metrics: unknown metric '{name}'; available: {', '.join(sorted(METRICS))}")


def compute_metrics(names, ctx: MetricContext) -> dict[str, float]:
    """Run the named metrics and merge their columns."""
    out: dict[str, float] = {}
    for name in names:
        out.update({k: float(v) for k, v in METRICS[name](ctx).items()})
    return out


@register_metric("layer_norms")
def layer_norms(ctx: MetricContext) -> dict[str, float]:
    """l2 norm of every trainable parameter tensor, as columns ``norm.<name>``."""
    return {f"norm.{name}": p.detach().norm().item() for name, p in ctx.model.named_parameters()}
