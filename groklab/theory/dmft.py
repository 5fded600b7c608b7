"""Finite-data dynamical mean field theory (DMFT) of the centred lazy-to-rich toy model.

The derivation is in ``docs/theory.md``; this module solves its equations. Setting (paper 001,
section 5): committee machine ``f(x) = alpha/N sum_a phi(w_a . x)``, ``phi(h) = h + eps/2 h^2``,
readouts fixed to 1, ``w_a ~ N(0, I_D)``; ``P = p D`` training points ``x ~ N(0, I/D)``,
``y = (beta . x)^2 / 2``, ``beta ~ N(0, I_D)``; full-batch GD on the centred MSE
``mean((f - f_0 - y)^2)`` at learning rate ``eta N / alpha^2``. Limit: ``D -> infinity`` with
``p`` and ``N`` fixed, time measured in ``tau = step / D``.

One coordinate ``j`` of the N weight vectors, ``theta(k) in R^N``, and one data point's N
preactivations ``h(k)`` become the two effective processes (``lam_k = delta_k kappa / p``,
``kappa = 2 eta / alpha``, ``delta_k`` the k-th time step in tau)::

    theta(k+1) = theta(k) - lam_k [u(k) + sum_{s<=k} R_l(k,s) theta(s) + R_z(k) b]
    h(k)       = omega(k) - sum_{s<k} lam_s R_th(k,s) l(s)
    l(k)       = Delta(k) (1 + eps h(k)),
    Delta(k)   = alpha/N sum_a [phi(h_a(k)) - phi(h_a(0))] - z^2 / 2

with ``u`` Gaussian of covariance ``C_l(k,s) = p E[l(k) l(s)^T]``, ``(omega, z)`` Gaussian of
covariance ``C_th(k,s) = E[theta(k) theta(s)^T]``, ``E[omega(k) z] = m(k) = E[theta(k) b]``,
``E[z^2] = 1``, and the responses ``R_l(k,s) = p E[d l(k) / d h(s)]``,
``R_z(k) = p E[d l(k) / d z]`` (data process) and ``R_th(k,s) = d theta(k) / d psi(s)``
(weight process, ``psi(s)`` a field added to ``theta(s+1)``). The weight process is linear
and Gaussian, so its side is solved exactly; the data process is not (``Delta`` is quadratic
in ``h``), so its averages are Monte Carlo estimates over a fixed set of Gaussian draws
(common random numbers: the iteration map is then deterministic and has a true fixed point).

The strict limit starts on the saddle ``m = 0`` and never leaves it. As in the paper's
appendix 13.3 the O(D^{-1/2}) initial overlap of each neuron with beta is kept as an
initial condition: ``E[theta(0) b] = m0`` (by default ``m0_a = +-1/sqrt(D_init)``, half the
neurons of each sign). Everything else is the ``D -> infinity`` limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from groklab.errors import GroklabError

__all__ = ["DMFTSolution", "dmft", "time_grid", "gaussian_test_loss", "default_overlaps"]


@dataclass(frozen=True, eq=False)  # eq on arrays would be ambiguous
class DMFTSolution:
    """Solution of the DMFT on a time grid.

    Attributes:
        tau: (T+1,) times in units of ``step / D`` (multiply by D for GD steps).
        train_loss: (T+1,) mean squared centred error on the training points (Monte Carlo,
            with the exact test loss as control variate).
        test_loss: (T+1,) population loss (exact Gaussian average given the order parameters).
        overlap: (T+1, N) ``m_a = w_a . beta / D`` per neuron.
        cosine: (T+1, N) ``m_a / sqrt(|w_a|^2 / D)`` (``|beta|^2 / D = 1``).
        norm: (T+1, N) ``|w_a|^2 / D``.
        residuals: relative change of the order parameters at each finite-data iteration.
        online_test_loss: (T+1,) test (= train) loss of the online (``p -> infinity``) first guess.
        online_overlap: (T+1, N) its overlaps.
        converged: whether the last residual is below ``tol``.
        params: the arguments the solution was computed with.
    """

    tau: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    overlap: np.ndarray
    cosine: np.ndarray
    norm: np.ndarray
    residuals: list = field(default_factory=list)
    online_test_loss: Optional[np.ndarray] = None
    online_overlap: Optional[np.ndarray] = None
    converged: bool = False
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready dict of lists."""
        return {"tau": self.tau.tolist(), "train_loss": self.train_loss.tolist(),
                "test_loss": self.test_loss.tolist(), "overlap": self.overlap.tolist(),
                "cosine": self.cosine.tolist(), "norm": self.norm.tolist(),
                "residuals": list(self.residuals),
                "online_test_loss": None if self.online_test_loss is None else self.online_test_loss.tolist(),
                "online_overlap": None if self.online_overlap is None else self.online_overlap.tolist(),
                "converged": self.converged, "params": dict(self.params)}


