"""MI-regularised training (paper 000, section 4.3): maximise the matrix mutual information
between the input layer and the logit layer of each batch.

    loss += - weight * I_a(gram(x), gram(logits))

``x`` is the batch's input layer: the one-hot pair encoding ``one_hot(a) ++ one_hot(b)``
(for any model), or the dense noisy inputs when perturbed training is on as well (the paper
uses sigma = 0). ``I_a`` is :func:`groklab.metrics.matrix_info.mutual_information` (order
``a``, von Neumann for 1); the gradient flows through the logits. Its cost is an eigvalsh of
at most ``max_samples`` x ``max_samples``, so larger batches are subsampled, afresh each step,
from the intervention's own generator. A batch whose logits are all zero (a centred lazy
model at initialisation) has no logit Gram matrix and gets no MI term.
"""

from __future__ import annotations

from typing import Optional

import torch

from pydantic import Field

from groklab.config import WeightedConfig
from groklab.interventions.base import Intervention, register_intervention
from groklab.metrics.matrix_info import mutual_information
from groklab.models.protocol import n_operands, one_hot_pairs

__all__ = ["MIRegulariser"]


class MIConfig(WeightedConfig):
    """MI-regularised training (paper 000, section 4.3): the loss gets ``- weight * I(R_x; R_f)``,
    the matrix mutual information between the Gram matrices of the (one-hot, possibly perturbed)
    inputs and of the logits of the batch, so minimising the loss maximises the information."""

    order: float = Field(1.0, gt=0, description="matrix Renyi order (1 = von Neumann)")
    max_samples: Optional[int] = Field(
        512, ge=2, description="at most this many rows of each batch, drawn afresh each step; null = all"
    )


@register_intervention(MIConfig, order=1, draws_random=True)
class MIRegulariser(Intervention):
    """``interventions.mi``: subtracts ``weight`` times the matrix mutual information between
    the batch's inputs and logits from the loss (on at most ``max_samples`` rows)."""

    name = "mi"

    def __init__(self, cfg: MIConfig, generator: torch.Generator):
        self.weight, self.order = cfg.weight, cfg.order
        self.max_samples: Optional[int] = cfg.max_samples
        self.generator = generator

    def extra_loss(self, model, x, y, logits):
        if not bool(logits.detach().abs().amax() > 0):
            return None  # all-zero logits (a centred lazy model at init): no Gram matrix, no MI
        inputs = x if torch.is_floating_point(x) else one_hot_pairs(x, n_operands(model), logits.dtype)  # (B, d_in)
        if self.max_samples is not None and len(x) > self.max_samples:
            rows = torch.randperm(len(x), generator=self.generator, device=self.generator.device)[: self.max_samples]
            rows = rows.to(x.device)
            inputs, logits = inputs[rows], logits[rows]
        return -self.weight * mutual_information(inputs, logits, self.order)

    def state(self):
        return {"generator": self.generator.get_state()}, {}

    def load_state(self, tensors, meta):
        self.generator.set_state(tensors["generator"])
