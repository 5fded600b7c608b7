"""Binary-operation tables: modular arithmetic (Power et al. 2022) and composition in S_n.

Every task is the full table of ``a . b`` for operands in ``range(n_operands)``; a run trains
on a seeded random fraction of its pairs and tests on the rest. Models receive the pair of
operand indices ``(B, 2)`` and decide their own encoding (one-hot rows for an MLP, tokens
``a op b =`` for a transformer), so tasks know nothing about models.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable, Literal, Optional

import numpy as np
import torch

from pydantic import Field, field_validator, model_validator

from groklab.config import TaskConfig
from groklab.errors import GroklabError

__all__ = [
    "OPERATIONS",
    "BinaryOpTable",
    "check_operation",
    "modular_table",
    "permutation_table",
    "split",
    "TableTaskConfig",
    "ModularTaskConfig",
    "PermutationTaskConfig",
]


def _inverse_mod(y: np.ndarray, p: int) -> np.ndarray:
    # Fermat: y^(p-2) is y's inverse when p is prime (checked before we get here).
    return np.array([pow(int(v), p - 2, p) for v in y], dtype=np.int64)


# name -> (result(x, y, p), whether y must be invertible). The operations of Power et al. (2022).
OPERATIONS: dict[str, tuple[Callable[[np.ndarray, np.ndarray, int], np.ndarray], bool]] = {
    "x+y": (lambda x, y, p: x + y, False),
    "x-y": (lambda x, y, p: x - y, False),
    "x*y": (lambda x, y, p: x * y, False),
    "x/y": (lambda x, y, p: x * _inverse_mod(y, p), True),
    "x^2+y^2": (lambda x, y, p: x**2 + y**2, False),
    "x^2+xy+y^2": (lambda x, y, p: x**2 + x * y + y**2, False),
    "x^2+xy+y^2+x": (lambda x, y, p: x**2 + x * y + y**2 + x, False),
    "x^3+xy": (lambda x, y, p: x**3 + x * y, False),
    "x^3+xy^2+y": (lambda x, y, p: x**3 + x * y**2 + y, False),
}
_ALIASES = {"add": "x+y", "sub": "x-y", "mul": "x*y", "div": "x/y"}


def _is_prime(p: int) -> bool:
    return p >= 2 and all(p % d for d in range(2, int(p**0.5) + 1))


def canonical_op(op: str) -> str:
    """The canonical name of an operation (``'add'`` -> ``'x+y'``; spaces ignored)."""
    name = op.replace(" ", "").replace("**", "^")
    return _ALIASES.get(name, name)


def check_operation(op: str, p: int) -> None:
    """Raise :class:`GroklabError` unless ``op`` is a known operation that is defined mod ``p``."""
    name = canonical_op(op)
    if name not in OPERATIONS:
        allowed = ", ".join(list(OPERATIONS) + list(_ALIASES))
        raise GroklabError(f"task.op: unknown operation '{op}'; allowed: {allowed}")
    if OPERATIONS[name][1] and not _is_prime(p):
        raise GroklabError(f"task.p={p} is not prime, but task.op='{op}' needs every nonzero y to have an inverse mod p")


@dataclass(frozen=True)
class BinaryOpTable:
    """All pairs of a binary operation: ``pairs[i] = (a, b)``, ``labels[i] = a . b``.

    ``n_operands`` is how many distinct operands there are (the input vocabulary) and
    ``n_classes`` how many distinct results (the output vocabulary).
    """

    pairs: torch.Tensor  # (N, 2) long
    labels: torch.Tensor  # (N,) long
    n_operands: int
    n_classes: int
    description: str
    _memo: dict = field(default_factory=dict, compare=False, repr=False)  # derived tables, computed once

    def __len__(self) -> int:
        return len(self.labels)

    def cayley(self) -> Optional[torch.Tensor]:
        """``(m, m)`` table ``T[a, b] = a . b``, or None when the operation does not map one set
        to itself or its table is incomplete (``x/y`` leaves out ``y = 0``). Computed once per
        table; do not modify the returned tensor."""
        if "cayley" not in self._memo:
            m = self.n_operands
            out = None
            if self.n_classes == m and len(self) == m * m:
                out = torch.empty(m, m, dtype=torch.long)
                out[self.pairs[:, 0], self.pairs[:, 1]] = self.labels
            self._memo["cayley"] = out
        return self._memo["cayley"]


def modular_table(p: int, op: str) -> BinaryOpTable:
    """The full table of ``op`` mod ``p``; for division the pairs with ``y = 0`` are left out."""
    check_operation(op, p)
    name = canonical_op(op)
    fn, needs_inverse = OPERATIONS[name]
    x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    x, y = x.ravel(), y.ravel()  # (p*p,)
    if needs_inverse:
        keep = y != 0
        x, y = x[keep], y[keep]
    labels = np.mod(fn(x.astype(np.int64), y.astype(np.int64), p), p)
    pairs = torch.from_numpy(np.stack([x, y], axis=1).astype(np.int64))
    return BinaryOpTable(pairs, torch.from_numpy(labels), p, p, f"{name} mod {p}")


def permutations(n: int) -> list[tuple[int, ...]]:
    """The elements of S_n in lexicographic order (index 0 is the identity)."""
    return list(itertools.permutations(range(n)))


def permutation_table(n: int) -> BinaryOpTable:
    """Composition in the symmetric group S_n: label of ``(a, b)`` is the index of ``a o b``,
    where ``(a o b)(i) = a(b(i))``. Non-abelian for n >= 3."""
    elements = permutations(n)
    index = {perm: i for i, perm in enumerate(elements)}
    perms = np.array(elements)  # (n!, n)
    m = len(elements)
    a, b = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
    a, b = a.ravel(), b.ravel()
    composed = np.take_along_axis(perms[a], perms[b], axis=1)  # (m*m, n): a[b[i]]
    labels = np.array([index[tuple(row)] for row in composed], dtype=np.int64)
    pairs = torch.from_numpy(np.stack([a, b], axis=1).astype(np.int64))
    return BinaryOpTable(pairs, torch.from_numpy(labels), m, m, f"composition in S_{n}")


def split(n: int, train_frac: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded random split of ``range(n)`` into sorted train and test index tensors."""
    order = torch.randperm(n, generator=generator)
    n_train = int(round(train_frac * n))
    if not 0 < n_train < n:
        raise GroklabError(f"task.train_frac={train_frac} leaves an empty train or test set with {n} pairs")
    return order[:n_train].sort().values, order[n_train:].sort().values


