"""Infinite-data (online) limit of the lazy-to-rich toy model.

FORMULAS.md, "Theory of the toy model": with infinitely many samples the train loss equals
the population loss, which depends on the weights only through ``u = wbar - wbar_ref`` and
``Delta = M - M_ref`` (``ref`` = init for the centred predictor, 0 otherwise). With
``A = T - alpha eps Delta`` (``T = beta beta^T`` for the single-index task):

    L = 1/4 (Tr A / D)^2 + |A|_F^2 / (2 D^2) + alpha^2 |u|^2 / D,
    dL/dw_i = (1/N) (g + 2 G w_i),   g = 2 alpha^2 u / D,
    G = -(alpha eps / D^2) (1/2 Tr A I + A).

Gradient flow ``dw_i/dt = -eta dL/dw_i`` closes on the moments, with ``eta_eff = eta / N``:

    dwbar/dt = -eta_eff (g + 2 G wbar),
    dM/dt    = -eta_eff (g wbar^T + wbar g^T + 2 (G M + M G)).

At infinite width (``wbar_0 = 0``, ``M_0 = I``) ``wbar`` stays 0 and
``M = a I + b bhat bhat^T`` (``bhat = beta/|beta|``, ``B = |beta|^2``):

    TrA = B - alpha eps ((a - 1) D + b),
    g1 = -(alpha eps / D^2) (TrA / 2 - alpha eps (a - 1)),
    g2 = -(alpha eps / D^2) (B - alpha eps b),
    da/dt = -4 eta_eff g1 a,   db/dt = -4 eta_eff (g1 b + g2 (a + b)),

from ``a = 1, b = 0`` to the fixed point ``a = 1, b = B / (alpha eps)``. These equations are
derived for groklab (the paper's DMFT appendix states only that its large-P limit is the
Saad-Solla online dynamics). Time ``t`` counts gradient-descent steps: with the paper's
learning rate ``eta = eta_0 N / alpha^2`` one has ``eta_eff = eta_0 / alpha^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp

from groklab.metrics.toy_model import loss_decomposition, target_matrix

__all__ = [
    "population_gradient",
    "matrix_flow_derivatives",
    "MatrixFlowSolution",
    "solve_matrix_flow",
    "two_scalar_derivatives",
    "two_scalar_loss",
    "TwoScalarSolution",
    "solve_two_scalar_flow",
    "two_scalar_fixed_point",
]


def _as_T(target) -> np.ndarray:
    T = np.asarray(target, dtype=np.float64)
    if T.ndim == 1:
        T = target_matrix(torch.from_numpy(T)).numpy()
    return T  # (D, D)


def population_gradient(wbar: np.ndarray, M: np.ndarray, target: np.ndarray, *,
                        alpha: float, eps: float, wbar_ref: np.ndarray,
                        M_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g`` and ``G`` of ``dL/dw_i = (1/N)(g + 2 G w_i)`` for the population loss.

    ``g = 2 alpha^2 (wbar - wbar_ref) / D``,
    ``G = -(alpha eps / D^2) (1/2 Tr A I + A)``, ``A = T - alpha eps (M - M_ref)``.

    Args:
        wbar: (D,); M: (D, D); target: (D,) beta or (D, D) T; wbar_ref: (D,);
        M_ref: (D, D).

    Returns:
        g (D,), G (D, D) symmetric.
    """
    T = _as_T(target)
    D = T.shape[0]
    A = T - alpha * eps * (M - M_ref)  # (D, D)
    A = 0.5 * (A + A.T)
    g = 2.0 * alpha ** 2 * (wbar - wbar_ref) / D  # (D,)
    G = -(alpha * eps / D ** 2) * (0.5 * np.trace(A) * np.eye(D) + A)  # (D, D)
    return g, G


