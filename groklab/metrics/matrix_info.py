"""Matrix-based information theory on Gram matrices of l2-normalised features.

Implements the quantities of Tan & Huang, "Understanding grokking through a robustness
viewpoint" (paper 000), Definitions 2.1, 2.2, A.1, A.2 and 4.1-4.4:

* Gram matrix ``R = Z Z^T`` of row-normalised features ``Z`` (unit diagonal).
* Matrix Renyi entropy of order ``a``:
  ``H_a(R) = 1/(1-a) * log tr((R/n)^a)``; ``a = 1`` is the von Neumann limit
  ``-tr((R/n) log(R/n))``. Units: nats.
* Joint entropy ``H_a(R1 o R2)`` (Hadamard product), mutual information
  ``I_a = H_a(R1) + H_a(R2) - H_a(R1 o R2)``, JS divergence
  ``H_1((R1+R2)/2) - (H_1(R1) + H_1(R2))/2``.
* Perturbed entropy (PE) / perturbed mutual information (PMI) of a network under Gaussian
  input noise, and their differences to the noise-free values (ED, MID).

Every quantity is the entropy of the Gram matrix of *some* feature map:

============================  =======================================================
quantity                      feature map whose Gram matrix is used
============================  =======================================================
``H(R)``                      ``z_i`` (row-normalised features)
``H(R1 o R2)``                ``z1_i (x) z2_i`` (row-wise Kronecker product, d1*d2 wide)
``H((R1 + R2)/2)``            ``[z1_i, z2_i] / sqrt(2)`` (concatenation, d1+d2 wide)
============================  =======================================================

``Z Z^T`` (n x n) and ``Z^T Z`` (d x d) share their non-zero spectrum, so all entropies are
computed by ``eigvalsh`` of whichever of the two is smaller; that is the speed trick that
makes PE on thousands of samples cheap. All spectra go through one routine,
:func:`_density_spectrum`, in float64 (the returned value is cast back to the input dtype).

Everything here is differentiable with torch autograd, so e.g. ``-mutual_information`` can
be added to a training loss (paper section 4.3). Nothing is wrapped in ``no_grad``; callers
that only want numbers should use ``torch.no_grad()`` themselves.

Normalisation convention: densities are ``R / tr(R)``. For a Gram matrix with unit diagonal
(the paper's assumption) ``tr(R) = n`` so this is the paper's ``R / n``. Rows that are exactly
zero cannot be normalised; they are mapped to zero vectors, so ``R`` has a zero row/column
there and dividing by ``tr(R)`` keeps the density a proper (trace one) density over the
remaining samples.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    "gram",
    "perturbation_profile",
    "discrete_renyi_entropy",
    "renyi_entropy",
    "renyi_entropy_from_gram",
    "joint_entropy",
    "mutual_information",
    "js_divergence",
    "covariance_entropy",
    "perturbed_entropy",
    "perturbed_mutual_information",
    "mid",
    "ed",
]

Forward = Callable[[Tensor], Tensor]


# --------------------------------------------------------------------------------------
# private building blocks
# --------------------------------------------------------------------------------------


def _flatten(features: Tensor) -> Tensor:
    """Flatten ``(n, ...)`` to ``(n, d)`` so images and sequences can be passed as-is."""
    if features.dim() < 1:
        raise ValueError("features must have a leading sample dimension")
    if features.dim() == 1:
        return features.reshape(-1, 1)
    return features.reshape(features.shape[0], -1)


def _unit_rows(features: Tensor) -> Tensor:
    """l2-normalise the rows of ``(n, ...)`` features -> ``(n, d)``; zero rows stay zero.

    ``torch.nn.functional.normalize`` clamps the norm at 1e-12, which gives a zero row a
    1e12 gradient; dividing by 1 instead keeps both the value (zero) and the gradient finite.
    """
    z = _flatten(features)  # (n, d)
    norms = torch.linalg.vector_norm(z, dim=1, keepdim=True)  # (n, 1)
    safe = torch.where(norms > 0, norms, torch.ones_like(norms))
    return z / safe


def _float64(x: Tensor) -> Tensor:
    if not torch.is_floating_point(x):
        x = x.to(torch.get_default_dtype())
    return x.to(torch.float64)


def _out_dtype(*tensors: Tensor) -> torch.dtype:
    """Floating dtype the results are returned in (the widest floating input dtype)."""
    dtypes = [t.dtype for t in tensors if torch.is_floating_point(t)]
    if not dtypes:
        return torch.get_default_dtype()
    out = dtypes[0]
    for dt in dtypes[1:]:
        out = torch.promote_types(out, dt)
    return out


def _check_order(order: float) -> float:
    order = float(order)
    if not (order > 0 and math.isfinite(order)):
        raise ValueError(f"order must be a finite positive number, got {order}")
    return order


def _density_spectrum(psd: Tensor) -> Tensor:
    """Eigenvalues of ``psd / tr(psd)`` for a symmetric PSD matrix ``(m, m)`` -> ``(m,)``.

    The single eigenvalue routine behind every entropy in this module. Works in float64.
    Eigenvalues below the ``eigvalsh`` noise floor (``m * eps`` relative to a trace of one)
    are set to exactly zero: they are rounding noise, and zeroing them makes the n x n and
    d x d routes agree and keeps ``p log p`` / ``p**a`` gradients finite.
    """
    psd = _float64(psd)
    psd = 0.5 * (psd + psd.mT)  # exact symmetry; eigvalsh only reads one triangle
    lam = torch.linalg.eigvalsh(psd).clamp_min(0.0)  # (m,)
    total = lam.sum()
    if not bool(total > 0):
        raise ValueError("entropy of an all-zero Gram matrix is undefined")
    p = lam / total
    floor = psd.shape[-1] * torch.finfo(torch.float64).eps
    return torch.where(p > floor, p, torch.zeros_like(p))


def _feature_spectrum(z: Tensor) -> Tensor:
    """Spectrum of the trace-normalised Gram matrix of features ``z`` (n, d).

    Uses ``z^T z`` (d x d) when ``d < n`` and ``z z^T`` (n x n) otherwise; both have the same
    non-zero eigenvalues and the same trace.
    """
    n, d = z.shape
    m = z.mT @ z if d < n else z @ z.mT  # (min(n, d), min(n, d))
    return _density_spectrum(m)


def _entropy_of_features(z: Tensor, order: float) -> Tensor:
    return discrete_renyi_entropy(_feature_spectrum(z), order)


def _paired(f1: Tensor, f2: Tensor) -> tuple[Tensor, Tensor]:
    z1, z2 = _unit_rows(_float64(f1)), _unit_rows(_float64(f2))
    if z1.shape[0] != z2.shape[0]:
        raise ValueError(f"sample counts differ: {z1.shape[0]} vs {z2.shape[0]}")
    return z1, z2


def _noisy(inputs: Tensor, sigma: float, generator: torch.Generator | None) -> Tensor:
    """``inputs + sigma * N(0, I)``; no draw (and no generator needed) when ``sigma == 0``."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if sigma == 0:
        return inputs
    return inputs + sigma * _standard_noise(inputs, generator)


