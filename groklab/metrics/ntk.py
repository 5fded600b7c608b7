"""Empirical neural tangent kernels, kernel-task alignment and linearised models.

Works for any ``nn.Module`` through :mod:`torch.func` (``functional_call``, ``vmap``,
``jacrev``, ``vjp``, ``jvp``). Notation: ``f(theta) in R^P`` stacks the model outputs on the
``P`` inputs, ``J = df/dtheta`` (``P x n_params``) and the NTK Gram matrix is ``K = J J^T``.

Vector outputs (``model(x)`` of shape ``(B, C)``) are selected with ``output``:

* ``None``: the model must return ``(B,)`` or ``(B, 1)``;
* an ``int`` ``c``: the kernel of output ``c`` alone, ``K_ab = grad f_c(x_a) . grad f_c(x_b)``;
* ``"flatten"``: the full kernel over all ``P*C`` output entries, index ``a*C + c``
  (sample-major), shape ``(P*C, P*C)``; labels are then ``(P, C)`` and
  ``y^T K y = vec(y)^T K vec(y)``, still one VJP;
* ``"trace"`` (:func:`empirical_ntk` only): ``K_ab = sum_c grad f_c(x_a) . grad f_c(x_b)``,
  the usual ``P x P`` summary of a multi-output NTK. Its alignment would need one VJP per
  output, so :func:`kernel_alignment` does not offer it.

Models must act on samples independently (no BatchNorm in training mode): per-sample
Jacobians are taken with ``vmap`` over single samples.

The alignment route never builds ``J`` for large ``P`` (paper 001, section 5, "CKA"):

* ``y^T K y = |J^T y|^2`` from one vector-Jacobian product;
* ``|K|_F`` exactly from ``K`` assembled block by block (small ``P``), or estimated from
  products ``K Z = J (J^T Z)`` (one VJP and one JVP per column of ``Z``) with a
  Hutch++-style estimator (Meyer et al. 2021, see :func:`frobenius_norm_estimate`): the top
  of the spectrum is captured exactly by a randomised range finder (Halko et al. 2011) and
  only the remainder is estimated, from sampled columns of K (or Gaussian probes,
  ``E_g |(I - Q Q^T) K g|^2``). For the same number of products this is never worse and
  often orders of magnitude more accurate than plain ``E_z |K z|^2``;
* the double-centred CKA uses ``H = I - 11^T/P``: ``(Hy)^T K (Hy) = |J^T H y|^2`` and
  ``HKH z = H K (H z)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Union

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn
from torch.func import functional_call, jacrev, jvp, vjp, vmap

__all__ = [
    "empirical_ntk",
    "ntk_quadratic_form",
    "kernel_alignment",
    "kernel_alignment_from_kernel",
    "frobenius_norm_estimate",
    "kernel_regression",
    "LinearizedModel",
    "linearized_model",
    "relative_parameter_change",
    "kernel_change",
]

Output = Union[None, int, Literal["flatten", "trace"]]
Params = dict[str, torch.Tensor]


# ----------------------------------------------------------------------------- plumbing

def _params_and_buffers(model: nn.Module) -> tuple[Params, Params]:
    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = {k: b.detach() for k, b in model.named_buffers()}
    return params, buffers


def _select(out: torch.Tensor, output: Output) -> torch.Tensor:
    """Model output -> (B, C_sel) according to ``output``."""
    out = out.reshape(out.shape[0], -1)  # (B, C)
    C = out.shape[1]
    if output is None:
        if C != 1:
            raise ValueError(f"model returns {C} outputs per sample; pass output=int, "
                             "'flatten' or 'trace'")
        return out
    if isinstance(output, int) and not isinstance(output, bool):
        c = output % C  # negative indices count from the end, as in Python
        return out[:, c:c + 1]
    if output in ("flatten", "trace"):
        return out
    raise ValueError(f"unknown output selection {output!r}")


def _per_sample_jacobian(model: nn.Module, params: Params, buffers: Params,
                         x: torch.Tensor, output: Output) -> torch.Tensor:
    """Per-sample Jacobian rows, (B, C_sel, n_params), parameters flattened in name order."""
    def f_single(p, xi):
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return _select(out, output)[0]  # (C_sel,)

    jac = vmap(jacrev(f_single), in_dims=(None, 0))(params, x)  # name -> (B, C_sel, *shape)
    B = x.shape[0]
    return torch.cat([j.reshape(B, j.shape[1], -1) for j in jac.values()], dim=2)


def _gram(J1: torch.Tensor, J2: torch.Tensor, output: Output) -> torch.Tensor:
    """Kernel block from Jacobian rows (B1, C, n) and (B2, C, n)."""
    if output == "trace":
        return torch.einsum("acn,bcn->ab", J1, J2)  # (B1, B2)
    return J1.reshape(-1, J1.shape[2]) @ J2.reshape(-1, J2.shape[2]).T  # (B1*C, B2*C)


def _batched_output_fn(model: nn.Module, buffers: Params, x: torch.Tensor,
                       output: Output) -> Callable[[Params], torch.Tensor]:
    """theta -> f(theta) flattened to (P * C_sel,), sample-major."""
    if output == "trace":
        raise ValueError("output='trace' has no single output vector; use 'flatten' or an int")

    def f(p: Params) -> torch.Tensor:
        return _select(functional_call(model, (p, buffers), (x,)), output).reshape(-1)
    return f


def _centre(z: torch.Tensor, n_out: int) -> torch.Tensor:
    """Apply ``H (x) I_C`` along the last axis (length P*C): subtract the mean over samples."""
    shape = z.shape
    zz = z.reshape(*shape[:-1], -1, n_out)  # (..., P, C)
    return (zz - zz.mean(dim=-2, keepdim=True)).reshape(shape)


def _centre_kernel(K: torch.Tensor, n_out: int) -> torch.Tensor:
    """``(H (x) I_C) K (H (x) I_C)`` for K of shape (P*C, P*C)."""
    return _centre(_centre(K, n_out).T, n_out).T


class _NTKOperator:
    """Matrix-free ``K = J J^T`` at fixed parameters: ``J^T u`` by VJP, ``J t`` by JVP."""

    def __init__(self, model: nn.Module, x: torch.Tensor, output: Output, batch: int):
        self.params, buffers = _params_and_buffers(model)
        self.f = _batched_output_fn(model, buffers, x, output)
        # One forward pass; vjp_fn keeps its graph and is reused for every cotangent.
        out, self._vjp_fn = vjp(self.f, self.params)
        self.size = out.numel()
        self.dtype = out.dtype
        self.device = out.device
        self.batch = batch

    def rmatvec(self, u: torch.Tensor) -> Params:
        """(P_out,) -> ``J^T u`` as a parameter-shaped dict."""
        return self._vjp_fn(u.to(self.dtype))[0]

    def matmat(self, Z: torch.Tensor) -> torch.Tensor:
        """(m, P_out) -> (m, P_out), rows ``K z = J (J^T z)``; ``batch`` rows at a time."""
        def one(t):
            return jvp(self.f, (self.params,), (t,))[1]

        rows = []
        for Zc in Z.to(self.device, self.dtype).split(self.batch):
            tangents = vmap(self._vjp_fn)(Zc)[0]  # name -> (m_c, *shape)
            rows.append(vmap(one)(tangents))  # (m_c, P_out)
        return torch.cat(rows)


def _quadratic_form(op: _NTKOperator, u: torch.Tensor) -> torch.Tensor:
    """``u^T K u = |J^T u|^2`` from one VJP (float64 scalar)."""
    return sum((t.to(torch.float64) ** 2).sum() for t in op.rmatvec(u).values())


# ----------------------------------------------------------------------------- kernels

def empirical_ntk(model: nn.Module, x: torch.Tensor, x2: torch.Tensor | None = None, *,
                  output: Output = None, chunk_size: int | None = None) -> torch.Tensor:
    """Explicit empirical NTK ``K = J(x) J(x2)^T`` at the model's current parameters.

    ``K_ab = sum_theta df(x_a)/dtheta df(x2_b)/dtheta`` over all parameters with
    ``requires_grad`` status irrelevant (every ``named_parameters`` entry counts; buffers do
    not). Meant for small ``P``: it materialises per-sample Jacobians.

    Args:
        model: any module acting per sample.
        x: (P1, ...) inputs. x2: (P2, ...) inputs or None (then ``x2 = x``).
        output: vector-output selection (module docstring): None/int/"trace" give
            (P1, P2), "flatten" gives (P1*C, P2*C).
        chunk_size: None builds ``J`` for all points at once (``P x n_params`` memory);
            an int builds ``K`` block by block from Jacobians of at most ``chunk_size``
            samples (memory ``2 * chunk_size * C * n_params``; Jacobian blocks of the
            symmetric case are recomputed instead of stored).

    Returns:
        kernel matrix in the model's dtype.
    """
    params, buffers = _params_and_buffers(model)

    def jac(z):
        return _per_sample_jacobian(model, params, buffers, z, output)

    if chunk_size is None:
        J1 = jac(x)  # (P1, C, n)
        return _gram(J1, J1 if x2 is None else jac(x2), output)

    same = x2 is None
    x2 = x if same else x2
    blocks1 = list(torch.arange(x.shape[0]).split(chunk_size))
    blocks2 = blocks1 if same else list(torch.arange(x2.shape[0]).split(chunk_size))
    rows = []
    cache: dict[tuple[int, int], torch.Tensor] = {}
    for i, I in enumerate(blocks1):
        Ji = jac(x[I])  # (c, C, n)
        row = []
        for j, Jb in enumerate(blocks2):
            if same and j < i:
                row.append(cache[(j, i)].T)  # symmetric: reuse the transposed block
                continue
            Kij = _gram(Ji, Ji if (same and i == j) else jac(x2[Jb]), output)
            if same:
                cache[(i, j)] = Kij
            row.append(Kij)
        rows.append(torch.cat(row, dim=1))
    return torch.cat(rows, dim=0)


def ntk_quadratic_form(model: nn.Module, x: torch.Tensor, u: torch.Tensor, *,
                       output: Output = None) -> float:
    """``u^T K u = |J^T u|^2`` for the NTK Gram matrix on ``x``, from one VJP.

    Never forms ``J`` or ``K``: cost of one forward and one backward pass over ``x``.
    With ``u = y`` this is the numerator of the paper's alignment.

    Args:
        model: module acting per sample. x: (P, ...) inputs.
        u: (P,) or, with ``output="flatten"``, (P, C).
        output: vector-output selection (module docstring; not "trace").
    """
    op = _NTKOperator(model, x, output, batch=1)
    if u.numel() != op.size:
        raise ValueError(f"{u.numel()} entries for {op.size} model outputs")
    return float(_quadratic_form(op, u.reshape(-1)))


def kernel_alignment_from_kernel(K: torch.Tensor, y: torch.Tensor,
                                 method: Literal["paper", "centered"] = "paper") -> float:
    """Kernel-task alignment from an explicit Gram matrix.

    * ``"paper"`` (paper 001 section 5): ``y^T K y / (|K|_F |y|^2)``, as printed (no
      centring). It is the cosine between ``K`` and the label kernel ``y y^T``.
    * ``"centered"`` (Kornblith et al. 2019; Cortes et al. 2012):
      ``<HKH, HLH>_F / (|HKH|_F |HLH|_F)`` with ``L = y y^T``, ``H = I - 11^T/P``, which
      equals ``(Hy)^T K (Hy) / (|HKH|_F |Hy|^2)``.

    For labels ``y`` of shape (P, C) the kernel must be the "flatten" kernel (P*C, P*C)
    and ``H`` acts on the sample index only (``H (x) I_C``).

    Args:
        K: (P_out, P_out) symmetric.
        y: (P,) or (P, C) with ``y.numel() == P_out``.

    Returns:
        alignment in [-1, 1] (in [0, 1] for PSD K).
    """
    n_out = 1 if y.ndim == 1 else y.shape[1]
    yv = y.reshape(-1).to(torch.float64)  # (P_out,)
    K = K.to(torch.float64)
    if K.shape != (yv.numel(), yv.numel()):
        raise ValueError(f"kernel {tuple(K.shape)} does not match {yv.numel()} labels")
    if method == "centered":
        yv, K = _centre(yv, n_out), _centre_kernel(K, n_out)
    elif method != "paper":
        raise ValueError(f"unknown method {method!r}")
    return float((yv @ K @ yv) / (torch.linalg.matrix_norm(K) * (yv @ yv)))


def frobenius_norm_estimate(matmat: Callable[[torch.Tensor], torch.Tensor], dim: int, *,
                            n_projections: int, generator: torch.Generator,
                            probes: Literal["coordinate", "gaussian"] = "coordinate",
                            dtype: torch.dtype = torch.float64) -> float:
    """Randomised ``|A|_F`` of a symmetric ``A`` seen only through products ``A Z``.

    ``|A|_F^2 = |A Q|_F^2 + |(I - Q Q^T) A|_F^2`` for any orthonormal ``Q``. With
    ``k = n_projections // 3``, ``Q = orth(A S)`` for a Gaussian ``S`` (``dim x k``; the
    randomised range finder of Halko et al. 2011) and the first term is exact from ``A Q``
    (Hutch++, Meyer et al. 2021). The remainder ``|R|_F^2``, ``R = (I - Q Q^T) A``, is
    estimated without bias from ``m = n_projections - 2k`` probes:

    * ``"coordinate"`` (default): ``(dim/m) sum_{a in S} |R e_a|^2`` over ``m`` coordinates
      drawn without replacement, i.e. ``m`` sampled columns of ``A``. Variance
      ``(dim^2/m)(1 - (m-1)/(dim-1)) Var_a |R e_a|^2``: small when the residual's column
      norms are even, as for kernel matrices of i.i.d. data, and exactly 0 at ``m = dim``;
    * ``"gaussian"``: ``mean_g |R g|^2`` (Hutchinson), standard deviation
      ``sqrt(2 tr((R^T R)^2) / m) <= sqrt(2/m) |R|_F^2``.

    The sketch makes the estimate accurate for low-rank spectra, the column sampling for
    flat ones (both occur for NTKs: a random tanh MLP on high-dimensional data has a flat
    spectrum, a small network on low-dimensional data a steep one). The relative error of
    ``|A|_F`` is half that of ``|A|_F^2``. ``n_projections`` products of ``A`` in total.

    Args:
        matmat: maps (r, dim) to (r, dim) with rows ``A z_i``.
        dim: size of ``A``.
        n_projections: total number of products (>= 1).
        generator: CPU generator for the probes.
        probes: residual probe type (above).
        dtype: dtype in which probes are handed to ``matmat``.
    """
    if n_projections < 1:
        raise ValueError("n_projections must be >= 1")
    f64 = torch.float64
    k = n_projections // 3
    m = n_projections - 2 * k
    exact = torch.zeros((), dtype=f64)
    Q = None
    if k > 0:
        S = torch.randn(k, dim, generator=generator, dtype=f64)  # (k, dim)
        Q = torch.linalg.qr(matmat(S.to(dtype)).to(f64).cpu().T).Q  # (dim, k)
        AQ = matmat(Q.T.contiguous().to(dtype)).to(f64).cpu()  # (k, dim)
        exact = (AQ ** 2).sum()
    if probes == "coordinate":
        m = min(m, dim)
        idx = torch.randperm(dim, generator=generator)[:m]
        G = torch.zeros(m, dim, dtype=f64)  # (m, dim) rows e_a
        G[torch.arange(m), idx] = 1.0
        weight = dim / m
    elif probes == "gaussian":
        G = torch.randn(m, dim, generator=generator, dtype=f64)  # (m, dim)
        weight = 1.0 / m
    else:
        raise ValueError(f"unknown probes {probes!r}")
    AG = matmat(G.to(dtype)).to(f64).cpu()  # (m, dim)
    if Q is not None:
        AG = AG - (AG @ Q) @ Q.T
    return float(torch.sqrt(exact + weight * (AG ** 2).sum()))


def kernel_alignment(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     method: Literal["paper", "centered"] = "paper", *,
                     exact: bool | None = None, n_projections: int = 60,
                     generator: torch.Generator | None = None, output: Output = None,
                     probes: Literal["coordinate", "gaussian"] = "coordinate",
                     max_exact_outputs: int = 1024, chunk_size: int = 256,
                     projection_batch: int = 16) -> float:
    """NTK-task alignment of ``model`` on ``(x, y)`` without forming ``J`` for large P.

    Same quantity as :func:`kernel_alignment_from_kernel` on ``K = J J^T`` (paper form
    ``y^T K y / (|K|_F |y|^2)`` or double-centred CKA), computed as:

    * numerator ``|J^T y|^2`` (``|J^T H y|^2`` centred) from one VJP;
    * ``|K|_F`` (``|HKH|_F``): exactly from blocks of ``K`` (:func:`empirical_ntk` with
      ``chunk_size``) when ``exact``; otherwise by :func:`frobenius_norm_estimate` with
      ``n_projections`` products ``K Z = J (J^T Z)`` (VJP + JVP, ``projection_batch`` at a
      time under ``vmap``).

    Args:
        model: module acting per sample; its current parameters define K (pass the model
            at init for the paper's initial-NTK alignment).
        x: (P, ...) inputs (the paper uses the test set).
        y: (P,) labels, or (P, C) with ``output="flatten"``.
        method: ``"paper"`` or ``"centered"``.
        exact: True/False, or None for ``P_out <= max_exact_outputs``.
        n_projections: products of K used by the estimate (ignored when exact).
        generator: source of the probes; None means ``torch.Generator().manual_seed(0)``.
        probes: residual probes of :func:`frobenius_norm_estimate`.
        output: vector-output selection (module docstring; not "trace").
        chunk_size: sample block size of the exact route.
        projection_batch: probes per vmapped VJP/JVP call (memory ~ batch x activations).

    Returns:
        alignment as a Python float.
    """
    if method not in ("paper", "centered"):
        raise ValueError(f"unknown method {method!r}")
    op = _NTKOperator(model, x, output, projection_batch)
    n_out = 1 if y.ndim == 1 else y.shape[1]
    yv = y.reshape(-1).to(op.dtype)  # (P_out,)
    if yv.numel() != op.size:
        raise ValueError(f"{yv.numel()} labels for {op.size} model outputs")
    centred = method == "centered"
    if centred:
        yv = _centre(yv, n_out)
    numerator = _quadratic_form(op, yv)
    if exact is None:
        exact = op.size <= max_exact_outputs
    if exact:
        K = empirical_ntk(model, x, output=output, chunk_size=chunk_size).to(torch.float64)
        fro = torch.linalg.matrix_norm(_centre_kernel(K, n_out) if centred else K)
    else:
        def matmat(Z):  # HKH Z when centred; H is symmetric so HKH stays symmetric
            if centred:
                return _centre(op.matmat(_centre(Z, n_out)), n_out)
            return op.matmat(Z)
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        fro = frobenius_norm_estimate(matmat, op.size, n_projections=n_projections,
                                      generator=gen, probes=probes, dtype=op.dtype)
    return float(numerator / (fro * (yv.to(torch.float64) ** 2).sum()))


def kernel_regression(K_train_train: torch.Tensor, y_train: torch.Tensor,
                      K_test_train: torch.Tensor, ridge: float = 0.0, *,
                      rcond: float | None = None) -> torch.Tensor:
    """Kernel (ridge) regression prediction ``K_* (K + ridge I)^{-1} y``.

    With the initial NTK and ``ridge = 0`` this is where a fully lazy (linearised) network
    trained to convergence on the centred MSE ends up (paper 001, section 4.1): the
    prediction of ``f - f_0`` on the test points, i.e. the minimum-norm interpolant
    ``J_* J^+ y`` in parameter space. ``ridge`` is absolute (same units as K).

    ``ridge > 0``: a linear solve. ``ridge = 0``: the pseudo-inverse of K (eigendecomposition),
    discarding eigenvalues below ``rcond * lambda_max``, so rank-deficient kernels
    (``P > n_params``) work; ``rcond`` defaults to ``P`` times the machine epsilon of
    ``K_train_train``'s dtype (a float32 kernel carries float32 rounding noise).
    Computed in float64.

    Args:
        K_train_train: (P, P). y_train: (P,) or (P, C). K_test_train: (P_test, P).

    Returns:
        (P_test,) or (P_test, C) in ``y_train``'s dtype.
    """
    f64 = torch.float64
    K = K_train_train.to(f64)
    K = 0.5 * (K + K.T)  # exact symmetry for the Hermitian solvers
    y = y_train.to(f64)
    if ridge > 0:
        coef = torch.linalg.solve(K + ridge * torch.eye(K.shape[0], dtype=f64, device=K.device), y)
    else:
        if rcond is None:
            rcond = K.shape[0] * torch.finfo(K_train_train.dtype).eps
        coef = torch.linalg.pinv(K, hermitian=True, rtol=rcond) @ y
    return (K_test_train.to(f64) @ coef).to(y_train.dtype)


# ----------------------------------------------------------------------------- linearisation

class LinearizedModel(nn.Module):
    """First-order Taylor expansion of a model around its parameters at construction.

    ``f_lin(theta, x) = f(theta_0, x) + J(theta_0, x) (theta - theta_0)``, evaluated with
    one forward-mode pass per forward (dual tensors of :mod:`torch.autograd.forward_ad`,
    primal ``theta_0``, tangent ``theta - theta_0``; no Jacobian is stored). Reverse mode
    differentiates through the tangent, so ``backward`` gives ``J(theta_0)^T`` times the
    output gradient. ``theta`` are ordinary
    ``nn.Parameter`` s (initialised to ``theta_0``), so any optimiser trains it side by side
    with the network; ``theta_0`` and the buffers are frozen copies.

    The wrapped network is a private deep copy, so training the original does not move
    ``theta_0``.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        base = copy.deepcopy(model)
        for p in base.parameters():
            p.requires_grad_(False)
        # Kept out of the module tree: functional_call replaces all of its tensors, so
        # only its structure is used, and it must not contribute to .parameters().
        object.__setattr__(self, "_base", base)
        self._param_names = [k for k, _ in base.named_parameters()]
        self._buffer_names = [k for k, _ in base.named_buffers()]
        params, buffers = _params_and_buffers(base)
        self.theta = nn.ParameterList([nn.Parameter(params[k].clone())
                                       for k in self._param_names])
        for i, k in enumerate(self._param_names):
            self.register_buffer(f"theta0_{i}", params[k].clone())
        for i, k in enumerate(self._buffer_names):
            self.register_buffer(f"base_buffer_{i}", buffers[k].clone())

    def init_params(self) -> Params:
        """name -> ``theta_0`` (frozen)."""
        return {k: getattr(self, f"theta0_{i}") for i, k in enumerate(self._param_names)}

    def current_params(self) -> Params:
        """name -> ``theta`` (trainable)."""
        return dict(zip(self._param_names, self.theta))

    def _base_buffers(self) -> Params:
        return {k: getattr(self, f"base_buffer_{i}") for i, k in enumerate(self._buffer_names)}

    def output_at_init(self, x: torch.Tensor) -> torch.Tensor:
        """``f(theta_0, x)`` of the original network."""
        return functional_call(self._base, (self.init_params(), self._base_buffers()), (x,))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``f(theta_0, x) + J(theta_0, x) (theta - theta_0)``, same shape as the model's."""
        theta0 = self.init_params()
        # Plain forward-mode AD rather than torch.func.jvp: same numbers, less Python overhead
        # per call (this runs at every training step of the linearised companion).
        with fwAD.dual_level():
            dual = {k: fwAD.make_dual(theta0[k], p - theta0[k]) for k, p in self.current_params().items()}
            out = functional_call(self._base, (dual, self._base_buffers()), (x,))
            f0, df = fwAD.unpack_dual(out)
        return f0 if df is None else f0 + df  # None: the output does not depend on theta


def linearized_model(model: nn.Module) -> LinearizedModel:
    """Linearise ``model`` around its current parameters (see :class:`LinearizedModel`)."""
    return LinearizedModel(model)


def _as_tensors(params) -> list[torch.Tensor] | dict[str, torch.Tensor]:
    if isinstance(params, nn.Module):
        return dict(params.named_parameters())
    if isinstance(params, Mapping):
        return dict(params)
    return list(params)


def relative_parameter_change(params: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]
                              | nn.Module,
                              params0: Mapping[str, torch.Tensor] | Iterable[torch.Tensor]
                              | nn.Module) -> float:
    """``|theta - theta_0| / |theta_0|`` with the l2 norm over all parameters concatenated.

    Small values mean lazy training (paper 001 section 4.1, appendix eq. 10). Mappings are
    matched by name (keys must agree), sequences and modules by order (a
    :class:`LinearizedModel` yields ``theta`` in the order of ``init_params``).
    """
    a, b = _as_tensors(params), _as_tensors(params0)
    if isinstance(a, dict) and isinstance(b, dict) and set(a) == set(b):
        pairs = [(a[k], b[k]) for k in a]
    else:
        la = list(a.values()) if isinstance(a, dict) else a
        lb = list(b.values()) if isinstance(b, dict) else b
        if len(la) != len(lb):
            raise ValueError("parameter collections differ in length")
        pairs = list(zip(la, lb))
    num = sum(((p.detach().double() - q.detach().double()) ** 2).sum() for p, q in pairs)
    den = sum((q.detach().double() ** 2).sum() for _, q in pairs)
    return math.sqrt(float(num) / float(den))


def kernel_change(K_t: torch.Tensor, K_0: torch.Tensor) -> float:
    """``|K_t - K_0|_F / |K_0|_F``: how far the NTK moved from init (0 for a lazy net)."""
    K_t, K_0 = K_t.detach().double(), K_0.detach().double()
    return float(torch.linalg.matrix_norm(K_t - K_0) / torch.linalg.matrix_norm(K_0))
