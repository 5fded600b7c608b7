"""Thresholded "accuracy" of regression tasks (Omnigrok's student-teacher task).

A sample counts as correct when its mean squared error over the outputs is below
``SAMPLE_MSE_THRESHOLD`` (1e-3, as Liu et al. 2022 and FORMULAS.md). Paper 001, appendix 17,
shows why such accuracy can suggest grokking that the loss does not: read it next to the loss.
"""

from __future__ import annotations

import torch

from groklab.metrics.registry import MetricContext, register_metric

__all__ = ["SAMPLE_MSE_THRESHOLD", "sample_mse_accuracy"]

SAMPLE_MSE_THRESHOLD = 1e-3


@torch.no_grad()
def sample_mse_accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                        threshold: float = SAMPLE_MSE_THRESHOLD) -> float:
    """Fraction of rows of ``x`` whose per-sample MSE against float targets ``y`` is below ``threshold``."""
    out = model(x).reshape(len(y), -1)  # (N, n_outputs)
    per_sample = (out - y.reshape(len(y), -1)).pow(2).mean(1)  # (N,)
    return (per_sample < threshold).float().mean().item()


@register_metric("sample_mse_acc")
def sample_mse_acc(ctx: MetricContext) -> dict[str, float]:
    """``train_mse_acc`` / ``test_mse_acc``: fraction of samples with per-sample MSE < 1e-3
    (regression tasks only)."""
    if not ctx.train_y.is_floating_point():
        raise ValueError("sample_mse_acc needs a regression task (float targets)")
    was_training = ctx.model.training
    ctx.model.eval()
    values = {
        "train_mse_acc": sample_mse_accuracy(ctx.model, ctx.train_x, ctx.train_y),
        "test_mse_acc": sample_mse_accuracy(ctx.model, ctx.test_x, ctx.test_y),
    }
    ctx.model.train(was_training)
    return values
