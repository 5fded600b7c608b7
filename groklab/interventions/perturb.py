"""Perturbed training (paper 000, section 3.2): Gaussian noise on the input of every step.

    x_step = one_hot(a) ++ one_hot(b) + sigma * eps,   eps ~ N(0, I)   (B, 2 n_operands)
    sigma  = max(lambda1 * (1 - train_acc), lambda2)

``train_acc`` is the training accuracy of the latest evaluation (the loop evaluates every
``train.eval_every`` steps on the clean training set, step 0 included), so sigma changes
only at evaluations and is recorded in the column ``perturb.sigma`` of that row. The paper
writes N(0, sigma I); we read sigma as the standard deviation.

A step with ``sigma == 0`` trains on the unchanged index pairs and draws no noise, so a run
whose sigma is 0 is exactly the unperturbed run. Only models with a dense one-hot encoder
(``one_hot(pairs)``, the MLP) can be perturbed; the config rejects the transformer.
"""

from __future__ import annotations

import torch

from pydantic import Field

from groklab.config import InterventionConfig
from groklab.errors import GroklabError
from groklab.interventions.base import Intervention, register_intervention
from groklab.models.protocol import dense_inputs

__all__ = ["Perturb", "perturb_sigma"]


def perturb_sigma(lambda1: float, lambda2: float, train_acc: float) -> float:
    """``max(lambda1 * (1 - train_acc), lambda2)``."""
    return max(lambda1 * (1.0 - train_acc), lambda2)


class PerturbConfig(InterventionConfig):
    """Perturbed training (paper 000, section 3.2): the dense one-hot input of every training
    step gets Gaussian noise of standard deviation ``sigma = max(lambda1 * (1 - train_acc),
    lambda2)`` per coordinate, where ``train_acc`` is the training accuracy of the latest
    evaluation (every ``train.eval_every`` steps, on the clean training set). The paper writes
    the noise as N(0, sigma I); we read sigma as the standard deviation. On when either lambda
    is positive; MLP only (the transformer reads token ids, which cannot be perturbed)."""

    lambda1: float = Field(0.0, ge=0, description="noise scale times the training error")
    lambda2: float = Field(0.0, ge=0, description="noise floor")

    @property
    def on(self) -> bool:
        return self.lambda1 > 0 or self.lambda2 > 0

    def check(self, config) -> None:
        self.require_dense_inputs(config, "interventions.perturb", "use model.name='mlp'")


@register_intervention(PerturbConfig, order=0, draws_random=True)
class Perturb(Intervention):
    """``interventions.perturb``: adds Gaussian noise of :attr:`sigma` (from the last evaluation's
    train accuracy) to the dense inputs of every training batch."""

    name = "perturb"

    def __init__(self, cfg: PerturbConfig, generator: torch.Generator):
        self.lambda1, self.lambda2 = cfg.lambda1, cfg.lambda2
        self.generator = generator  # on the training device: noise never crosses to the host
        self.train_acc = 0.0  # replaced by the step-0 evaluation before the first step

    @property
    def sigma(self) -> float:
        """The noise's standard deviation now: ``max(lambda1 (1 - train acc), lambda2)``."""
        return perturb_sigma(self.lambda1, self.lambda2, self.train_acc)

    def transform_batch(self, model, x, y):
        sigma = self.sigma
        if sigma == 0.0:
            return x, y
        dense = x if torch.is_floating_point(x) else dense_inputs(model, x)  # (B, 2 n_operands)
        if dense is None:
            raise GroklabError(
                f"interventions.perturb needs a model with dense inputs; {type(model).__name__} has none"
            )
        noise = torch.randn(dense.shape, generator=self.generator, device=dense.device, dtype=dense.dtype)
        return dense + sigma * noise, y

    def on_evaluate(self, row):
        self.train_acc = float(row["train_acc"])
        return {"perturb.sigma": self.sigma}

    def state(self):
        return {"generator": self.generator.get_state()}, {"train_acc": self.train_acc}

    def load_state(self, tensors, meta):
        self.generator.set_state(tensors["generator"])
        self.train_acc = meta["train_acc"]
