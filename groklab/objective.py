"""Losses and accuracy: the one place the training objective is defined.

A leaf helper (see the layers in the README): any layer may import it, it imports no other
groklab module. :func:`training_objective` is the one loss wrapper; the trainer, the scheduled metrics
(through :attr:`MetricContext.objective <groklab.metrics.registry.MetricContext>`) and the
linearised companion all use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from typing import Callable

__all__ = ["loss_fn", "mse_target", "accuracy", "training_objective", "Objective"]

Objective = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_fn(logits: torch.Tensor, labels: torch.Tensor, kind: str, label_scale: float = 1.0) -> torch.Tensor:
    """Mean loss of ``logits`` (B, C) against integer ``labels`` (B,), or of a regression
    output (B, k) against float targets (B,) or (B, k).

    ``cross_entropy``: the usual softmax cross-entropy. ``mse``: squared error against
    ``label_scale`` times the one-hot target (or the float target), averaged over all
    entries (paper 001's convention; paper 000's 1/(2n) sum |f - y|^2 is C/2 times this).
    """
    if labels.is_floating_point() and kind != "mse":
        raise ValueError("regression targets need train.loss='mse'")
    if kind == "cross_entropy":
        return F.cross_entropy(logits, labels)
    return F.mse_loss(logits, mse_target(labels, logits, label_scale))


def mse_target(labels: torch.Tensor, like: torch.Tensor, label_scale: float = 1.0) -> torch.Tensor:
    """What an MSE output shaped ``like`` is compared with: ``label_scale`` times the one-hot of
    integer ``labels`` (B,) in ``like``'s dtype, or times float targets reshaped to ``like``."""
    if labels.is_floating_point():
        return labels.reshape(like.shape) * label_scale
    # one-hot by comparison, not F.one_hot, which reads the labels' values and so cannot run
    # under vmap (ensembles of MSE runs)
    classes = torch.arange(like.shape[-1], device=labels.device)
    return (labels.unsqueeze(-1) == classes).to(like.dtype) * label_scale  # (B, C)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose argmax is the label, as a 0-dim tensor (no host sync);
    NaN for regression targets, which have no accuracy."""
    if labels.is_floating_point():
        return torch.full((), float("nan"), device=logits.device)
    return (logits.argmax(-1) == labels).float().mean()


def training_objective(kind: str, label_scale: float = 1.0) -> Objective:
    """``loss(logits, labels)`` of :func:`loss_fn` with the run's ``train.loss`` and
    ``train.label_scale`` bound: the training objective as one callable."""

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits, labels, kind, label_scale)

    return loss