class TableTaskConfig(TaskConfig):
    """A binary operation's full table, split at random into ``train_frac`` train pairs and the rest."""

    train_frac: float = Field(0.3, description="fraction of all pairs used for training")

    @field_validator("train_frac")
    @classmethod
    def _frac_in_open_interval(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"must lie strictly between 0 and 1, got {v}")
        return v

    def table(self) -> BinaryOpTable:
        """The operation's full table."""
        raise NotImplementedError


@TaskConfig.register
class ModularTaskConfig(TableTaskConfig):
    """``task.name='modular'``: ``op`` on residues mod ``p`` (Power et al. 2022)."""

    name: Literal["modular"] = "modular"
    # 3000^2 = 9M pairs is already ~100x the largest modulus in the papers; beyond it the table does not fit.
    p: int = Field(97, ge=2, le=3000, description="modulus")
    op: str = Field("x+y", description="operation, e.g. 'x+y', 'x/y'")

    @model_validator(mode="after")
    def _operation_is_defined(self) -> "ModularTaskConfig":
        check_operation(self.op, self.p)
        return self

    def table(self) -> BinaryOpTable:
        return modular_table(self.p, self.op)


@TaskConfig.register
class PermutationTaskConfig(TableTaskConfig):
    """``task.name='permutation'``: composition in the symmetric group S_n (a non-abelian control)."""

    name: Literal["permutation"] = "permutation"
    n: int = Field(4, ge=2, le=6, description="degree of the symmetric group S_n")

    def table(self) -> BinaryOpTable:
        return permutation_table(self.n)