def time_grid(horizon: float, steps: int, *, first: Optional[float] = None,
              max_step: Optional[float] = None) -> np.ndarray:
    """(steps+1,) times from 0 to ``horizon`` (tau units): step sizes grow geometrically from
    ``first`` and are capped at ``max_step``.

    Early steps are short because the lazy (kernel) part of the dynamics relaxes at rate
    ``~2 eta (1 + p^-1/2)^2`` per tau; later steps can be longer, but explicit Euler needs
    ``step x rate < 2`` and the rate grows with the weights' norm as features are learned, hence
    the cap. ``first=None`` gives a uniform grid.
    """
    if steps < 2 or not horizon > 0:
        raise GroklabError(f"the time grid needs steps >= 2 and horizon > 0 (got steps={steps}, horizon={horizon})")
    cap = math.inf if max_step is None else float(max_step)
    if cap * steps < horizon * (1 - 1e-12):
        raise GroklabError(f"the time grid cannot reach horizon {horizon:g} in {steps} steps of at most "
                           f"{cap:g}: raise steps or max_step")
    if first is None or first * steps >= horizon or cap * steps <= horizon * (1 + 1e-6):
        return np.linspace(0.0, horizon, steps + 1)
    k = np.arange(steps)

    def sizes(q: float) -> np.ndarray:
        return np.minimum(first * np.exp(np.minimum(k * math.log(q), 700.0)), cap)

    lo, hi = 1.0, 2.0
    while sizes(hi).sum() < horizon:
        hi *= 2
    for _ in range(200):  # bisection: the total length grows with the ratio q
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if sizes(mid).sum() < horizon else (lo, mid)
    d = sizes(hi)
    d *= horizon / d.sum()
    return np.concatenate([[0.0], np.cumsum(d)])


def default_overlaps(N: int, D_init: Optional[float]) -> np.ndarray:
    """(N,) initial overlaps ``m0_a = w_a . beta / D``: ``+-1/sqrt(D_init)`` (alternating signs,
    the typical size at dimension ``D_init``), zero when ``D_init`` is None (the strict limit)."""
    if D_init is None:
        return np.zeros(N)
    signs = np.where(np.arange(N) % 2 == 0, 1.0, -1.0)
    return signs / math.sqrt(D_init)


def gaussian_test_loss(C_kk: np.ndarray, C_k0: np.ndarray, C_00: np.ndarray, m_k: np.ndarray,
                       m_0: np.ndarray, *, alpha: float, eps: float, beta_sq: float = 1.0) -> float:
    """Population loss ``E[(f_k(x) - f_0(x) - z^2/2)^2]`` for jointly Gaussian
    ``v = (omega(k), omega(0), z)`` with the given covariances (``E[z^2] = beta_sq``).

    ``Delta = c . v + v^T Q v`` with ``c = alpha/N (1, -1, 0)``, ``Q = diag(alpha eps / 2N,
    -alpha eps / 2N, -1/2)``; Isserlis: ``E[Delta^2] = (tr QS)^2 + 2 tr (QS)^2 + c^T S c``.
    """
    N = C_kk.shape[0]
    S = np.zeros((2 * N + 1, 2 * N + 1))
    S[:N, :N], S[:N, N:2 * N], S[N:2 * N, :N], S[N:2 * N, N:2 * N] = C_kk, C_k0, C_k0.T, C_00
    S[:N, -1] = S[-1, :N] = m_k
    S[N:2 * N, -1] = S[-1, N:2 * N] = m_0
    S[-1, -1] = beta_sq
    c = np.concatenate([np.full(N, alpha / N), np.full(N, -alpha / N), [0.0]])
    q = np.concatenate([np.full(N, alpha * eps / (2 * N)), np.full(N, -alpha * eps / (2 * N)), [-0.5]])
    QS = q[:, None] * S
    return float(np.trace(QS) ** 2 + 2.0 * np.sum(QS * QS.T) + c @ S @ c)


