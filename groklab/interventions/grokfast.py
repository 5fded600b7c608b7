"""Grokfast gradient filters (Lee et al. 2024, "Grokfast: accelerated grokking by amplifying
slow gradients"), applied after backward and before the optimiser step:

    grad <- grad + lamb * filtered

``ema``: ``filtered_1 = g_1``, ``filtered_t = alpha * filtered_{t-1} + (1 - alpha) * g_t``
(their ``gradfilter_ema``). ``ma``: the mean of the last ``window`` gradients, applied only
once ``window`` gradients have been seen when ``warmup`` (their ``gradfilter_ma`` with
``filter_type='mean'``). Filters are per parameter, keyed by name; parameters without a
gradient are left alone. EMA buffers and the MA window are checkpointed.
"""

from __future__ import annotations

from typing import Literal

import torch

from pydantic import Field

from groklab.config import InterventionConfig
from groklab.interventions.base import Intervention, register_intervention

__all__ = ["Grokfast"]


class GrokfastConfig(InterventionConfig):
    """Grokfast gradient filters (Lee et al. 2024), applied after backward, before the update:
    ``grad <- grad + lamb * filtered(grad)``. ``ema``: ``filtered = alpha * filtered +
    (1 - alpha) * grad`` (started at the first gradient); ``ma``: the mean of the last ``window``
    gradients, applied only once the window is full when ``warmup``. Lee et al. use
    ``alpha=0.98, lamb=2`` (EMA) and ``window=100, lamb=5`` (MA)."""

    filter: Literal["none", "ema", "ma"] = "none"
    lamb: float = Field(2.0, ge=0)
    alpha: float = Field(0.98, ge=0, lt=1)
    window: int = Field(100, ge=1)
    warmup: bool = True

    @property
    def on(self) -> bool:
        return self.filter != "none"


@register_intervention(GrokfastConfig, order=4)
class Grokfast(Intervention):
    """``interventions.grokfast``: after each backward pass adds ``lamb`` times a low-pass filter
    (EMA or windowed mean) of each parameter's past gradients to its gradient."""

    name = "grokfast"

    def __init__(self, cfg: GrokfastConfig):
        self.kind, self.lamb, self.alpha = cfg.filter, cfg.lamb, cfg.alpha
        self.window, self.warmup = cfg.window, cfg.warmup
        self.buffers: dict[str, torch.Tensor] = {}  # ema: (*shape); ma: ring buffer (window, *shape)
        self.counts: dict[str, int] = {}  # ma: gradients seen per parameter

    @torch.no_grad()
    def after_backward(self, model):
        for name, p in model.named_parameters():
            if p.grad is not None and self._update(name, p.grad):
                p.grad.add_(self._filtered(name), alpha=self.lamb)

    def _update(self, name: str, grad: torch.Tensor) -> bool:
        """Feed ``grad`` to the filter; returns whether the filtered gradient is to be applied."""
        buf = self.buffers.get(name)
        if buf is not None and buf.device != grad.device:  # restored from a checkpoint on the host
            buf = self.buffers[name] = buf.to(grad.device)
        if self.kind == "ema":
            if buf is None:
                self.buffers[name] = grad.detach().clone()
            else:
                buf.mul_(self.alpha).add_(grad, alpha=1 - self.alpha)
            return True
        if buf is None:
            buf = self.buffers[name] = torch.zeros((self.window, *grad.shape), dtype=grad.dtype, device=grad.device)
        count = self.counts.get(name, 0)
        buf[count % self.window] = grad
        self.counts[name] = count + 1
        return not self.warmup or count + 1 >= self.window

    def _filtered(self, name: str) -> torch.Tensor:
        if self.kind == "ema":
            return self.buffers[name]
        return self.buffers[name][: min(self.counts[name], self.window)].mean(0)

    def state(self):
        return dict(self.buffers), {"counts": dict(self.counts)}

    def load_state(self, tensors, meta):
        self.buffers = {k: v.clone() for k, v in tensors.items()}
        self.counts = dict(meta.get("counts", {}))
