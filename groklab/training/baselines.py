"""Baselines of a whole config, built as the loop builds its run (task, initial model)."""

from __future__ import annotations

import torch

from groklab.config import Config
from groklab.metrics.lazyrich import initial_kernel_regression
from groklab.models import build_model
from groklab.seeding import generator
from groklab.tasks import build_task

__all__ = ["ntk_regression_baseline"]


def ntk_regression_baseline(config: Config, device: str | torch.device = "cpu", ridge: float = 0.0) -> dict[str, float]:
    """Kernel regression with the initial empirical NTK of the model ``config`` trains, over its
    whole training set: :func:`~groklab.metrics.lazyrich.initial_kernel_regression` of the model
    and data the loop would build from (config, seed). The test error of a network that never
    leaves the lazy regime; returns ``ntk_kr.train_mse``, ``ntk_kr.test_mse``, ``ntk_kr.test_acc``."""
    data = build_task(config.task, config.seed)
    model_0 = build_model(config.model, data, generator(config.seed, "init"))
    tensors = {k: getattr(data, k) for k in ("train_x", "train_y", "test_x", "test_y")}
    return initial_kernel_regression(model_0, tensors, config.train.label_scale, device, ridge)
