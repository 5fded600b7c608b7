"""Interventions on training: perturbed inputs, regularisers, gradient filters (one file each).

Each is a config block under ``interventions.*``, off by default, and any combination can be
on at once::

    groklab run --set interventions.perturb.lambda1=0.5 --set interventions.grokfast.filter=ema

==============  ==============================  ============================================
block           turned on by                    hook
==============  ==============================  ============================================
``perturb``     ``lambda1`` or ``lambda2`` > 0  ``transform_batch``: noisy dense inputs
``mi``          ``weight`` > 0                  ``extra_loss``: ``- weight * I(x; logits)``
``abelian``     ``weight`` > 0                  ``extra_loss``: KL of f(a,b) and f(b,a)
``barlow``      ``weight`` > 0                  ``extra_loss``: Barlow Twins on one layer
``grokfast``    ``filter`` = ema or ma          ``after_backward``: amplify slow gradients
==============  ==============================  ============================================

The top-level block ``linearized`` (``enabled=true``) adds
:class:`~groklab.interventions.linearized.LinearizedCompanion`, which leaves the network's
training alone: it trains a linearised copy on the same batches and adds ``lin.*`` columns.

The loop sees only the :class:`~groklab.interventions.base.Interventions` composite that
:func:`build_interventions` returns (the protocol is in :mod:`groklab.interventions.base`).
A new intervention is one file: a :class:`~groklab.config.InterventionConfig` subclass for its
block and an :class:`Intervention` subclass decorated with
:func:`~groklab.interventions.base.register_intervention`; nothing here changes.
Random draws come from one generator per intervention, seeded from ``(seed, name)`` on the
training device, whose state is checkpointed with the intervention's buffers.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from groklab.config import Config
from groklab.interventions.abelian import AbelianRegulariser
from groklab.interventions.barlow import BarlowTwins, barlow_twins_loss
from groklab.interventions.base import (
    INTERVENTIONS,
    NO_INTERVENTIONS,
    Intervention,
    Interventions,
    Setup,
    register_intervention,
    swap_operands,
)
from groklab.interventions.grokfast import Grokfast
from groklab.interventions.linearized import LinearizedCompanion
from groklab.interventions.mi import MIRegulariser
from groklab.interventions.perturb import Perturb, perturb_sigma
from groklab.seeding import generator

__all__ = [
    "Intervention",
    "Interventions",
    "NO_INTERVENTIONS",
    "Perturb",
    "MIRegulariser",
    "AbelianRegulariser",
    "BarlowTwins",
    "Grokfast",
    "LinearizedCompanion",
    "build_interventions",
    "register_intervention",
    "Setup",
    "INTERVENTIONS",
    "perturb_sigma",
    "barlow_twins_loss",
    "swap_operands",
]


def build_interventions(
    config: Config, model: nn.Module, device: torch.device, data: Optional[dict[str, torch.Tensor]] = None
) -> Interventions:
    """The interventions ``config.interventions`` turns on, in a fixed order: the input
    perturbation first (the others see its batch), then the loss terms, then the filter; last
    the linearised companion (``config.linearized``), which steps on the final batch. Call it
    while ``model`` holds its initial parameters (the companion linearises around them).
    ``data`` (``train_x``, ``train_y``, ``test_x``, ``test_y`` on ``device``) is what the
    companion evaluates on (required with ``linearized.enabled``); the loop passes the tensors
    it trains on."""
    items: list[Intervention] = []
    for name, block in config.interventions.blocks().items():  # in their registered order
        if block.on:
            setup = Setup(model, device, generator(config.seed, f"interventions.{name}", device))
            items.append(INTERVENTIONS[name].build(block, setup))
    if config.linearized.on:
        if data is None:
            raise ValueError("the linearised companion evaluates on the run's data: pass data=")
        items.append(LinearizedCompanion(config, model, data))
    return Interventions(items)

