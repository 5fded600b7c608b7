"""The protocol the training loop calls, and the composite that runs several interventions.

One training step with interventions is::

    x, y   = transform_batch(model, x, y)          # e.g. noisy dense inputs
    logits = model(x)
    loss   = objective(logits, y) + extra_loss(model, x, y, logits)   # regularisers
    loss.backward()
    after_backward(model)                           # e.g. gradient filters
    optimizer.step()

and after every evaluation the loop calls ``on_evaluate(row)``, which may read the row
(e.g. the training accuracy) and return extra columns for it. An intervention overrides only
the hooks it needs; the defaults do nothing. It never writes files: its state (generators,
buffers) goes into the run's checkpoints through :meth:`Intervention.state` and comes back
through :meth:`Intervention.load_state`, so a resumed run is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import torch
from torch import Tensor, nn

from groklab.config import InterventionConfig, register_intervention_block

__all__ = [
    "Intervention",
    "Interventions",
    "NO_INTERVENTIONS",
    "INTERVENTIONS",
    "Setup",
    "register_intervention",
    "swap_operands",
]


@dataclass(frozen=True)
class Setup:
    """What an intervention is built from: the model (still at its initial parameters), the
    training device, and the intervention's own generator (seeded from (seed, its name), on
    the device; its state goes into checkpoints)."""

    model: nn.Module
    device: torch.device
    generator: torch.Generator


class Intervention:
    """Base class: every hook is a no-op. ``name`` prefixes checkpoint keys and names the
    config block ``interventions.<name>`` of a registered intervention."""

    name = "intervention"
    draws_random = False  # whether the constructor takes the intervention's generator

    @classmethod
    def build(cls, block: InterventionConfig, setup: Setup) -> "Intervention":
        """The intervention its (switched on) config block describes: ``cls(block)``, or
        ``cls(block, generator)`` when it ``draws_random``."""
        return cls(block, setup.generator) if cls.draws_random else cls(block)

    def transform_batch(self, model: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The batch the model trains on this step (``x`` pairs ``(B, 2)`` or dense ``(B, d)``)."""
        return x, y

    def extra_loss(self, model: nn.Module, x: Tensor, y: Tensor, logits: Tensor) -> Optional[Tensor]:
        """A term added to the training loss (None: nothing). ``logits = model(x)``, in the graph."""
        return None

    def after_backward(self, model: nn.Module) -> None:
        """Edit ``p.grad`` in place after backward, before the optimiser step."""

    def on_evaluate(self, row: dict[str, float]) -> dict[str, float]:
        """Called with each evaluated metrics row; returns extra columns for it."""
        return {}

    def state(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Tensors (for safetensors) and JSON metadata that resume needs."""
        return {}, {}

    def load_state(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state`."""


class Interventions(Intervention):
    """Several interventions applied in order: batch transforms chain, losses add up,
    gradient edits run one after the other."""

    name = "interventions"

    def __init__(self, items: Iterable[Intervention] = ()):
        self.items = list(items)
        names = [it.name for it in self.items]
        if len(set(names)) != len(names):
            raise ValueError(f"intervention names must be unique, got {names}")

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def transform_batch(self, model, x, y):
        for it in self.items:
            x, y = it.transform_batch(model, x, y)
        return x, y

    def extra_loss(self, model, x, y, logits):
        total = None
        for it in self.items:
            term = it.extra_loss(model, x, y, logits)
            if term is not None:
                total = term if total is None else total + term
        return total

    def after_backward(self, model):
        for it in self.items:
            it.after_backward(model)

    def on_evaluate(self, row):
        columns: dict[str, float] = {}
        for it in self.items:
            columns.update(it.on_evaluate(row))
        return columns

    def state(self):
        tensors, meta = {}, {}
        for it in self.items:
            t, m = it.state()
            tensors.update({f"interventions.{it.name}.{k}": v for k, v in t.items()})
            meta[it.name] = m
        return tensors, meta

    def load_state(self, tensors, meta):
        for it in self.items:
            prefix = f"interventions.{it.name}."
            mine = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            it.load_state(mine, meta.get(it.name, {}))


NO_INTERVENTIONS = Interventions()

INTERVENTIONS: dict[str, type[Intervention]] = {}


def register_intervention(config: type[InterventionConfig], order: float,
                          draws_random: bool = False) -> Callable[[type], type]:
    """Class decorator: the intervention runs when its block ``interventions.<cls.name>`` (of
    class ``config``) is on. Interventions run in increasing ``order`` (input transforms
    first, then loss terms, then gradient filters), which is also the order of their blocks
    in ``config.json``. ``draws_random``: the constructor takes the intervention's generator
    (``cls(block, generator)``). One file with a config class and a decorated class adds an
    intervention."""

    def add(cls: type[Intervention]) -> type[Intervention]:
        cls.draws_random = draws_random
        register_intervention_block(cls.name, config, order)
        INTERVENTIONS[cls.name] = cls
        return cls

    return add


def swap_operands(x: Tensor) -> Tensor:
    """``(a, b) -> (b, a)``: swaps the columns of pairs ``(B, 2)`` or the two halves of dense
    inputs ``(B, 2 n)`` (``one_hot(a) ++ one_hot(b)``, noise included)."""
    if not torch.is_floating_point(x):
        return x.flip(1)
    half = x.shape[1] // 2
    return torch.cat([x[:, half:], x[:, :half]], 1)
