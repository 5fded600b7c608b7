"""Polynomial regression tasks of the lazy-to-rich toy model.

Kumar et al., *Grokking as the transition from lazy to rich training dynamics*
(paper 001, section 5, eq. 3; appendix 16), with the formulas restored in
``shared/papers/FORMULAS.md``:

* single-index quadratic: ``x ~ N(0, I/D)``, ``beta ~ N(0, I_D)``,
  ``y = 0.5 (beta . x)^2``;
* its variant (Fig. 3a/b): ``x ~ N(0, I)``, ``y = (beta . x / sqrt(D))^2``;
* multi-index quadratics (appendix 16.1): a sum of such quadratics over 2-3 directions;
* Hermite targets (appendix 16.2): ``y = He_k(z) / sqrt(k!)`` with ``z`` the standardised
  projection of ``x`` on a random direction, so ``E[y^2] = 1`` for every degree.

Everything is a deterministic function of the arguments and ``seed``. Three independent
generators are derived from ``seed`` (directions, train inputs, test inputs), so the target
directions and the test set do not change when only ``P_train`` changes, which is what a
sample-size sweep (the "goldilocks P" experiment) needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

InputScale = Literal["paper", "unit"]
_BLOCK = 1024  # rows per random draw, see sample_inputs

__all__ = [
    "PolynomialData",
    "sample_inputs",
    "sample_directions",
    "quadratic_target",
    "hermite_he",
    "hermite_target",
    "make_single_index_quadratic",
    "make_multi_index_quadratic",
    "make_hermite_task",
]


@dataclass(frozen=True, eq=False)  # eq on tensors would be ambiguous
class PolynomialData:
    """A train/test split of one polynomial regression task.

    Attributes:
        x_train: (P_train, D) inputs.
        y_train: (P_train,) targets.
        x_test: (P_test, D) inputs from the same distribution.
        y_test: (P_test,) targets.
        directions: (K, D) target directions, each row ``~ N(0, I_D)`` (not normalised).
        input_scale: ``"paper"`` for ``x ~ N(0, I/D)``, ``"unit"`` for ``x ~ N(0, I)``.
        kind: ``"quadratic"`` or ``"hermite"``.
        degree: polynomial degree (2 for the quadratics).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    directions: torch.Tensor
    input_scale: str
    kind: str
    degree: int

    @property
    def beta(self) -> torch.Tensor:
        """(D,) the first target direction, the paper's ``beta`` for a single-index task."""
        return self.directions[0]

    @property
    def dim(self) -> int:
        """Input dimension D."""
        return self.directions.shape[1]


def _generators(seed: int, n: int) -> list[torch.Generator]:
    # SeedSequence gives statistically independent streams; consecutive integer seeds for
    # torch.Generator would not be guaranteed independent.
    states = np.random.SeedSequence(seed).spawn(n)
    return [torch.Generator().manual_seed(int(s.generate_state(1, dtype=np.uint64)[0] >> 1))
            for s in states]


def _check_scale(input_scale: str) -> None:
    if input_scale not in ("paper", "unit"):
        raise ValueError(f"input_scale must be 'paper' or 'unit', got {input_scale!r}")


