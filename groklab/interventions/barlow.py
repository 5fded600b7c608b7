"""Barlow Twins regulariser (Zbontar et al. 2021; paper 000, Fig. 14) on one named layer.

Two views of the batch go through the model: the batch itself and either a copy with
Gaussian input noise (``view='noise'``: ``x + sigma * eps`` on the dense one-hot inputs, MLP
only) or the operand-swapped batch (``view='swap'``: (b, a), which a model of an abelian
operation should represent like (a, b)). With ``z1, z2`` the activations ``(B, d)`` of
``layer`` (from the model's ``cache``), each standardised over the batch, and
``C = z1^T z2 / B`` (d x d) their cross-correlation:

    loss += weight * [ sum_i (1 - C_ii)^2 + off_diagonal * sum_{i != j} C_ij^2 ] / d

i.e. Zbontar et al.'s loss divided by the width ``d``, so a weight carries over between
widths. Features constant over the batch (dead units) are standardised with an epsilon and
contribute a constant. Both views cost one forward pass each through the cache path.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import Tensor

from pydantic import Field

from groklab.config import WeightedConfig
from groklab.errors import GroklabError
from groklab.interventions.base import Intervention, Setup, register_intervention, swap_operands
from groklab.models.protocol import dense_inputs, embedding

__all__ = ["BarlowTwins", "barlow_twins_loss"]


def barlow_twins_loss(z1: Tensor, z2: Tensor, off_diagonal: float, eps: float = 1e-5) -> Tensor:
    """``[sum_i (1 - C_ii)^2 + off_diagonal * sum_{i != j} C_ij^2] / d`` for ``(B, d)`` views."""
    n, d = z1.shape
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1.T @ z2 / n  # (d, d)
    diag = torch.diagonal(c)
    on = (1 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return (on + off_diagonal * off) / d


class BarlowConfig(WeightedConfig):
    """Barlow Twins regulariser (Zbontar et al. 2021; paper 000, Fig. 14) between the activations
    of ``layer`` on two views of the batch: the batch itself and a copy with Gaussian input noise
    of standard deviation ``sigma`` (``view='noise'``, MLP only) or with the operands swapped
    (``view='swap'``, any model). The loss is ``weight`` times ``sum_i (1 - C_ii)^2 +
    off_diagonal * sum_{i != j} C_ij^2``, divided by the width ``d``, for the cross-correlation
    ``C`` (d x d) of the batch-standardised activations."""

    layer: Optional[str] = Field(None, description="cache key; null = 'hidden' (MLP) or 'resid_final' (transformer)")
    view: Literal["noise", "swap"] = "noise"
    sigma: float = Field(0.1, ge=0, description="input noise of the second view (view='noise')")
    off_diagonal: float = Field(5e-3, ge=0, description="weight of the redundancy-reduction term")

    def check(self, config) -> None:
        if self.view == "noise":
            self.require_dense_inputs(config, "interventions.barlow.view='noise'", "use interventions.barlow.view='swap'")


@register_intervention(BarlowConfig, order=3, draws_random=True)
class BarlowTwins(Intervention):
    """``interventions.barlow``: adds the Barlow Twins loss between the activations at ``layer``
    of each batch and of its second view (swapped operands, or inputs plus Gaussian noise)."""

    name = "barlow"

    @classmethod
    def build(cls, block: BarlowConfig, setup: Setup) -> "BarlowTwins":
        try:  # fail before training if the model records no activation `layer`
            with torch.no_grad():
                embedding(setup.model, torch.zeros(1, 2, dtype=torch.long, device=setup.device), block.layer)
        except GroklabError as e:
            raise GroklabError(f"interventions.barlow.layer: {e}") from None
        return super().build(block, setup)

    def __init__(self, cfg: BarlowConfig, generator: torch.Generator):
        self.weight, self.view, self.sigma, self.off_diagonal = cfg.weight, cfg.view, cfg.sigma, cfg.off_diagonal
        self.layer: Optional[str] = cfg.layer
        self.generator = generator

    def _second_view(self, model, x: Tensor) -> Tensor:
        if self.view == "swap":
            return swap_operands(x)
        dense = x if torch.is_floating_point(x) else dense_inputs(model, x)  # (B, 2 n_operands)
        if dense is None:
            raise GroklabError("interventions.barlow.view='noise' needs a model with dense inputs; use view='swap'")
        noise = torch.randn(dense.shape, generator=self.generator, device=dense.device, dtype=dense.dtype)
        return dense + self.sigma * noise

    def extra_loss(self, model, x, y, logits):
        z1 = embedding(model, x, self.layer)  # (B, d)
        z2 = embedding(model, self._second_view(model, x), self.layer)
        return self.weight * barlow_twins_loss(z1, z2, self.off_diagonal)

    def state(self):
        return {"generator": self.generator.get_state()}, {}

    def load_state(self, tensors, meta):
        self.generator.set_state(tensors["generator"])
