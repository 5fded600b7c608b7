"""Weight-space geometry and input-space robustness metrics (paper 000, section 3).

Conventions
-----------
*Parameters.* ``params`` is either a mapping ``{name: tensor}`` (e.g.
``dict(model.named_parameters())``) or a sequence of tensors.

*Loss functions.* Curvature metrics take ``loss_fn(params) -> scalar tensor``, a pure function
of the parameters: it receives a container of the same kind as ``params`` (dict with the same
keys, or list in the same order) holding fresh leaf tensors with the same values, and must
compute the loss *from those tensors*. For an ``nn.Module`` the idiomatic form is::

    params = {k: v.detach() for k, v in model.named_parameters()}
    loss_fn = lambda p: F.cross_entropy(torch.func.functional_call(model, p, (x,)), y)

Hessian-vector products use double backward through that graph, so ``loss_fn`` must be
twice differentiable (no ``detach`` inside, no in-place ops on the parameters).

*Return types.* Cheap, differentiable quantities (:func:`weight_norm`, :func:`sparsity`,
:func:`softmax_entropy`, :func:`parameter_entropy`) return tensors so they can be used in
losses; estimators that run autograd internally or compare discrete predictions return
Python floats.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence, Union

import torch
from torch import Tensor

from groklab.metrics.matrix_info import discrete_renyi_entropy

__all__ = [
    "weight_norm",
    "weight_norms_by_layer",
    "exact_hessian",
    "exact_hessian_trace",
    "hessian_trace",
    "top_hessian_eigenvalue",
    "input_gradient_norm",
    "robustness_radius",
    "sparsity",
    "softmax_entropy",
    "parameter_entropy",
    "nearest_neighbour_accuracy",
]

Params = Union[Mapping[str, Tensor], Sequence[Tensor]]
LossFn = Callable[[Params], Tensor]


def _tensors(params: Params | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(params, Mapping):
        return list(params.values())
    return list(params)


# --------------------------------------------------------------------------------------
# weight norms and distributions over parameters
# --------------------------------------------------------------------------------------


def weight_norm(params: Params | Iterable[Tensor]) -> Tensor:
    """Total l2 norm of all parameters, ``sqrt(sum_j theta_j^2)``.

    Args:
        params: mapping or iterable of tensors (e.g. ``model.parameters()``).

    Returns:
        Scalar tensor, differentiable (usable as a regulariser).
    """
    tensors = _tensors(params)
    if not tensors:
        raise ValueError("no parameters given")
    return torch.sqrt(sum(t.pow(2).sum() for t in tensors))


def weight_norms_by_layer(
    named_params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]],
) -> dict[str, float]:
    """l2 norm per layer, where a layer is the module that owns the parameter.

    Parameter names are grouped by dropping their last dotted component, so
    ``"fc1.weight"`` and ``"fc1.bias"`` form the layer ``"fc1"`` and
    ``"blocks.0.attn.W_Q"`` belongs to ``"blocks.0.attn"``; an undotted name is its own
    layer. Each layer's value is ``sqrt(sum of squares of its parameters)``, so the squares of
    the returned values add up to ``weight_norm(...)**2``.

    Args:
        named_params: ``model.named_parameters()`` or a ``{name: tensor}`` mapping.

    Returns:
        ``{layer_name: norm}`` in order of first appearance.
    """
    items = named_params.items() if isinstance(named_params, Mapping) else named_params
    squares: dict[str, float] = {}
    for name, tensor in items:
        layer = name.rsplit(".", 1)[0] if "." in name else name
        squares[layer] = squares.get(layer, 0.0) + float(tensor.detach().double().pow(2).sum())
    return {layer: math.sqrt(sq) for layer, sq in squares.items()}


def parameter_entropy(params: Params | Iterable[Tensor], order: float = 1.0) -> Tensor:
    """Entropy of the distribution of parameter magnitudes (paper Fig. 20), in nats.

    ``p_j = |theta_j| / sum_k |theta_k|`` over all entries of all tensors, and
    ``H_a(p) = 1/(1-a) log sum_j p_j^a`` (Shannon for ``a = 1``). Ranges over
    ``[0, log N]`` for ``N`` entries: low when the mass sits on few weights.

    Returns:
        Scalar tensor, differentiable.
    """
    flat = torch.cat([t.reshape(-1) for t in _tensors(params)]).abs()  # (N,)
    total = flat.sum()
    if not bool(total > 0):
        raise ValueError("all parameters are zero; the distribution is undefined")
    return discrete_renyi_entropy(flat / total, order)


def sparsity(tensor: Tensor, dim: int | None = None, normalize: bool = False) -> Tensor:
    """l1/l2 ratio ``|x|_1 / |x|_2`` (paper Fig. 19: "proportional to l1 over l2").

    Despite the name this grows with *density*: it is 1 for a one-hot vector and
    ``sqrt(N)`` for ``N`` entries of equal magnitude (Cauchy-Schwarz bounds it to
    ``[1, sqrt(N)]``). With ``normalize=True`` it is divided by ``sqrt(N)``, giving a
    size-independent value in ``[1/sqrt(N), 1]``. A zero vector gets 0.

    Args:
        tensor: any shape.
        dim: reduce over this dimension and average the per-slice ratios (e.g. ``dim=-1``
            on logits ``(n, k)`` for the mean per-sample ratio); ``None`` flattens everything.
        normalize: divide by ``sqrt(N)``, ``N`` the number of entries reduced over.

    Returns:
        Scalar tensor, differentiable where the l2 norm is non-zero.
    """
    if dim is None:
        x = tensor.reshape(1, -1)  # (1, N)
    else:
        x = tensor.movedim(dim, -1)
        x = x.reshape(-1, x.shape[-1])  # (slices, N)
    l1 = x.abs().sum(-1)
    l2 = torch.linalg.vector_norm(x, dim=-1)
    # l1 is zero exactly when l2 is, so dividing by 1 there yields the documented 0.
    ratio = l1 / torch.where(l2 > 0, l2, torch.ones_like(l2))
    if normalize:
        ratio = ratio / math.sqrt(x.shape[-1])
    return ratio.mean()


def softmax_entropy(logits: Tensor, order: float = 1.0) -> Tensor:
    """Mean entropy of the predictive distribution ``softmax(logits)``, in nats.

    ``mean_i H_a(softmax(logits_i))`` with the Renyi/Shannon entropy of
    :func:`groklab.metrics.matrix_info.discrete_renyi_entropy`; in ``[0, log k]``.

    Args:
        logits: ``(n, k)`` (or ``(k,)`` for a single sample); classes on the last dimension.

    Returns:
        Scalar tensor, differentiable.
    """
    return discrete_renyi_entropy(torch.softmax(logits, dim=-1), order, dim=-1).mean()


# --------------------------------------------------------------------------------------
# Hessian of the loss with respect to the parameters
# --------------------------------------------------------------------------------------


class _HessianOperator:
    """Flat Hessian-vector products ``v -> H v`` of ``loss_fn`` at ``params``.

    The gradient graph is built once (``create_graph=True``) and reused for every product,
    so each ``H v`` costs one extra backward pass.
    """

    def __init__(self, loss_fn: LossFn, params: Params):
        originals = _tensors(params)
        if not originals:
            raise ValueError("no parameters given")
        self.leaves = [t.detach().requires_grad_(True) for t in originals]
        container: Params
        if isinstance(params, Mapping):
            container = dict(zip(params.keys(), self.leaves))
        else:
            container = list(self.leaves)
        loss = loss_fn(container)
        if loss.dim() != 0:
            raise ValueError(f"loss_fn must return a scalar, got shape {tuple(loss.shape)}")
        grads = torch.autograd.grad(loss, self.leaves, create_graph=True, allow_unused=True)
        self.grads = [
            g if g is not None else torch.zeros_like(p) for g, p in zip(grads, self.leaves)
        ]
        # A gradient without a graph (parameter entering linearly) has a zero Hessian row.
        self._curved = [i for i, g in enumerate(self.grads) if g.requires_grad]
        self.sizes = [p.numel() for p in self.leaves]
        self.numel = sum(self.sizes)
        self.dtype = self.leaves[0].dtype
        self.device = self.leaves[0].device

    def __call__(self, v: Tensor) -> Tensor:
        """``H v`` for a flat vector ``v`` of length ``numel``."""
        if not self._curved:
            return torch.zeros_like(v)
        pieces = [
            chunk.reshape(p.shape).to(p.dtype)
            for chunk, p in zip(torch.split(v, self.sizes), self.leaves)
        ]
        hv = torch.autograd.grad(
            [self.grads[i] for i in self._curved],
            self.leaves,
            grad_outputs=[pieces[i] for i in self._curved],
            retain_graph=True,
            allow_unused=True,
        )
        return torch.cat(
            [
                (h if h is not None else torch.zeros_like(p)).reshape(-1).to(self.dtype)
                for h, p in zip(hv, self.leaves)
            ]
        ).detach()

    def rademacher(self, generator: torch.Generator) -> Tensor:
        signs = torch.randint(0, 2, (self.numel,), generator=generator, device=generator.device)
        return (2 * signs - 1).to(device=self.device, dtype=self.dtype)  # (numel,) of +-1

    def gaussian(self, generator: torch.Generator) -> Tensor:
        v = torch.randn(self.numel, generator=generator, device=generator.device)
        return v.to(device=self.device, dtype=self.dtype)  # (numel,)


def exact_hessian(loss_fn: LossFn, params: Params) -> Tensor:
    """Full Hessian ``d^2 loss / d theta^2`` by one Hessian-vector product per coordinate.

    Only for tiny models (``P`` backward passes, ``P^2`` memory). Coordinates are the
    parameters flattened and concatenated in ``params`` order.

    Args:
        loss_fn: ``loss_fn(params) -> scalar`` (see the module docstring).
        params: mapping or sequence of tensors, ``P`` entries in total.

    Returns:
        ``(P, P)`` tensor in the parameters' dtype.
    """
    hvp = _HessianOperator(loss_fn, params)
    eye = torch.eye(hvp.numel, dtype=hvp.dtype, device=hvp.device)  # (P, P)
    return torch.stack([hvp(eye[k]) for k in range(hvp.numel)], dim=1)  # column k = H e_k


def exact_hessian_trace(loss_fn: LossFn, params: Params) -> float:
    """Exact sharpness ``S = tr(d^2 loss / d theta^2)`` from the full Hessian (tiny models)."""
    return float(torch.diagonal(exact_hessian(loss_fn, params)).sum())


def hessian_trace(
    loss_fn: LossFn, params: Params, n_samples: int, generator: torch.Generator
) -> float:
    """Hutchinson estimate of the sharpness ``S = tr(H)`` (paper section 2.1).

    ``tr(H) ~= (1/m) sum_s v_s^T H v_s`` with ``m = n_samples`` Rademacher probes
    ``v_s in {-1, +1}^P``, each ``H v_s`` a Hessian-vector product. Unbiased; its variance
    per probe is ``2 sum_{i != j} H_ij^2``.

    Args:
        loss_fn: ``loss_fn(params) -> scalar`` (see the module docstring).
        params: mapping or sequence of tensors.
        n_samples: number of probes ``m >= 1``.
        generator: source of the probes.

    Returns:
        The estimate as a float.
    """
    if n_samples < 1:
        raise ValueError("n_samples must be >= 1")
    hvp = _HessianOperator(loss_fn, params)
    total = 0.0
    for _ in range(n_samples):
        v = hvp.rademacher(generator)
        total += float(v @ hvp(v))
    return total / n_samples


def _lanczos_top(matvec: Callable[[Tensor], Tensor], v: Tensor, iters: int, tol: float) -> float:
    """Largest Ritz value of the Lanczos iteration on the symmetric operator ``matvec`` from ``v``.

    Full re-orthogonalisation (two Gram-Schmidt passes against the whole basis) keeps the
    basis orthonormal in floating point, so no spurious copies of converged eigenvalues
    appear. Stops after ``iters`` products, at ``v``'s dimension, when the residual vanishes
    (the Krylov space is invariant and the Ritz values are exact), or when the top Ritz value
    changes by at most ``tol`` relative between iterations.
    """
    basis: list[Tensor] = []
    alphas: list[float] = []
    betas: list[float] = []
    q = v / torch.linalg.vector_norm(v)
    top = 0.0
    for k in range(min(iters, v.numel())):
        basis.append(q)
        w = matvec(q)
        alphas.append(float(q @ w))
        stacked = torch.stack(basis)  # (k + 1, P)
        for _ in range(2):
            w = w - stacked.T @ (stacked @ w)
        beta = float(torch.linalg.vector_norm(w))
        t = torch.diag(torch.tensor(alphas, dtype=torch.float64))  # (k + 1, k + 1) tridiagonal
        if betas:
            off = torch.tensor(betas, dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        new = float(torch.linalg.eigvalsh(t)[-1])
        converged = k > 0 and abs(new - top) <= tol * max(abs(new), 1e-30)
        top = new
        scale = max(max(abs(a) for a in alphas), max(betas, default=0.0))
        if converged or beta <= 100 * torch.finfo(v.dtype).eps * scale:
            break
        betas.append(beta)
        q = w / beta
    return top


def top_hessian_eigenvalue(
    loss_fn: LossFn,
    params: Params,
    iters: int,
    generator: torch.Generator,
    tol: float = 1e-7,
) -> float:
    """Largest (algebraic) eigenvalue of the loss Hessian by the Lanczos iteration on HVPs.

    Lanczos approximates both ends of the spectrum at once, so the result is the top
    eigenvalue even when a negative eigenvalue has the largest magnitude, and it converges
    much faster than power iteration (error ~ ((1 - sqrt(g)) / (1 + sqrt(g)))^(2k) rather than
    (1 - g)^(2k) for relative gap g). The Ritz value approaches the eigenvalue from below, so
    stopping early underestimates it slightly.

    Args:
        loss_fn: ``loss_fn(params) -> scalar`` (see the module docstring).
        params: mapping or sequence of tensors.
        iters: maximum Lanczos iterations (each is one HVP).
        generator: source of the Gaussian start vector.
        tol: stop when the top Ritz value changes by less than ``tol`` relative; ``0``
            always runs ``iters`` iterations (or until the Krylov space is exhausted).

    Returns:
        The eigenvalue as a float.
    """
    if iters < 1:
        raise ValueError("iters must be >= 1")
    hvp = _HessianOperator(loss_fn, params)
    return _lanczos_top(hvp, hvp.gaussian(generator), iters, tol)


# --------------------------------------------------------------------------------------
# input-space robustness
# --------------------------------------------------------------------------------------


def input_gradient_norm(forward_loss: Callable[[Tensor], Tensor], inputs: Tensor, summed: bool = False) -> float:
    """Mean input-gradient norm ``(1/n) sum_i |d loss_i / d x_i|_2``.

    Args:
        forward_loss: maps float inputs ``(n, ...)`` to per-sample losses ``(n,)``, or with
            ``summed`` to their sum (a scalar; e.g. ``n`` times a mean-reduced loss). Sample i's
            loss must depend on ``x_i`` only (no batch statistics, e.g. BatchNorm in train
            mode), because the per-sample gradients are read off ``d (sum_i loss_i) / d x``.
        inputs: float tensor ``(n, ...)``; the norm is over all non-batch dimensions.

    Returns:
        The mean l2 norm as a float.
    """
    x = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        losses = forward_loss(x)
        if not summed and losses.shape != (x.shape[0],):
            raise ValueError(
                f"forward_loss must return shape ({x.shape[0]},), got {tuple(losses.shape)}"
            )
        (grad,) = torch.autograd.grad(losses if summed else losses.sum(), x)
    return float(torch.linalg.vector_norm(grad.reshape(x.shape[0], -1), dim=1).mean())


def robustness_radius(
    n: int,
    min_sq_input_norm: float,
    frob_norm_sq: float,
    sharpness: float,
    lipschitz: float,
) -> float:
    """Certified neighbour radius ``eps(W)`` of Theorem 3.2 (paper 000).

    ``eps(W) = min(1, 1 / (2 * (sqrt(n * |W|_F^2 * S(W) / min_i |x_i|^2) + L)))``

    Reading of the grouping: the square root covers the whole product
    ``n / min_i |x_i|^2 * |W|_F^2 * S(W)`` and ``L`` is added outside it. This is what the
    theorem statement typesets, and it is what the proof needs: Lemma 3.1 bounds the *mean*
    ``(1/n) sum_i |grad_x f(x_i)|^2 <= |W|_F^2 S / min_i |x_i|^2``, so a single sample obeys
    ``|grad_x f(x_i)| <= sqrt(n |W|_F^2 S / min_i |x_i|^2)``; adding the Lipschitz term gives
    ``|f(x_i) - f(x')| <= eps (sqrt(...) + L) <= 1/2`` (the ``min(1, .)`` is needed for
    ``L eps^2 <= L eps``). Any test point within ``eps`` of a training point is then
    classified correctly.

    Assumptions carried over from the paper: ``S`` is the trace of the Hessian of the MSE
    loss ``1/(2n) sum_i |f(x_i) - onehot(y_i)|^2`` at an interpolating solution, and ``L`` is
    the Lipschitz constant of ``x -> grad_x f(x, W)``. The bound (from Ma & Ying, 2021) holds
    with the first-layer norm ``|W_1|_F^2``; the paper prints the full ``|W|_F^2``, which is
    larger, so either gives a valid (the latter a smaller) radius.

    Args:
        n: number of training samples.
        min_sq_input_norm: ``min_i |x_i|_2^2 > 0``.
        frob_norm_sq: ``|W|_F^2`` (squared Frobenius / l2 norm of the weights).
        sharpness: ``S(W) = tr(Hessian) >= 0``.
        lipschitz: ``L >= 0``.

    Returns:
        ``eps(W)`` in input-space distance units, in ``(0, 1]``.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if not min_sq_input_norm > 0:
        raise ValueError("min_sq_input_norm must be > 0")
    if frob_norm_sq < 0 or sharpness < 0 or lipschitz < 0:
        raise ValueError("frob_norm_sq, sharpness and lipschitz must be >= 0")
    gradient_bound = math.sqrt(n / min_sq_input_norm * frob_norm_sq * sharpness)
    denominator = 2.0 * (gradient_bound + lipschitz)
    return 1.0 if denominator <= 1.0 else 1.0 / denominator


