"""The model protocol: what every groklab model exposes, so metrics and interventions never guess.

A model is an ``nn.Module`` with

``forward(x, cache=None)``
    ``x`` is what the task's :class:`~groklab.tasks.TaskData` holds: operand pairs ``(B, 2)``
    (long, ``input_kind == "pairs"``) or dense inputs ``(B, d)`` (float, ``"dense"``). It
    returns logits ``(B, C)`` or a regression output ``(B,)`` / ``(B, k)``. With ``cache=None``
    a model may take a fast path; given a dict, it records its named activations (its *hook
    points*, named as TransformerLens names them: ``"hidden"``, ``"blocks.0.mlp.hidden"``,
    ``"resid_final"``, ...) and always ``"logits"``.
``input_kind``
    ``"pairs"`` or ``"dense"``.
``n_operands``
    the operand vocabulary of a ``"pairs"`` model (None for ``"dense"``).
``embedding_hook``
    the hook point read as "the embedding" (paper 000's representation of a pair): ``"hidden"``
    for the MLP and the committee machine, ``"resid_final"`` for the transformer.
``one_hot(pairs)`` (optional)
    the dense input layer ``(B, 2 n_operands)`` of a ``"pairs"`` model that has one (the MLP).
    A model on token ids (the transformer) has none, so input-space quantities (perturbed
    inputs, input gradients) are undefined for it.

:class:`~groklab.models.laziness.Lazy` wraps a model ``net`` and exposes the same protocol
through :func:`unwrap`. The functions below are the only way metrics and interventions read
a model's inputs and activations.
"""

from __future__ import annotations

from typing import Literal, Optional, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from groklab.errors import GroklabError

__all__ = [
    "GroklabModel",
    "InputKind",
    "unwrap",
    "input_kind",
    "n_operands",
    "dense_inputs",
    "one_hot_pairs",
    "embedding",
    "embedding_from_cache",
    "hook_points",
]

InputKind = Literal["pairs", "dense"]


@runtime_checkable
class GroklabModel(Protocol):
    """The attributes every model declares (module docstring)."""

    input_kind: InputKind
    n_operands: Optional[int]
    embedding_hook: str

    def forward(self, x: Tensor, cache: Optional[dict] = None) -> Tensor: ...


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a :class:`~groklab.models.laziness.Lazy` wrapper (or the model)."""
    from groklab.models.laziness import Lazy  # same layer; late so the wrapper can import this module

    return model.net if isinstance(model, Lazy) else model


def input_kind(model: nn.Module) -> InputKind:
    """``"pairs"`` or ``"dense"``: what ``model`` reads."""
    return unwrap(model).input_kind


def n_operands(model: nn.Module) -> int:
    """How many distinct operands a ``"pairs"`` model reads (its input vocabulary)."""
    base = unwrap(model)
    if input_kind(base) != "pairs":
        raise GroklabError(f"{type(base).__name__} is not a model of a binary operation (it reads dense inputs)")
    return base.n_operands


def dense_inputs(model: nn.Module, pairs: Tensor) -> Optional[Tensor]:
    """The model's own dense encoding ``(B, d_in)`` of operand pairs ``(B, 2)``, or None for a
    model on token ids (no ``one_hot`` input layer)."""
    base = unwrap(model)
    return base.one_hot(pairs) if input_kind(base) == "pairs" and hasattr(base, "one_hot") else None


def one_hot_pairs(pairs: Tensor, n: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``one_hot(a) ++ one_hot(b)``, ``(B, 2 n)``: the input layer of any model on n operands."""
    return torch.cat([F.one_hot(pairs[:, 0], n), F.one_hot(pairs[:, 1], n)], 1).to(dtype)


def hook_points(model: nn.Module, x: Tensor) -> list[str]:
    """The names of the activations ``model(x, cache)`` records, sorted."""
    cache: dict = {}
    with torch.no_grad():
        model(x, cache)
    return sorted(cache)


def embedding(model: nn.Module, x: Tensor, key: Optional[str] = None) -> Tensor:
    """Activations ``(B, d)`` (flattened) that ``model(x, cache)`` records under ``key``;
    ``key=None`` reads the model's declared ``embedding_hook``."""
    cache: dict = {}
    model(x, cache)
    return embedding_from_cache(cache, len(x), key if key is not None else unwrap(model).embedding_hook)


def embedding_from_cache(cache: dict, n: int, key: str) -> Tensor:
    """The activation ``key`` ``(n, d)`` (flattened) from a cache a forward pass filled."""
    if key not in cache:
        raise GroklabError(f"the model records no activation '{key}'; it records {', '.join(sorted(cache))}")
    return cache[key].reshape(n, -1)
