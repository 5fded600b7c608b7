"""Closed-form statistics of the lazy-to-rich toy model (paper 001, section 5, appendices 11-12).

For the committee machine of :mod:`groklab.models.committee` with ``phi(h) = h + eps/2 h^2``
everything is a function of two moments of the weights (FORMULAS.md):

* ``wbar = (1/N) sum_i v_i w_i`` and ``M = (1/N) sum_i v_i w_i w_i^T`` (``v_i = 1`` for
  fixed readouts), so ``f(x) = alpha wbar . x + (alpha eps / 2) x^T M x``;
* the population loss for ``x ~ N(0, I/D)`` and ``y = 0.5 x^T T x`` (``T = beta beta^T`` for
  the paper's task) splits into three terms (eq. 6 / appendix eq. 22);
* the NTK (eq. 5) and the spectrum of the initial NTK (appendix 11.1).

Inputs here are the *normalised* inputs ``x ~ N(0, I/D)``. For a model with
``input_scale = s`` pass ``s * x``; for the ``x ~ N(0, I)`` variant with target
``(beta . x / sqrt(D))^2`` use ``s = 1/sqrt(D)`` and ``T = 2 beta beta^T``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "SummaryStatistics",
    "summary_statistics",
    "toy_model_output",
    "top_eigenvector_alignment",
    "wbar_alignment",
    "LossDecomposition",
    "target_matrix",
    "loss_decomposition",
    "toy_ntk",
    "InitialNTKSpectrum",
    "initial_ntk_eigenvalues",
]


@dataclass(frozen=True, eq=False)  # eq on tensors would be ambiguous
class SummaryStatistics:
    """Weight moments of the toy model.

    Attributes:
        wbar: (D,) readout-weighted mean weight ``(1/N) sum_i v_i w_i``.
        M: (D, D) readout-weighted second moment ``(1/N) sum_i v_i w_i w_i^T``.
    """

    wbar: torch.Tensor
    M: torch.Tensor

    @property
    def trace(self) -> torch.Tensor:
        """``Tr M`` (scalar tensor)."""
        return torch.diagonal(self.M, dim1=-2, dim2=-1).sum(-1)


def summary_statistics(W: torch.Tensor, v: torch.Tensor | None = None) -> SummaryStatistics:
    """``wbar = (1/N) sum_i v_i w_i``, ``M = (1/N) sum_i v_i w_i w_i^T`` (FORMULAS.md).

    With trainable readouts the weights enter through ``v_i`` (paper 001 appendix eq. 24);
    ``v = None`` means ``v_i = 1``.

    Args:
        W: (N, D) first-layer weights.
        v: (N,) readouts or None.

    Returns:
        :class:`SummaryStatistics` with detached tensors.
    """
    W = W.detach()
    N = W.shape[0]
    v = torch.ones(N, dtype=W.dtype, device=W.device) if v is None else v.detach()
    wbar = (v @ W) / N  # (D,)
    M = (W.T * v) @ W / N  # (D, D)
    return SummaryStatistics(wbar=wbar, M=M)


def toy_model_output(x: torch.Tensor, wbar: torch.Tensor, M: torch.Tensor, *,
                     alpha: float, eps: float) -> torch.Tensor:
    """``f(x) = alpha wbar . x + (alpha eps / 2) x^T M x`` (FORMULAS.md, summary statistics).

    Args:
        x: (B, D) inputs (already multiplied by the model's ``input_scale``).
        wbar: (D,), M: (D, D).

    Returns:
        (B,) outputs.
    """
    return alpha * (x @ wbar) + 0.5 * alpha * eps * ((x @ M) * x).sum(-1)


def _unit(u: torch.Tensor) -> torch.Tensor:
    return u / u.norm()


def top_eigenvector_alignment(M: torch.Tensor, beta: torch.Tensor) -> float:
    """``|u_1 . beta| / |beta|`` with ``u_1`` the unit eigenvector of M's largest-|eigenvalue|.

    The largest *magnitude* is used so the statistic also fits ``M - M_0``, whose optimum
    ``beta beta^T / (alpha eps)`` is negative definite when ``alpha eps < 0``; for a PSD M
    it is the usual top eigenvector. The sign of ``u_1`` is arbitrary, hence ``|.|``.

    Args:
        M: (D, D) symmetric.
        beta: (D,).
    """
    M = M.detach().to(torch.float64)
    if not torch.isfinite(M).all():  # a diverged run: no eigenvectors to speak of
        return float("nan")
    evals, evecs = torch.linalg.eigh(0.5 * (M + M.T))
    u1 = evecs[:, torch.argmax(evals.abs())]  # (D,)
    return float((u1 @ _unit(beta.detach().to(torch.float64))).abs())


def wbar_alignment(wbar: torch.Tensor, beta: torch.Tensor) -> float:
    """Cosine ``wbar . beta / (|wbar| |beta|)`` (signed; 0 if ``wbar = 0``).

    Args:
        wbar: (D,), beta: (D,).
    """
    wbar = wbar.detach().to(torch.float64)
    n = wbar.norm()
    if n == 0:
        return 0.0
    return float(wbar @ _unit(beta.detach().to(torch.float64)) / n)


@dataclass(frozen=True, eq=False)
class LossDecomposition:
    """The three terms of the toy model's population loss (FORMULAS.md eq. 6).

    Attributes (tensors of the batch shape of the inputs, float64):
        scale: ``1/4 (Tr T / D - alpha eps Tr dM / D)^2`` (variance/scale).
        misalignment: ``1/(2 D^2) |alpha eps dM - T|_F^2``.
        linear: ``alpha^2 |dw|^2 / D`` (power in linear modes).
    """

    scale: torch.Tensor
    misalignment: torch.Tensor
    linear: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """Population MSE ``E[(f(x) - y)^2]``, the sum of the three terms."""
        return self.scale + self.misalignment + self.linear


def target_matrix(directions: torch.Tensor, *, weight: float = 1.0) -> torch.Tensor:
    """``T = weight * sum_k beta_k beta_k^T`` so that the target is ``y = 0.5 x^T T x``.

    ``weight = 1`` for the paper's quadratics, ``2`` for the ``x ~ N(0, I)`` variant written
    in the normalised input ``x / sqrt(D)``.

    Args:
        directions: (K, D) or (D,).

    Returns:
        (D, D).
    """
    B = directions.reshape(-1, directions.shape[-1])  # (K, D)
    return weight * B.T @ B


def loss_decomposition(wbar: torch.Tensor, M: torch.Tensor, target: torch.Tensor, *,
                       alpha: float, eps: float, wbar0: torch.Tensor | None = None,
                       M0: torch.Tensor | None = None) -> LossDecomposition:
    """Population test loss of the toy model split into three terms (paper 001 eq. 6).

    For ``x ~ N(0, I/D)``, predictor ``alpha dw . x + (alpha eps/2) x^T dM x`` and target
    ``y = 0.5 x^T T x``, with ``A = T - alpha eps dM`` the residual is
    ``alpha dw . x - 0.5 x^T A x``; Gaussian moments give
    ``E[r^2] = 1/4 (Tr A / D)^2 + |A|_F^2 / (2 D^2) + alpha^2 |dw|^2 / D``
    (FORMULAS.md; for ``T = beta beta^T`` these are the printed terms).

    ``dw = wbar - wbar0``, ``dM = M - M0``: pass the init moments for the centred predictor
    ``f(theta) - f(theta_0)``, leave them None for the plain predictor. Use the
    readout-weighted moments for trainable readouts (:func:`summary_statistics` with ``v``).

    Args:
        wbar: (..., D); M: (..., D, D) (symmetrised internally).
        target: (D,) direction ``beta`` (then ``T = beta beta^T``) or (D, D) matrix ``T``.
        alpha, eps: model constants.
        wbar0: (..., D) or None; M0: (..., D, D) or None.

    Returns:
        :class:`LossDecomposition` (float64 tensors of the batch shape), differentiable
        in the inputs (so it can serve as the population loss of a weight matrix).
    """
    f64 = torch.float64
    wbar = torch.as_tensor(wbar).to(f64)
    M = torch.as_tensor(M).to(f64)
    D = wbar.shape[-1]
    T = torch.as_tensor(target).to(f64)
    T = target_matrix(T) if T.ndim == 1 else T  # (D, D)
    dw = wbar if wbar0 is None else wbar - torch.as_tensor(wbar0).to(f64)
    dM = M if M0 is None else M - torch.as_tensor(M0).to(f64)
    dM = 0.5 * (dM + dM.transpose(-1, -2))  # only the symmetric part enters x^T dM x
    A = T - alpha * eps * dM  # (..., D, D)
    trA = torch.diagonal(A, dim1=-2, dim2=-1).sum(-1)
    return LossDecomposition(
        scale=0.25 * (trA / D) ** 2,
        misalignment=(A * A).sum((-1, -2)) / (2 * D ** 2),
        linear=alpha ** 2 * (dw * dw).sum(-1) / D,
    )


def toy_ntk(x1: torch.Tensor, x2: torch.Tensor, wbar: torch.Tensor, M: torch.Tensor, *,
            eps: float, prefactor: float) -> torch.Tensor:
    """Analytic NTK of the committee machine with fixed readouts (paper 001 eq. 5).

    ``K(x, x') = prefactor * (x.x') [1 + eps wbar.(x + x') + eps^2 x^T M x']``.

    Derivation: ``df/dw_i = (alpha/N) (1 + eps w_i.x) x``, so
    ``sum_i df(x)/dw_i . df(x')/dw_i
    = (alpha^2/N) (x.x') (1/N) sum_i (1 + eps w_i.x)(1 + eps w_i.x')``.
    The paper prints the bracket without ``alpha^2 / N`` (its learning rate ``N / alpha^2``
    absorbs the factor), so the factor is an explicit argument:

    * ``prefactor = alpha**2 / N``: the true NTK of
      :class:`~groklab.models.committee.CommitteeMachine` (gradients w.r.t. ``W`` only,
      ``input_scale`` already applied to ``x``);
    * ``prefactor = 1``: eq. 5 as printed.

    At init in a wide net (``wbar = 0``, ``M = I``) this is ``x.x' + eps^2 (x.x')^2``.
    Only valid for ``v_i = 1``: with trainable readouts the NTK is not a function of
    ``(wbar, M)`` (paper 001 appendix 11).

    Args:
        x1: (P1, D); x2: (P2, D); wbar: (D,); M: (D, D).

    Returns:
        (P1, P2) kernel.
    """
    dot = x1 @ x2.T  # (P1, P2)
    lin = (x1 @ wbar)[:, None] + (x2 @ wbar)[None, :]  # (P1, P2)
    quad = x1 @ M @ x2.T  # (P1, P2)
    return prefactor * dot * (1.0 + eps * lin + eps ** 2 * quad)


@dataclass(frozen=True)
class InitialNTKSpectrum:
    """Mercer eigenvalues of ``K0(x,x') = prefactor [x.x' + eps^2 (x.x')^2]`` under ``N(0, I/D)``.

    Attributes:
        linear: eigenvalue of ``x_i`` (multiplicity ``D``).
        quadratic: eigenvalue of ``x_i x_j`` (i != j) and ``x_i^2 - |x|^2/D``
            (multiplicity ``D (D + 1) / 2 - 1``).
        isotropic: eigenvalue of ``|x|^2`` (multiplicity 1).
        multiplicities: (linear, quadratic, isotropic) multiplicities.
    """

    linear: float
    quadratic: float
    isotropic: float
    multiplicities: tuple[int, int, int]


def initial_ntk_eigenvalues(D: int, eps: float, *, prefactor: float = 1.0) -> InitialNTKSpectrum:
    """Eigenvalues of the wide-network initial NTK for ``x ~ N(0, I/D)`` (appendix 11.1).

    ``x_i``: ``1/D``; quadratic modes: ``2 eps^2 / D^2``; ``|x|^2``: ``(eps^2/D)(1 + 2/D)``,
    all times ``prefactor`` (1 for the printed kernel, ``alpha^2/N`` for the true NTK).
    The paper's ``2 eps / D^2`` is a typo (FORMULAS.md): the quadratic part of K0 is
    ``eps^2 (x.x')^2`` and ``E[(x.x')^2 x'_i x'_j] = 2 x_i x_j / D^2``.
    Kernel regression thus needs ``P ~ D^2 / (2 eps^2)`` samples for the quadratic part.
    """
    return InitialNTKSpectrum(
        linear=prefactor / D,
        quadratic=prefactor * 2.0 * eps ** 2 / D ** 2,
        isotropic=prefactor * (eps ** 2 / D) * (1.0 + 2.0 / D),
        multiplicities=(D, D * (D + 1) // 2 - 1, 1),
    )