def matrix_flow_derivatives(wbar: np.ndarray, M: np.ndarray, target: np.ndarray, *,
                            alpha: float, eps: float, eta_eff: float, wbar_ref: np.ndarray,
                            M_ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right-hand side of the moment flow: ``(dwbar/dt, dM/dt)``, shapes (D,), (D, D).

    ``dwbar/dt = -eta_eff (g + 2 G wbar)``,
    ``dM/dt = -eta_eff (g wbar^T + wbar g^T + 2 (G M + M G))`` (FORMULAS.md).
    """
    g, G = population_gradient(wbar, M, target, alpha=alpha, eps=eps,
                               wbar_ref=wbar_ref, M_ref=M_ref)
    dwbar = -eta_eff * (g + 2.0 * G @ wbar)
    GM = G @ M
    dM = -eta_eff * (np.outer(g, wbar) + np.outer(wbar, g) + 2.0 * (GM + GM.T))
    return dwbar, dM


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous
class MatrixFlowSolution:
    """Solution of the full moment flow on a time grid.

    Attributes:
        t: (T,) times (gradient steps).
        wbar: (T, D); M: (T, D, D).
        loss: (T,) population loss (= train = test loss in this limit).
        scale, misalignment, linear: (T,) the three terms of :func:`loss_decomposition`.
    """

    t: np.ndarray
    wbar: np.ndarray
    M: np.ndarray
    loss: np.ndarray
    scale: np.ndarray
    misalignment: np.ndarray
    linear: np.ndarray


def solve_matrix_flow(target: np.ndarray, *, alpha: float, eps: float, eta_eff: float,
                      t_eval: np.ndarray, wbar0: np.ndarray | None = None,
                      M0: np.ndarray | None = None, centred: bool = True,
                      rtol: float = 1e-10, atol: float = 1e-12) -> MatrixFlowSolution:
    """Integrate the full ``(wbar, M)`` gradient flow of the infinite-data limit.

    Args:
        target: (D,) beta or (D, D) T with ``y = 0.5 x^T T x``.
        alpha, eps: model constants; eta_eff: ``eta / N``.
        t_eval: (T,) increasing times >= 0 at which to report.
        wbar0, M0: initial moments, default the infinite-width init ``(0, I)``; pass
            :func:`~groklab.metrics.toy_model.summary_statistics` of a finite network for
            finite-width initial conditions (the flow itself is exact at any N).
        centred: the loss is that of ``f(theta) - f(theta_0)`` (reference = init moments);
            False uses the plain predictor (reference 0).
        rtol, atol: :func:`scipy.integrate.solve_ivp` (DOP853) tolerances.

    Returns:
        :class:`MatrixFlowSolution`.
    """
    T = _as_T(target)
    D = T.shape[0]
    wbar0 = np.zeros(D) if wbar0 is None else np.asarray(wbar0, dtype=np.float64)
    M0 = np.eye(D) if M0 is None else np.asarray(M0, dtype=np.float64)
    wref, Mref = (wbar0, M0) if centred else (np.zeros(D), np.zeros((D, D)))

    def rhs(_t, s):
        dw, dM = matrix_flow_derivatives(s[:D], s[D:].reshape(D, D), T, alpha=alpha,
                                         eps=eps, eta_eff=eta_eff, wbar_ref=wref, M_ref=Mref)
        return np.concatenate([dw, dM.ravel()])

    t_eval = np.asarray(t_eval, dtype=np.float64)
    s0 = np.concatenate([wbar0, M0.ravel()])  # (D + D^2,)
    sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), s0, t_eval=t_eval, method="DOP853",
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    wbar = sol.y[:D].T  # (T, D)
    M = sol.y[D:].T.reshape(-1, D, D)  # (T, D, D)
    terms = loss_decomposition(torch.from_numpy(wbar), torch.from_numpy(M), torch.from_numpy(T),
                               alpha=alpha, eps=eps, wbar0=torch.from_numpy(wref),
                               M0=torch.from_numpy(Mref))
    return MatrixFlowSolution(t=sol.t, wbar=wbar, M=M, loss=terms.total.numpy(),
                              scale=terms.scale.numpy(),
                              misalignment=terms.misalignment.numpy(),
                              linear=terms.linear.numpy())


def two_scalar_derivatives(a: float, b: float, *, D: int, B: float, alpha: float, eps: float,
                           eta_eff: float) -> tuple[float, float]:
    """``(da/dt, db/dt)`` of the infinite-width flow ``M = a I + b bhat bhat^T`` (FORMULAS.md)."""
    ae = alpha * eps
    trA = B - ae * ((a - 1.0) * D + b)
    g1 = -(ae / D ** 2) * (0.5 * trA - ae * (a - 1.0))
    g2 = -(ae / D ** 2) * (B - ae * b)
    return -4.0 * eta_eff * g1 * a, -4.0 * eta_eff * (g1 * b + g2 * (a + b))


def two_scalar_loss(a, b, *, D: int, B: float, alpha: float, eps: float):
    """Population loss at ``M = a I + b bhat bhat^T``, ``wbar = 0`` (centred on ``M_0 = I``).

    ``A = c I + d bhat bhat^T`` with ``c = -alpha eps (a - 1)``, ``d = B - alpha eps b``:
    ``Tr A = c D + d``, ``|A|_F^2 = c^2 D + 2 c d + d^2``; returns
    ``(scale, misalignment)`` = ``(1/4 (Tr A/D)^2, |A|_F^2 / (2 D^2))`` (arrays or floats).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    c = -alpha * eps * (a - 1.0)
    d = B - alpha * eps * b
    return 0.25 * ((c * D + d) / D) ** 2, (c * c * D + 2 * c * d + d * d) / (2.0 * D ** 2)


@dataclass(frozen=True, eq=False)
class TwoScalarSolution:
    """Solution of the two-scalar flow.

    Attributes:
        t: (T,) times; a, b: (T,) the scalars of ``M = a I + b bhat bhat^T``;
        loss: (T,) population loss; scale, misalignment: (T,) its two non-zero terms.
    """

    t: np.ndarray
    a: np.ndarray
    b: np.ndarray
    loss: np.ndarray
    scale: np.ndarray
    misalignment: np.ndarray


def solve_two_scalar_flow(*, D: int, B: float, alpha: float, eps: float, eta_eff: float,
                          t_eval: np.ndarray, rtol: float = 1e-10,
                          atol: float = 1e-12) -> TwoScalarSolution:
    """Integrate the infinite-width, infinite-data flow of ``(a, b)`` from ``(1, 0)``.

    Args:
        D: input dimension; B: ``|beta|^2`` (about D for ``beta ~ N(0, I_D)``).
        alpha, eps, eta_eff: as in :func:`solve_matrix_flow`.
        t_eval: (T,) increasing times >= 0.

    Returns:
        :class:`TwoScalarSolution`.
    """
    def rhs(_t, s):
        return list(two_scalar_derivatives(s[0], s[1], D=D, B=B, alpha=alpha, eps=eps,
                                           eta_eff=eta_eff))

    t_eval = np.asarray(t_eval, dtype=np.float64)
    sol = solve_ivp(rhs, (0.0, float(t_eval[-1])), [1.0, 0.0], t_eval=t_eval,
                    method="DOP853", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_ivp failed: {sol.message}")
    a, b = sol.y
    scale, mis = two_scalar_loss(a, b, D=D, B=B, alpha=alpha, eps=eps)
    return TwoScalarSolution(t=sol.t, a=a, b=b, loss=scale + mis, scale=scale,
                             misalignment=mis)


def two_scalar_fixed_point(*, B: float, alpha: float, eps: float) -> tuple[float, float]:
    """Zero-loss fixed point ``(a, b) = (1, B / (alpha eps))``, i.e. ``Delta = T / (alpha eps)``."""
    return 1.0, B / (alpha * eps)