def sample_inputs(n: int, D: int, *, generator: torch.Generator,
                  input_scale: InputScale = "paper",
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw ``n`` Gaussian inputs.

    ``input_scale="paper"``: ``x ~ N(0, I/D)`` (paper 001 eq. 3), so ``|x|^2 ~ 1``;
    ``"unit"``: ``x ~ N(0, I)`` (the Fig. 3a/b variant).

    Returns:
        (n, D) tensor.
    """
    _check_scale(input_scale)
    # Fixed-size blocks keep the draws prefix-stable: the first n rows do not depend on
    # the total n (a single randn(n, D) call is not), so training sets of a sample-size
    # sweep are nested.
    blocks = [torch.randn(_BLOCK, D, generator=generator, dtype=torch.float64)
              for _ in range(-(-n // _BLOCK))]
    x = torch.cat(blocks)[:n] if blocks else torch.empty(0, D, dtype=torch.float64)  # (n, D)
    if input_scale == "paper":
        x = x / math.sqrt(D)
    return x.to(dtype)


def sample_directions(K: int, D: int, *, generator: torch.Generator,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw ``K`` target directions ``beta_k ~ N(0, I_D)`` (so ``|beta_k|^2 ~ D``).

    Returns:
        (K, D) tensor.
    """
    return torch.randn(K, D, generator=generator, dtype=torch.float64).to(dtype)  # (K, D)


def quadratic_target(x: torch.Tensor, directions: torch.Tensor, *,
                     input_scale: InputScale = "paper") -> torch.Tensor:
    """Sum of single-index quadratics over the rows of ``directions``.

    ``"paper"``: ``y = 0.5 sum_k (beta_k . x)^2`` (FORMULAS.md, eq. 3 of paper 001);
    ``"unit"``:  ``y = sum_k (beta_k . x / sqrt(D))^2`` (the Fig. 3a/b variant, no 1/2).
    With one direction this is the paper's single-index target; in terms of the
    normalised input ``x' = x`` ("paper") or ``x' = x / sqrt(D)`` ("unit"), both read
    ``y = 0.5 x'^T T x'`` with ``T = c sum_k beta_k beta_k^T``, ``c = 1`` resp. ``2``.

    Args:
        x: (B, D) inputs.
        directions: (K, D) or (D,) directions.

    Returns:
        (B,) targets.
    """
    _check_scale(input_scale)
    directions = directions.reshape(-1, x.shape[-1]).to(x.dtype)  # (K, D)
    proj = x @ directions.T  # (B, K)
    if input_scale == "paper":
        return 0.5 * (proj ** 2).sum(-1)
    return (proj ** 2).sum(-1) / x.shape[-1]


def hermite_he(k: int, z: torch.Tensor) -> torch.Tensor:
    """Probabilists' Hermite polynomial ``He_k(z)``, elementwise.

    Three-term recurrence ``He_{n+1}(z) = z He_n(z) - n He_{n-1}(z)``, ``He_0 = 1``,
    ``He_1 = z``; orthogonal under ``N(0, 1)`` with ``E[He_k^2] = k!``.
    """
    if k < 0:
        raise ValueError("degree must be non-negative")
    prev, cur = torch.ones_like(z), z
    if k == 0:
        return prev
    for n in range(1, k):
        prev, cur = cur, z * cur - n * prev
    return cur


def hermite_target(x: torch.Tensor, direction: torch.Tensor, degree: int, *,
                   input_scale: InputScale = "paper") -> torch.Tensor:
    """Normalised Hermite single-index target ``y = He_k(z) / sqrt(k!)``.

    ``z = (beta/|beta|) . x`` scaled to unit variance: ``z = sqrt(D) bhat . x`` for
    ``x ~ N(0, I/D)`` and ``z = bhat . x`` for ``x ~ N(0, I)``. Then ``z ~ N(0, 1)``
    exactly, so ``E[y] = 0`` (k >= 1) and ``E[y^2] = 1`` (paper 001 appendix 16.2 uses
    ``He_k`` of a projection; the normalisation makes degrees comparable).

    Args:
        x: (B, D) inputs.
        direction: (D,) direction (any norm).
        degree: k >= 0.

    Returns:
        (B,) targets.
    """
    _check_scale(input_scale)
    bhat = direction.reshape(-1).to(x.dtype)
    bhat = bhat / bhat.norm()
    z = x @ bhat  # (B,)
    if input_scale == "paper":
        z = z * math.sqrt(x.shape[-1])
    return hermite_he(degree, z) / math.sqrt(math.factorial(degree))


def _make(D: int, P_train: int, P_test: int, K: int, seed: int, input_scale: InputScale,
          dtype: torch.dtype, kind: str, degree: int) -> PolynomialData:
    _check_scale(input_scale)
    g_dir, g_train, g_test = _generators(seed, 3)
    directions = sample_directions(K, D, generator=g_dir, dtype=torch.float64)  # (K, D)
    x_train = sample_inputs(P_train, D, generator=g_train, input_scale=input_scale,
                            dtype=torch.float64)  # (P_train, D)
    x_test = sample_inputs(P_test, D, generator=g_test, input_scale=input_scale,
                           dtype=torch.float64)  # (P_test, D)
    if kind == "quadratic":
        def target(x):
            return quadratic_target(x, directions, input_scale=input_scale)
    else:
        def target(x):
            return hermite_target(x, directions[0], degree, input_scale=input_scale)
    # Targets are computed in float64 and only then cast, so float32 and float64 tasks
    # share the same numbers up to rounding.
    return PolynomialData(
        x_train=x_train.to(dtype), y_train=target(x_train).to(dtype),
        x_test=x_test.to(dtype), y_test=target(x_test).to(dtype),
        directions=directions.to(dtype), input_scale=input_scale, kind=kind, degree=degree)


def make_single_index_quadratic(D: int, P_train: int, P_test: int, *, seed: int,
                                input_scale: InputScale = "paper",
                                dtype: torch.dtype = torch.float32) -> PolynomialData:
    """The paper's task: ``y = 0.5 (beta . x)^2``, ``x ~ N(0, I/D)``, ``beta ~ N(0, I_D)``.

    With ``input_scale="unit"``: ``x ~ N(0, I)``, ``y = (beta . x / sqrt(D))^2``.
    Shapes: x (P, D), y (P,), ``directions`` (1, D).
    """
    return _make(D, P_train, P_test, 1, seed, input_scale, dtype, "quadratic", 2)


def make_multi_index_quadratic(D: int, P_train: int, P_test: int, *, n_directions: int = 2,
                               seed: int, input_scale: InputScale = "paper",
                               dtype: torch.dtype = torch.float32) -> PolynomialData:
    """Multi-index quadratic (paper 001 appendix 16.1): ``y = 0.5 sum_k (beta_k . x)^2``.

    ``beta_k ~ N(0, I_D)`` independently (nearly orthogonal for large D); each direction
    carries the single-index scale, so ``n_directions=1`` reproduces
    :func:`make_single_index_quadratic` exactly (same seed, same numbers).
    Shapes: x (P, D), y (P,), ``directions`` (n_directions, D).
    """
    if n_directions < 1:
        raise ValueError("n_directions must be >= 1")
    return _make(D, P_train, P_test, n_directions, seed, input_scale, dtype, "quadratic", 2)


def make_hermite_task(D: int, P_train: int, P_test: int, *, degree: int, seed: int,
                      input_scale: InputScale = "paper",
                      dtype: torch.dtype = torch.float32) -> PolynomialData:
    """Hermite single-index task (paper 001 appendix 16.2): ``y = He_k(z)/sqrt(k!)``.

    ``z`` is the unit-variance projection on ``beta/|beta|`` (see :func:`hermite_target`).
    Shapes: x (P, D), y (P,), ``directions`` (1, D).
    """
    return _make(D, P_train, P_test, 1, seed, input_scale, dtype, "hermite", degree)


# ----------------------------------------------------------------------------- task registry
# ``task.name=polynomial``: the toy model's data as a TaskData (dense float inputs (P, d),
# float targets (P,), n_classes=None). Imported at the end of ``groklab.tasks``.

from functools import lru_cache  # noqa: E402
from typing import Literal  # noqa: E402

from pydantic import Field, model_validator  # noqa: E402

from groklab.tasks import SampledTaskConfig, TaskData, register_task  # noqa: E402


class PolynomialTaskConfig(SampledTaskConfig):
    """``task.name='polynomial'``: paper 001's toy-model regression, ``x ~ N(0, I/d)``,
    ``beta_k ~ N(0, I_d)``, ``n_train`` training points P and ``n_test`` fresh test points."""

    name: Literal["polynomial"] = "polynomial"
    inputs = "dense"
    targets = "scalar"
    d: int = Field(100, ge=1, description="input dimension D")
    target: Literal["quadratic", "hermite"] = Field(
        "quadratic",
        description="'quadratic' y = 0.5 sum_k (beta_k . x)^2 over n_directions; "
        "'hermite' y = He_degree(z)/sqrt(degree!), z the unit-variance projection on beta",
    )
    degree: int = Field(2, ge=0, le=12, description="Hermite degree (target='hermite')")
    n_directions: int = Field(1, ge=1, description="directions of a multi-index quadratic")

    @model_validator(mode="after")
    def _hermite_is_single_index(self) -> "PolynomialTaskConfig":
        if self.target == "hermite" and self.n_directions != 1:
            raise ValueError("task.target='hermite' is single-index; set task.n_directions=1")
        return self


@lru_cache(maxsize=8)
def _cached(d: int, n_train: int, n_test: int, target: str, degree: int, n_directions: int,
            seed: int) -> PolynomialData:
    if target == "hermite":
        return make_hermite_task(d, n_train, n_test, degree=degree, seed=seed)
    return make_multi_index_quadratic(d, n_train, n_test, n_directions=n_directions, seed=seed)


def polynomial_data(task, seed: int) -> PolynomialData:
    """The :class:`PolynomialData` of a ``task.name='polynomial'`` config, directions included
    (metrics rebuild ``beta`` from here: it is a deterministic function of (task, seed)).
    Cached, so repeated calls are free; the tensors must not be modified."""
    return _cached(task.d, task.n_train, task.n_test, task.target, task.degree, task.n_directions, seed)


@register_task(PolynomialTaskConfig)
def _polynomial_task(task, seed: int) -> TaskData:
    data = polynomial_data(task, seed)
    if task.target == "hermite":
        what = f"y = He_{task.degree}(z)/sqrt({task.degree}!)"
    elif task.n_directions == 1:
        what = "y = 0.5 (beta.x)^2"
    else:
        what = f"y = 0.5 sum_k (beta_k.x)^2 over {task.n_directions} directions"
    return TaskData(
        train_x=data.x_train, train_y=data.y_train, test_x=data.x_test, test_y=data.y_test,
        description=f"{what}, x ~ N(0, I/{task.d}), {task.n_train} train / {task.n_test} test points",
        n_classes=None, input_dim=task.d, target_directions=data.directions,
    )