# ----------------------------------------------------------------------------- weight side
def _weight_side(Rl: np.ndarray, Rz: np.ndarray, Cl: np.ndarray, lam: np.ndarray, m0: np.ndarray,
                 beta_sq: float = 1.0, C0: Optional[np.ndarray] = None):
    """Exact Gaussian solution of the weight process for given data-side order parameters.

    Args:
        Rl: (T, T, N, N) ``R_l(k, s)``, zero for ``s > k``; Rz: (T, N); Cl: (T, N, T, N);
        lam: (T,) ``lam_k``; m0: (N,) initial overlaps ``E[theta(0) b]``; beta_sq: ``E[b^2]``;
        C0: (N, N) ``E[theta(0) theta(0)^T]`` (default ``I + m0 m0^T / beta_sq``).

    Returns:
        C (T+1, N, T+1, N) weight covariance, m (T+1, N) overlaps, Rth (T+1, T, N, N) responses.
    """
    T, N = Rz.shape
    I = np.eye(N)
    Phi = np.zeros((T + 1, N, N))  # d theta(k) / d theta(0)
    rho = np.zeros((T + 1, N))  # d theta(k) / d b through the R_z drive
    Rth = np.zeros((T + 1, T, N, N))  # d theta(k) / d psi(s), psi(s) added to theta(s+1)
    Phi[0] = I
    for k in range(T):
        Rk = Rl[k, :k + 1]  # (k+1, N, N)
        Phi[k + 1] = Phi[k] - lam[k] * np.einsum("rab,rbc->ac", Rk, Phi[:k + 1])
        rho[k + 1] = rho[k] - lam[k] * (np.einsum("rab,rb->a", Rk, rho[:k + 1]) + Rz[k])
        if k > 0:
            Rth[k + 1, :k] = Rth[k, :k] - lam[k] * np.einsum("rab,rsbc->sac", Rk, Rth[:k + 1, :k])
        Rth[k + 1, k] = I
    m = np.einsum("kab,b->ka", Phi, m0) + rho * beta_sq  # (T+1, N)
    S0 = I + np.outer(m0, m0) / beta_sq if C0 is None else C0  # theta(0) = xi + m0 b / beta_sq
    A = Phi.reshape(T + 1, N, N)
    C = np.einsum("kab,bc,sdc->kasd", A, S0, A)
    Am0 = np.einsum("kab,b->ka", A, m0)
    C += np.einsum("ka,sd->kasd", Am0, rho) + np.einsum("ka,sd->kasd", rho, Am0)
    C += beta_sq * np.einsum("ka,sd->kasd", rho, rho)
    G = (Rth * lam[None, :, None, None]).transpose(0, 2, 1, 3).reshape((T + 1) * N, T * N)
    C += (G @ Cl.reshape(T * N, T * N) @ G.T).reshape(T + 1, N, T + 1, N)
    return C, m, Rth


