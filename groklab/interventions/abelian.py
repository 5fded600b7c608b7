"""Commutativity loss (paper 000, Fig. 10): pull the predictions for (a, b) and (b, a) together.

    loss += weight * abelian_loss(model(a, b), model(b, a))

with :func:`groklab.metrics.group_laws.abelian_loss` (the symmetrised KL divergence of the two
predictive distributions). The swapped batch costs one extra forward pass; both orders get
gradient. With perturbed training on, the swapped batch carries the same noise, swapped.
"""

from __future__ import annotations

from groklab.config import WeightedConfig
from groklab.interventions.base import Intervention, register_intervention, swap_operands
from groklab.metrics.group_laws import abelian_loss

__all__ = ["AbelianRegulariser"]


class AbelianConfig(WeightedConfig):
    """Commutativity loss (paper 000, Fig. 10): ``weight`` times the symmetrised KL divergence
    between the predictions for ``(a, b)`` and ``(b, a)`` on every training batch."""


@register_intervention(AbelianConfig, order=2)
class AbelianRegulariser(Intervention):
    """``interventions.abelian``: adds :class:`AbelianConfig`'s commutativity loss to every training batch."""

    name = "abelian"

    def __init__(self, cfg: AbelianConfig):
        self.weight = cfg.weight

    def extra_loss(self, model, x, y, logits):
        return self.weight * abelian_loss(logits, model(swap_operands(x)))