def _standard_noise(inputs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One ``N(0, I)`` draw of the shape of ``inputs``, from ``generator``."""
    if generator is None:
        raise ValueError("a torch.Generator is required when sigma > 0")
    return torch.randn(inputs.shape, generator=generator, device=generator.device, dtype=inputs.dtype).to(inputs.device)


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def gram(features: Tensor) -> Tensor:
    """Gram matrix of l2-normalised features.

    Args:
        features: ``(n, ...)``; trailing dimensions are flattened to ``d``.

    Returns:
        ``R = Z Z^T`` of shape ``(n, n)`` where ``Z`` has the rows of ``features`` scaled to
        unit l2 norm, so ``R_ii = 1`` and ``R_ij`` is the cosine similarity of samples i, j.
        A row that is exactly zero stays zero (``R_ii = 0`` there) instead of producing NaN,
        and its gradient stays finite. Same dtype as ``features``.
    """
    z = _unit_rows(features)  # (n, d)
    return z @ z.mT


def discrete_renyi_entropy(probs: Tensor, order: float = 1.0, dim: int = -1) -> Tensor:
    """Renyi entropy of discrete distributions, in nats.

    ``H_a(p) = 1/(1-a) * log sum_i p_i^a`` and, for ``a = 1``, the Shannon entropy
    ``-sum_i p_i log p_i`` (with ``0 log 0 = 0``).

    Args:
        probs: non-negative tensor whose slices along ``dim`` sum to one.
        order: ``a > 0``.
        dim: the dimension holding the distribution.

    Returns:
        Tensor with ``dim`` reduced. Zero entries contribute nothing and get a zero
        (not NaN) gradient.
    """
    order = _check_order(order)
    positive = probs > 0
    safe = torch.where(positive, probs, torch.ones_like(probs))
    if order == 1.0:
        return -(probs * safe.log()).sum(dim)
    powered = torch.where(positive, safe**order, torch.zeros_like(probs))
    return powered.sum(dim).log() / (1.0 - order)


def renyi_entropy_from_gram(gram_matrix: Tensor, order: float = 1.0) -> Tensor:
    """Matrix Renyi entropy of a precomputed Gram matrix, in nats.

    ``H_a(R) = 1/(1-a) * log tr((R / tr R)^a)``, von Neumann ``-tr(rho log rho)`` for
    ``a = 1``; ``tr R = n`` for the unit-diagonal Gram matrices of the paper.

    Args:
        gram_matrix: symmetric PSD ``(n, n)``, e.g. from :func:`gram`.
        order: ``a > 0``.

    Returns:
        Scalar tensor in the dtype of ``gram_matrix`` (computed in float64). Cost: one
        ``n x n`` ``eigvalsh``; prefer :func:`renyi_entropy` on features when ``d < n``.
    """
    order = _check_order(order)
    if gram_matrix.dim() != 2 or gram_matrix.shape[0] != gram_matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(gram_matrix.shape)}")
    h = discrete_renyi_entropy(_density_spectrum(gram_matrix), order)
    return h.to(_out_dtype(gram_matrix))


def renyi_entropy(features: Tensor, order: float = 1.0) -> Tensor:
    """Matrix Renyi entropy of the Gram matrix of l2-normalised features, in nats.

    ``H_a(R) = 1/(1-a) * log tr((R/n)^a)`` with ``R = gram(features)``; ``a = 1`` gives the
    von Neumann entropy ``-tr((R/n) log(R/n))``. Ranges over ``[0, log min(n, d)]``.

    Args:
        features: ``(n, ...)``, flattened to ``(n, d)``.
        order: ``a > 0``.

    Returns:
        Scalar tensor in the dtype of ``features``. Computed in float64 from the ``d x d``
        matrix ``Z^T Z`` when ``d < n`` (same non-zero spectrum as ``Z Z^T``), else from the
        ``n x n`` Gram matrix, so the cost is ``O(n d min(n, d) + min(n, d)^3)``.
    """
    order = _check_order(order)
    z = _unit_rows(_float64(features))  # (n, d)
    return _entropy_of_features(z, order).to(_out_dtype(features))


def joint_entropy(f1: Tensor, f2: Tensor, order: float = 1.0) -> Tensor:
    """Matrix joint entropy ``H_a(R1 o R2)`` (paper Def. A.1), in nats.

    ``R1 o R2`` is the Hadamard product of the two Gram matrices, which is itself the Gram
    matrix of the row-wise Kronecker features ``z1_i (x) z2_i`` (width ``d1 * d2``, still unit
    norm). The cheaper of that ``(d1 d2) x (d1 d2)`` covariance and the ``n x n`` Hadamard
    product is diagonalised.

    Args:
        f1: ``(n, ...)`` features of the first representation.
        f2: ``(n, ...)`` features of the second representation (same ``n``).
        order: ``a > 0``.

    Returns:
        Scalar tensor, dtype promoted from the inputs.
    """
    order = _check_order(order)
    z1, z2 = _paired(f1, f2)
    n, d1 = z1.shape
    d2 = z2.shape[1]
    if d1 * d2 < n:
        kron = (z1[:, :, None] * z2[:, None, :]).reshape(n, d1 * d2)  # (n, d1*d2)
        h = _entropy_of_features(kron, order)
    else:
        hadamard = (z1 @ z1.mT) * (z2 @ z2.mT)  # (n, n)
        h = discrete_renyi_entropy(_density_spectrum(hadamard), order)
    return h.to(_out_dtype(f1, f2))


def mutual_information(f1: Tensor, f2: Tensor, order: float = 1.0) -> Tensor:
    """Matrix mutual information (paper Def. 2.2), in nats.

    ``I_a(R1; R2) = H_a(R1) + H_a(R2) - H_a(R1 o R2)``.

    Note that ``I(R; R) = 2 H(R) - H(R o R)``, which equals ``H(R)`` only when ``R o R = R``,
    i.e. for 0/1 Gram matrices such as those of one-hot (cluster-indicator) features.

    Args:
        f1, f2: ``(n, ...)`` features of two representations of the same ``n`` samples.
        order: ``a > 0``.

    Returns:
        Scalar tensor, dtype promoted from the inputs.
    """
    order = _check_order(order)
    z1, z2 = _paired(f1, f2)
    h = _entropy_of_features(z1, order) + _entropy_of_features(z2, order)
    return (h - joint_entropy(z1, z2, order).to(torch.float64)).to(_out_dtype(f1, f2))


def js_divergence(f1: Tensor, f2: Tensor) -> Tensor:
    """Matrix Jensen-Shannon divergence (paper Def. A.2), in nats.

    ``JS(R1 || R2) = H_1((R1 + R2)/2) - (H_1(R1) + H_1(R2))/2`` with von Neumann entropies.
    ``(R1 + R2)/2`` is the Gram matrix of the concatenated features ``[z1, z2] / sqrt(2)``
    (width ``d1 + d2``), which is how it is computed. Non-negative by concavity of the von
    Neumann entropy, zero iff ``R1 = R2``, at most ``log 2``.

    Args:
        f1, f2: ``(n, ...)`` features of the same ``n`` samples.

    Returns:
        Scalar tensor, dtype promoted from the inputs.
    """
    z1, z2 = _paired(f1, f2)
    mixed = torch.cat([z1, z2], dim=1) / math.sqrt(2.0)  # (n, d1 + d2)
    h_mix = _entropy_of_features(mixed, 1.0)
    h_mean = 0.5 * (_entropy_of_features(z1, 1.0) + _entropy_of_features(z2, 1.0))
    return (h_mix - h_mean).to(_out_dtype(f1, f2))


def covariance_entropy(features: Tensor, order: float = 1.0, center: bool = True) -> Tensor:
    """Renyi entropy of the trace-normalised feature covariance (paper Fig. 21), in nats.

    ``C = X_c^T X_c / n`` with ``X_c`` the raw (not row-normalised) features, centred over
    samples when ``center`` is true; the entropy is that of ``C / tr(C)``:
    ``1/(1-a) log tr((C/tr C)^a)``, von Neumann for ``a = 1``. It measures how many feature
    directions carry variance (the exponential is an effective rank).

    The paper does not define this quantity precisely; we read it as the usual centred
    covariance of the raw features. With ``center=False`` and rows already of unit norm it
    coincides with :func:`renyi_entropy` (``Z^T Z`` and ``Z Z^T`` share their spectrum).

    Args:
        features: ``(n, ...)``, flattened to ``(n, d)``.
        order: ``a > 0``.
        center: subtract the per-feature mean first.

    Returns:
        Scalar tensor in the dtype of ``features``. Raises ``ValueError`` when the covariance
        is zero (all samples equal after centring).
    """
    order = _check_order(order)
    x = _flatten(_float64(features))  # (n, d)
    if center:
        x = x - x.mean(dim=0, keepdim=True)
    return _entropy_of_features(x, order).to(_out_dtype(features))


def perturbed_entropy(forward: Forward, inputs: Tensor, sigma: float, generator: torch.Generator | None,
                      order: float = 1.0) -> Tensor:
    """Perturbed entropy PE(f, D, sigma) (paper Def. 4.2), in nats.

    Matrix entropy of the Gram matrix of the logits ``forward(inputs + sigma * eps)`` with
    ``eps ~ N(0, I)``, i.e. noise of standard deviation ``sigma`` (covariance ``sigma^2 I``).

    Args:
        forward: maps float inputs ``(n, ...)`` to logits ``(n, k)``.
        inputs: float inputs ``(n, ...)`` (for token models pass one-hot inputs and a forward
            that multiplies them into the embedding).
        sigma: noise standard deviation, ``>= 0``; ``sigma = 0`` draws nothing.
        generator: the only source of randomness; may be ``None`` when ``sigma == 0``.
        order: matrix-entropy order ``a``.

    Returns:
        Scalar tensor; differentiable through ``forward``.
    """
    logits = forward(_noisy(inputs, sigma, generator))  # (n, k)
    return renyi_entropy(logits, order)


def perturbed_mutual_information(forward: Forward, inputs: Tensor, sigma: float, generator: torch.Generator | None,
                                 order: float = 1.0) -> Tensor:
    """Perturbed mutual information PMI(f, D, sigma) (paper Def. 4.1), in nats.

    Matrix mutual information between the input layer and the logit layer, both evaluated on
    the perturbed inputs ``x + sigma * eps`` (``eps ~ N(0, I)``):
    ``I(gram(x_noisy); gram(forward(x_noisy)))``.

    Args: as :func:`perturbed_entropy`.

    Returns:
        Scalar tensor; differentiable through ``forward``.
    """
    noisy = _noisy(inputs, sigma, generator)  # (n, ...)
    return mutual_information(noisy, forward(noisy), order)


def perturbation_profile(
    forward: Forward,
    inputs: Tensor,
    noise: Tensor,
    sigmas: Sequence[float],
    order: float = 1.0,
    clean: Optional[tuple[Tensor, Tensor]] = None,
) -> dict[float, dict[str, Tensor]]:
    """PE and PMI (Defs. 4.2, 4.1) at every ``sigma`` for the inputs ``inputs + sigma * noise``,
    and MID = ``|PMI(sigma) - PMI(0)|``, ED = ``|PE(sigma) - PE(0)|`` (Defs. 4.3, 4.4): the one
    place MID and ED are defined. One noise draw serves every sigma, and the clean values are
    computed once (or given as ``clean = (PE(0), PMI(0))``, e.g. measured on another encoding
    of the same inputs).

    Returns:
        ``{sigma: {"pe", "pmi", "mid", "ed"}}``, scalar tensors in nats.
    """
    if clean is None:
        clean_logits = forward(inputs)
        clean = (renyi_entropy(clean_logits, order), mutual_information(inputs, clean_logits, order))
    pe0, pmi0 = clean
    out = {}
    for sigma in sigmas:
        noisy = inputs + sigma * noise if sigma else inputs
        logits = forward(noisy)
        pe, pmi = renyi_entropy(logits, order), mutual_information(noisy, logits, order)
        out[sigma] = {"pe": pe, "pmi": pmi, "mid": (pmi - pmi0).abs(), "ed": (pe - pe0).abs()}
    return out


def _one_sigma(forward: Forward, inputs: Tensor, sigma: float, generator, order: float) -> dict[str, Tensor]:
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    noise = _standard_noise(inputs, generator) if sigma else torch.zeros_like(inputs)
    return perturbation_profile(forward, inputs, noise, (sigma,), order)[sigma]


def mid(forward: Forward, inputs: Tensor, sigma: float, generator: torch.Generator | None, order: float = 1.0) -> Tensor:
    """Mutual information difference ``MID = |PMI(sigma) - PMI(0)|`` (paper Def. 4.3), nats.

    Args: as :func:`perturbed_entropy`; the noise for ``PMI(sigma)`` is drawn once from
    ``generator``. See :func:`perturbation_profile` for several sigmas at once.
    """
    return _one_sigma(forward, inputs, sigma, generator, order)["mid"]


def ed(forward: Forward, inputs: Tensor, sigma: float, generator: torch.Generator | None, order: float = 1.0) -> Tensor:
    """Entropy difference ``ED = |PE(sigma) - PE(0)|`` (paper Def. 4.4), in nats.

    Args: as :func:`perturbed_entropy`; the noise for ``PE(sigma)`` is drawn once from
    ``generator``. See :func:`perturbation_profile` for several sigmas at once.
    """
    return _one_sigma(forward, inputs, sigma, generator, order)["ed"]