# ----------------------------------------------------------------------------- data side
def _gaussian_draws(C: np.ndarray, m: np.ndarray, xi: np.ndarray, beta_sq: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``(omega, z)`` with covariance ``[[C, m], [m^T, beta_sq]]`` from standard normals ``xi``.

    Cholesky with a small jitter, not an eigendecomposition: the factor must move continuously
    with ``C`` so that fixed draws give a continuous (hence convergent) iteration map;
    eigenvectors of the nearly degenerate ``C`` of a fine time grid would jump.
    """
    T1, N = m.shape
    n = T1 * N
    # z first, then omega(0), omega(1), ...: the Cholesky factor is lower triangular, so the
    # draws up to time k do not depend on later times and extending the time window of the
    # iteration leaves the draws of the converged earlier times unchanged.
    S = np.empty((n + 1, n + 1))
    S[0, 0] = beta_sq
    S[0, 1:] = S[1:, 0] = m.reshape(n)
    S[1:, 1:] = C.reshape(n, n)
    S = 0.5 * (S + S.T)
    for jitter in (1e-10, 1e-8, 1e-6, 1e-4):  # relative to E[z^2] = 1, the same for every window
        try:
            L = np.linalg.cholesky(S + jitter * np.eye(n + 1))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        raise GroklabError("DMFT: the weight covariance is not positive semi-definite (the iteration is "
                           "unstable); use more time steps or a smaller damping")
    v = xi[:, :n + 1] @ L.T  # (M, n+1)
    return v[:, 1:].reshape(-1, T1, N), v[:, 0]


def _data_forward(omega: np.ndarray, z: np.ndarray, Rth: np.ndarray, lam: np.ndarray, *, alpha: float,
                  eps: float, self_response: bool, prev: Optional[tuple] = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrate the data process ``h(k) = omega(k) - sum_{s<k} lam_s R_th(k,s) l(s)`` forward.

    ``prev``: ``(h, Delta, l)`` of an earlier call on the same draws and the same order parameters
    at its times, whose times are reused (the process is causal). Without ``self_response``
    the points are fresh (test) points: ``h = omega``.

    Returns h (M, T+1, N), Delta (M, T+1), l (M, T+1, N).
    """
    M, T1, N = omega.shape
    h = np.empty_like(omega)
    l = np.empty_like(omega)
    Delta = np.empty((M, T1))
    start = 0
    if prev is not None:
        start = prev[0].shape[1]
        h[:, :start], Delta[:, :start], l[:, :start] = prev
    y = 0.5 * z * z
    phi0 = h[:, 0] + 0.5 * eps * h[:, 0] ** 2 if start else None
    for k in range(start, T1):
        hk = omega[:, k].copy()
        if self_response and k > 0:
            Rk = (Rth[k, :k] * lam[:k, None, None]).transpose(1, 0, 2).reshape(N, k * N)
            hk -= l[:, :k].reshape(M, k * N) @ Rk.T
        phik = hk + 0.5 * eps * hk * hk
        if phi0 is None:
            phi0 = phik
        Delta[:, k] = (alpha / N) * (phik - phi0).sum(1) - y
        h[:, k] = hk
        l[:, k] = Delta[:, k, None] * (1.0 + eps * hk)
    return h, Delta, l


def _second_moment(l: np.ndarray, K: int) -> np.ndarray:
    """``E[l(k) l(s)^T]`` over the samples of ``l`` (M, >= K, N) for ``k, s < K``: (K, N, K, N),
    as one matrix product (BLAS; ``einsum`` without it took a quarter of a solve)."""
    flat = l[:, :K].reshape(len(l), -1)  # (M, K N)
    return (flat.T @ flat).reshape(K, l.shape[2], K, l.shape[2]) / len(l)


def _direct_mean(h: np.ndarray, Delta: np.ndarray, z: np.ndarray, *, alpha: float, eps: float, T: int,
                 start: int) -> np.ndarray:
    """The sample mean of the Jacobian's direct terms (see :func:`_data_responses`) for the times
    ``start .. T-1``, as the columns of ``mean`` they add to: (T N + 1, (T - start) N).

    Direct: the part of ``d l(k) / d c`` that does not go through the history ``h(s < k)``:
    ``d l(k)/dh(k)`` on the inputs e(k), the centring reference's ``d l(k)/dh(0)`` on e(0), and
    ``d l(k)/dz``. They cost ``O(T N^2)`` per sample, so every sample can estimate them."""
    M, _, N = h.shape
    q = 1.0 + eps * h[:, :T]
    out = np.zeros((T * N + 1, (T - start) * N))
    for k in range(start, T):
        cols = slice((k - start) * N, (k - start + 1) * N)
        direct = eps * Delta[:, k].mean() * np.eye(N)
        if k > 0:
            direct = direct + (alpha / N) * (q[:, k].T @ q[:, k]) / M  # q q^T: symmetric, its own transpose
            out[1:1 + N, cols] -= (alpha / N) * (q[:, 0].T @ q[:, k]) / M  # [b, a] = -alpha/N E[q_a(k) q_b(0)]
        out[1 + k * N:1 + (k + 1) * N, cols] = direct
        out[0, cols] = -(z[:, None] * q[:, k]).mean(0)
    return out


def _stein_rz(l: np.ndarray, z: np.ndarray, Rl: np.ndarray, m: np.ndarray, beta_sq: float) -> np.ndarray:
    """``R_z / p = E[d l(k) / d z]`` (omega held) by Gaussian integration by parts, from every sample.

    With ``omega = omega_perp + m z / beta_sq`` (``omega_perp`` independent of z), Stein's lemma
    gives ``E[d l / d z |omega_perp] = E[l z] / beta_sq``, and the chain rule
    ``d/dz|omega = d/dz|omega_perp - sum_s m(s) / beta_sq . d/d omega(s)``, so
    ``R_z(k) / p = E[l(k) z] / beta_sq - sum_{s,b} R_l(k,s)_{ab} m_b(s) / (p beta_sq)``. The drive
    on the overlaps, ``R_z + R_l m``, is then the covariance ``E[l z]`` over all samples, whatever
    the noise of ``R_l``. ``l`` (M, T, N), ``Rl`` (T, T, N, N) without the factor p, ``m`` (T, N)."""
    return ((l * z[:, None, None]).mean(0) - np.einsum("ksab,sb->ka", Rl, m)) / beta_sq


def _data_responses(h: np.ndarray, Delta: np.ndarray, z: np.ndarray, Rth: np.ndarray, lam: np.ndarray, *,
                    alpha: float, eps: float, T: int, G: np.ndarray, mean: np.ndarray, start: int = 0,
                    direct_from: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo ``R_l(k,s) / p = E[d l(k) / d h(s)]`` and ``R_z(k) / p = E[d l(k) / d z]``.

    Forward-mode differentiation of the data process per sample: with ``q = 1 + eps h``,
    ``dl(k)/dh(k) = eps Delta I + alpha/N q q^T`` and ``dl(k)/dh(0) = -alpha/N q(k) q(0)^T``
    (the centring reference), ``dl(k)/dz = -z q(k)`` directly, and
    ``dh(k) = de(k) - sum_{s<k} lam_s R_th(k,s) dl(s)``. Costs ``O(T^3 N^3)`` per sample.

    ``G`` (M, T_max N + 1, T_max N), zeros at first: the per-sample Jacobian, filled in place
    for the times ``start .. T-1``; those before ``start`` are an earlier call's, on the same
    draws and the same order parameters there (the process is causal), and are reused.
    ``mean`` (T_max N + 1, T_max N), zeros at first: its average over the samples, kept the same
    way. Both live as long as the solve: allocating and averaging the whole Jacobian at every
    iteration cost more than the new times themselves.

    ``direct_from`` (h, Delta, z of more samples, these ones first): the direct terms
    (:func:`_direct_mean`) are averaged over those instead, a control variate: the estimate
    stays unbiased and R_l's noise falls (13x at 100 of 8000 samples, at the online first
    guess of docs/dmft_numerics.py's case). See ``dmft``'s ``direct_control``.

    Returns R_l (T, T, N, N) and R_z (T, N) (without the factor p).
    """
    M, _, N = h.shape
    q = 1.0 + eps * h[:, :T]  # (M, T, N)
    Dk = eps * Delta[:, :T, None, None] * np.eye(N) + (alpha / N) * q[:, :, :, None] * q[:, :, None, :]
    Dk[:, 0] = eps * Delta[:, 0, None, None] * np.eye(N)  # at k = 0 the current and reference h coincide
    D0 = -(alpha / N) * q[:, :, :, None] * q[:, 0, None, None, :]  # (M, T, N, N)
    D0[:, 0] = 0.0
    dz = -z[:, None, None] * q  # (M, T, N) direct d l / d z
    # G[m, c, s*N + a] = d l_a(s) / d c for the inputs c = (z, e(0)_1..N, e(1)_1..N, ...): z first,
    # so the inputs that can reach l(s < k) are the contiguous first 1 + k N columns.
    ncol = T * N + 1
    eye = np.eye(N)

    def weights(k: int, times: slice) -> np.ndarray:
        """``lam_s R_th(k, s)`` for ``s`` in ``times``, as (N, len(times) N): [a, (s, b)]."""
        return (Rth[k, times] * lam[times, None, None]).transpose(1, 0, 2).reshape(N, -1)

    # What the reused times feed into every new time, in one matrix product: the Jacobian is
    # read once instead of once per new time (memory-bound, most of a solve). The reused
    # times' inputs are the first 1 + start N; their rows below are zero.
    if start > 0:
        reused = slice(0, start)
        fed = np.matmul(G[:, :1 + start * N, :start * N], np.concatenate([weights(k, reused) for k in range(start, T)]).T)
    for k in range(start, T):
        nc = 1 + (k + 1) * N
        Jh = np.zeros((M, nc, N))  # d h(k) / d c
        Jh[:, 1 + k * N:nc] = eye
        if start > 0:
            Jh[:, :1 + start * N] -= fed[:, :, (k - start) * N:(k - start + 1) * N]
        if k > start:
            Jh[:, :1 + k * N] -= np.matmul(G[:, :1 + k * N, start * N:k * N], weights(k, slice(start, k)).T)
        E = np.matmul(Jh, Dk[:, k].transpose(0, 2, 1))  # (M, nc, N): d l(k) / d c
        if k > 0:
            E[:, 1:1 + N] += D0[:, k].transpose(0, 2, 1)  # d h(0) / d e(0) = I: the reference moves too
        E[:, 0] += dz[:, k]
        G[:, :nc, k * N:(k + 1) * N] = E
    mean[:ncol, start * N:T * N] = G[:, :ncol, start * N:T * N].mean(0)
    if direct_from is not None:
        mean[:ncol, start * N:T * N] += (_direct_mean(*direct_from, alpha=alpha, eps=eps, T=T, start=start)
                                         - _direct_mean(h, Delta, z, alpha=alpha, eps=eps, T=T, start=start))
    Rz = mean[0, :T * N].reshape(T, N).copy()
    Rl = mean[1:ncol, :T * N].reshape(T, N, T, N).transpose(2, 0, 3, 1).copy()  # [k, s, a, b] = d l_a(k) / d e_b(s)
    return Rl, Rz


def _online_march(lam: np.ndarray, m0: np.ndarray, xi: np.ndarray, *, alpha: float, eps: float, p: float,
                  beta_sq: float = 1.0, C0: Optional[np.ndarray] = None):
    """Online (``p -> infinity``) solution marched forward in time: the first guess.

    Without the self-response the data process is Gaussian (``h = omega``) and without noise
    the weight process is local in time: ``theta(k+1) = theta(k) - lam_k [R_l(k,k) theta(k) +
    R_l(k,0) theta(0) + R_z(k) b]``. So ``theta(k) = Phi(k) theta(0) + rho(k) b`` and each step needs
    only the Gaussian law of ``(omega(k), omega(0), z)``, sampled from the fixed draws ``xi``
    (M, 2N+1). Returns ``R_l`` (T, T, N, N) (non-zero at ``s = k`` and ``s = 0``) and ``R_z``
    (T, N), both including the factor ``p``.
    """
    T, N = len(lam), len(m0)
    I = np.eye(N)
    S0 = I + np.outer(m0, m0) / beta_sq if C0 is None else C0
    Phi, rho = I.copy(), np.zeros(N)
    Rl = np.zeros((T, T, N, N))
    Rz = np.zeros((T, N))
    for k in range(T):
        # Covariance of v = (theta(k), theta(0), b): theta(k) = Phi theta(0) + rho b.
        A = np.zeros((2 * N + 1, N + 1))
        A[:N, :N], A[:N, N], A[N:2 * N, :N], A[2 * N, N] = Phi, rho, I, 1.0
        B = np.zeros((N + 1, N + 1))
        B[:N, :N], B[:N, N], B[N, :N], B[N, N] = S0, m0, m0, beta_sq
        S = A @ B @ A.T
        L = np.linalg.cholesky(0.5 * (S + S.T) + 1e-10 * np.trace(S) / len(S) * np.eye(len(S)))
        v = xi @ L.T
        h, h0, z = v[:, :N], v[:, N:2 * N], v[:, 2 * N]
        q, q0 = 1.0 + eps * h, 1.0 + eps * h0
        Delta = (alpha / N) * ((h - h0) + 0.5 * eps * (h * h - h0 * h0)).sum(1) - 0.5 * z * z
        Dk = eps * Delta.mean() * I
        if k > 0:  # at k = 0 the current and reference h coincide, so Delta has no h-dependence
            Dk = Dk + (alpha / N) * (q.T @ q) / len(q)
            Rl[k, 0] = -(alpha / N) * (q.T @ q0) / len(q) * p
        Rl[k, k] += Dk * p
        Rz[k] = (-z[:, None] * q).mean(0) * p
        step = Rl[k, k] @ Phi + (Rl[k, 0] if k > 0 else 0.0)
        Phi, rho = Phi - lam[k] * step, rho - lam[k] * (Rl[k, k] @ rho + Rz[k])
        if not (np.all(np.isfinite(Phi)) and np.abs(Phi).max() < 1e8):
            raise GroklabError(f"DMFT: the online first guess diverged at tau step {k}: the time step is too "
                               "long for the fast modes; use more steps or a smaller max_step")
    return Rl, Rz


# ----------------------------------------------------------------------------- solver
def dmft(*, alpha: float, eps: float, N: int, p: float, eta: float = 1.0, horizon: float = 10.0,
         steps: int = 80, first_step: Optional[float] = None, max_step: Optional[float] = None,
         D_init: Optional[float] = 400.0,
         m0: Optional[Sequence[float]] = None, beta_sq: float = 1.0,
         C0: Optional[np.ndarray] = None, samples: int = 10000, response_samples: int = 400,
         damping: float = 0.5, tol: float = 2e-3, max_iter: int = 60, window: Optional[int] = None,
         direct_control: bool = False, seed: int = 0,
         callback: Optional[Callable[[str, int, float], None]] = None) -> DMFTSolution:
    """Solve the finite-``P/D`` DMFT of the centred toy model by damped fixed-point iteration.

    Steps (paper 001, app. 13.6): (1) the online (``p -> infinity``) equations, marched forward
    in time (they are local in time there), give the first guess; (2) Monte Carlo samples of the data process, driven by
    Gaussian fields with the current weight covariance, give ``C_l``, ``R_l``, ``R_z``;
    (3) the weight process is solved exactly from them; (4) each order parameter moves a
    fraction ``damping`` toward its new estimate. The residual of an iteration is the
    largest relative change of ``C_l``, ``R_l`` and ``R_z``.

    Args:
        alpha, eps: output scale and quadratic weight of ``phi``.
        N: hidden neurons (fixed as D grows; cost grows like N^3).
        p: ``P / D``.
        eta: learning rate in units of ``N / alpha^2`` (the ``eta_0`` of FORMULAS.md).
        horizon: final time in ``tau = step / D``.
        steps: number of time steps of the grid.
        first_step: first step of a geometric grid (None: uniform).
        max_step: cap on the grid's steps (None: no cap).
        D_init: dimension whose typical initial overlap ``1/sqrt(D_init)`` seeds the escape
            from the saddle (None: strict limit, no escape).
        m0: (N,) explicit initial overlaps ``w_a . beta / D`` (override ``D_init``), e.g. those of
            a simulation's init, to predict its run given its initial macroscopic state.
        beta_sq: ``|beta|^2 / D`` (1 in the limit; a simulation's own value to condition on it).
        C0: (N, N) initial ``w_a . w_b / D`` (default ``I + m0 m0^T / beta_sq``, the limit).
        samples: Monte Carlo samples of the data process (losses, ``C_l``).
        response_samples: the first this many of them also give the responses.
        direct_control: control variates for the responses: R_l's direct terms (no path
            through the history) from all ``samples``, the rest from ``response_samples``,
            and R_z by Gaussian integration by parts from all samples (:func:`_stein_rz`).
            Each estimate stays unbiased, but neither fixed point is. In the recipe's setting
            "rich" the plain estimate groks early at few response samples and this one late, so
            the two bracketed the solution there; in "lazier" they do not, and only more
            response samples (or a mean over seeds) narrow the result (docs/theory.md).
        damping: step of the damped update, in (0, 1].
        tol: residual below which the iteration has converged.
        max_iter: iterations allowed per time window of the finite-data stage.
        window: time steps added to the iteration's window each time it converges (default
            ``steps // 6``).
        seed: seed of the Monte Carlo draws.
        callback: called as ``callback(stage, iteration, residual)`` after each iteration.

    Returns:
        :class:`DMFTSolution`.

    Raises:
        GroklabError: bad arguments, or no convergence within ``max_iter`` (the message
        gives the last residuals and what to change).
    """
    _check_args(alpha=alpha, eps=eps, N=N, p=p, eta=eta, horizon=horizon, steps=steps, samples=samples, beta_sq=beta_sq,
                response_samples=response_samples, damping=damping, tol=tol, max_iter=max_iter)
    m0 = default_overlaps(N, D_init) if m0 is None else np.asarray(m0, dtype=np.float64)
    if m0.shape != (N,) or not np.all(np.isfinite(m0)):
        raise GroklabError(f"m0 must be {N} finite numbers, one per neuron (got shape {m0.shape})")
    if C0 is not None:
        C0 = np.asarray(C0, dtype=np.float64)
        if C0.shape != (N, N) or not np.allclose(C0, C0.T) or np.linalg.eigvalsh(C0).min() <= 0:
            raise GroklabError(f"C0 must be a symmetric positive definite {N}x{N} matrix")
    tau = time_grid(horizon, steps, first=first_step, max_step=max_step)
    T = steps
    lam = np.diff(tau) * (2.0 * eta / alpha) / p  # lam_k = delta_k kappa / p
    rng = np.random.default_rng(seed)
    xi = rng.standard_normal((samples, (T + 1) * N + 1))  # fixed draws: a deterministic map
    kw = dict(alpha=alpha, eps=eps)
    r = response_samples
    # the responses' per-sample Jacobian and its mean, filled window by window (_data_responses)
    jacobian, jacobian_mean = np.zeros((r, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))

    def data_side(C, m, Rth, K, cache):
        """New estimates of (R_l, R_z, C_l) on the window [0, K], reusing the converged prefix."""
        omega, z = _gaussian_draws(C, m, xi, beta_sq)
        fwd = _data_forward(omega, z, Rth, lam[:K], self_response=True,
                            prev=None if cache is None else cache["fwd"], **kw)
        h, Delta, l = fwd
        Cl = p * _second_moment(l, K)
        Rl, Rz = _data_responses(h[:r], Delta[:r], z[:r], Rth, lam[:K], T=K, G=jacobian, mean=jacobian_mean,
                                 start=0 if cache is None else cache["done"],
                                 direct_from=(h, Delta, z) if direct_control else None, **kw)
        if direct_control:
            Rz = _stein_rz(l[:, :K], z, Rl, m[:K], beta_sq)
        return (Rl * p, Rz * p, Cl), dict(fwd=fwd)

    def residual(new, old):  # relative Frobenius change, the largest over the three
        return max(float(np.linalg.norm(a - b) / max(np.linalg.norm(a), 1e-12)) for a, b in zip(new, old))

    # (1) online first guess: order parameters at p -> infinity, marched forward in time; the
    # noise covariance C_l of that trajectory completes it.
    Rl, Rz = _online_march(lam, m0, xi[:, :2 * N + 1], alpha=alpha, eps=eps, p=p, beta_sq=beta_sq, C0=C0)
    C, m, Rth = _weight_side(Rl, Rz, np.zeros((T, N, T, N)), lam, m0, beta_sq, C0)
    omega, z = _gaussian_draws(C, m, xi, beta_sq)
    _, _, l = _data_forward(omega, z, Rth, lam, self_response=False, **kw)
    Cl = p * _second_moment(l, T)
    online = dict(test=np.array([gaussian_test_loss(C[k, :, k], C[k, :, 0], C[0, :, 0], m[k], m[0], beta_sq=beta_sq, **kw)
                                 for k in range(T + 1)]), overlap=m)

    # (2)-(4) finite data, on a time window [0, K] that grows by `window` steps each time the
    # iteration has converged on it. The equations are causal, so the converged early times
    # do not change when the window grows, and the far future, wrong in early iterations,
    # never feeds back (iterating on the whole horizon at once can blow up there).
    window = max(2, T // 6) if window is None else int(window)
    residuals: list[float] = []
    K0 = K = min(T, window)
    cache = None  # data process and Jacobians on the converged prefix of the window
    while True:
        for it in range(max_iter):
            C, m, Rth = _weight_side(Rl[:K, :K], Rz[:K], Cl[:K, :, :K], lam[:K], m0, beta_sq, C0)
            _check_finite(C, K, residuals)
            (Rl_n, Rz_n, Cl_n), state = data_side(C, m, Rth, K, cache)
            old = (Rl[:K, :K], Rz[:K], Cl[:K, :, :K])
            res = residual((Rl_n, Rz_n, Cl_n), old)
            residuals.append(res)
            if callback:
                callback(f"dmft[0:{K}]", it, res)
            if res < tol:
                # Keep the parameters `state` was computed from, so the cache stays exact.
                break
            # The first update on a new window is undamped: its C_l blocks at new times were zero.
            g = 1.0 if it == 0 and K > K0 else damping
            Rl[:K, :K] = (1 - g) * old[0] + g * Rl_n
            Rz[:K] = (1 - g) * old[1] + g * Rz_n
            Cl[:K, :, :K] = (1 - g) * old[2] + g * Cl_n
        else:
            raise GroklabError(
                f"DMFT did not converge in {max_iter} iterations on the window tau <= {tau[K]:.3g} "
                f"(residuals, last 5: {', '.join(f'{r:.2g}' for r in residuals[-5:])}; tol {tol:g}): lower "
                f"damping, raise response_samples, or refine the time grid (steps={steps}, horizon={horizon:g})")
        if K == T:
            break
        K_prev, K = K, min(T, K + window)
        cache = dict(fwd=tuple(a[:, :K_prev + 1] for a in state["fwd"]), done=K_prev)
        # New times start from the online guess for R_l, R_z and from zero noise: mixing the
        # online C_l with the converged one could make the covariance indefinite.
        Cl[K_prev:], Cl[:, :, K_prev:] = 0.0, 0.0
    C, m, Rth = _weight_side(Rl, Rz, Cl, lam, m0, beta_sq, C0)
    omega, z = _gaussian_draws(C, m, xi, beta_sq)
    _, Delta, _ = _data_forward(omega, z, Rth, lam, self_response=True, **kw)
    test = np.array([gaussian_test_loss(C[k, :, k], C[k, :, 0], C[0, :, 0], m[k], m[0], beta_sq=beta_sq, **kw)
                     for k in range(T + 1)])
    # Control variate: the same draws without the self-response are fresh (test) points, whose
    # mean squared error is known exactly. y^2 is heavy-tailed (4000 draws give ~5% error
    # alone); the regression coefficient c = Cov / Var (per time) makes the estimate no noisier
    # than the plain mean even late in training, when train and test errors decorrelate.
    phi = omega + 0.5 * eps * omega * omega
    Delta_fresh = (alpha / N) * (phi - phi[:, :1]).sum(2) - 0.5 * z[:, None] ** 2
    a, b = Delta ** 2, Delta_fresh ** 2
    ac, bc = a - a.mean(0), b - b.mean(0)
    c = (ac * bc).mean(0) / np.maximum((bc * bc).mean(0), 1e-300)
    train = a.mean(0) - c * (b.mean(0) - test)
    norm = np.stack([np.diag(C[k, :, k]) for k in range(T + 1)])
    params = dict(alpha=alpha, eps=eps, N=N, p=p, eta=eta, horizon=horizon, steps=steps,
                  first_step=first_step, max_step=max_step, D_init=D_init, m0=m0.tolist(), beta_sq=beta_sq,
                  C0=None if C0 is None else C0.tolist(), samples=samples,
                  response_samples=response_samples, direct_control=direct_control, damping=damping, tol=tol,
                  seed=seed)
    return DMFTSolution(tau=tau, train_loss=train, test_loss=test, overlap=m,
                        cosine=m / np.sqrt(norm), norm=norm, residuals=residuals,
                        online_test_loss=online["test"], online_overlap=online["overlap"], converged=True,
                        params=params)


def _check_finite(C: np.ndarray, K: int, residuals: list) -> None:
    if not np.all(np.isfinite(C)) or np.abs(C).max() > 1e12:
        raise GroklabError(f"DMFT diverged on the window of {K} steps (residuals so far: "
                           f"{', '.join(f'{r:.2g}' for r in residuals[-5:]) or 'none'}): the time step is "
                           "too long for the fast (lazy) modes; use more steps or a smaller first_step")


def _check_args(**a) -> None:
    """One clear error for arguments outside the domain of the equations."""
    for name in ("alpha", "eps", "p", "eta", "horizon", "tol", "beta_sq"):
        v = a[name]
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise GroklabError(f"dmft: {name} must be a finite number > 0, got {v!r}")
    for name in ("N", "steps", "samples", "response_samples", "max_iter"):
        v = a[name]
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise GroklabError(f"dmft: {name} must be a positive integer, got {v!r}")
    if a["steps"] < 2:
        raise GroklabError(f"dmft: steps must be at least 2, got {a['steps']}")
    if not 0 < a["damping"] <= 1:
        raise GroklabError(f"dmft: damping must be in (0, 1], got {a['damping']!r}")
    if a["response_samples"] > a["samples"]:
        raise GroklabError(f"dmft: response_samples ({a['response_samples']}) cannot exceed samples "
                           f"({a['samples']})")