def nearest_neighbour_accuracy(
    embeddings: Tensor,
    labels: Tensor,
    query_embeddings: Tensor,
    query_labels: Tensor,
    metric: str = "cosine",
    chunk_size: int = 4096,
) -> float:
    """1-nearest-neighbour classification accuracy (paper Fig. 14b).

    Each query takes the label of its nearest reference embedding and the fraction of
    queries whose label is recovered is returned. Ties go to the lowest reference index.

    Args:
        embeddings: reference set ``(m, ...)``, flattened to ``(m, d)``.
        labels: ``(m,)`` integer labels of the reference set.
        query_embeddings: ``(q, ...)`` flattened to ``(q, d)``.
        query_labels: ``(q,)``.
        metric: ``"cosine"`` (largest cosine similarity; scale-free, matching the
            l2-normalised Gram matrices of :mod:`groklab.metrics.matrix_info`) or
            ``"euclidean"`` (smallest l2 distance).
        chunk_size: queries per block, bounding memory at ``chunk_size * m`` distances.

    Returns:
        Accuracy in ``[0, 1]`` as a float.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    ref = embeddings.detach().reshape(embeddings.shape[0], -1)  # (m, d)
    qry = query_embeddings.detach().reshape(query_embeddings.shape[0], -1)  # (q, d)
    if ref.shape[0] != labels.shape[0] or qry.shape[0] != query_labels.shape[0]:
        raise ValueError("embeddings and labels disagree in length")
    if qry.shape[0] == 0:
        raise ValueError("no queries")
    if metric == "cosine":
        ref = torch.nn.functional.normalize(ref, dim=1)
        qry = torch.nn.functional.normalize(qry, dim=1)
    correct = 0
    for start in range(0, qry.shape[0], chunk_size):
        block = qry[start : start + chunk_size]  # (c, d)
        if metric == "cosine":
            nearest = (block @ ref.T).argmax(dim=1)  # (c,)
        else:
            nearest = torch.cdist(block, ref).argmin(dim=1)  # (c,)
        predicted = labels[nearest.to(labels.device)]
        correct += int((predicted == query_labels[start : start + chunk_size]).sum())
    return correct / qry.shape[0]
