"""Scheduled metrics of paper 001's lazy-to-rich toy model and laziness measures.

* ``toy_stats`` (committee model on the polynomial task): ``|wbar|``, ``Tr M``, alignment of
  M's top eigenvector and of ``wbar`` with ``beta``, and the three terms of the population
  test loss (eq. 6, :func:`groklab.metrics.toy_model.loss_decomposition`), measured from
  init (``wbar - wbar_0``, ``M - M_0``) when the model is centred.
* ``alignment``: paper-form and double-centred CKA of the *current* empirical NTK with the
  test labels, on the first ``ALIGNMENT_POINTS`` test points (exact kernel).
* ``laziness``: ``|theta - theta_0| / |theta_0|`` and ``|K_t - K_0|_F / |K_0|_F`` on the first
  ``LAZINESS_POINTS`` test points.
* ``ntk_regression``: the kernel-regression baseline with the initial NTK over the whole
  training set (what a fully lazy network reaches), a constant of the run computed once.

``theta_0`` is the loop's ``ctx.initial_model()`` (the model rebuilt from (config, seed)
with the generator the loop initialised it with, so a resumed run sees the same one, an
uncentred model has one too, and any architecture works) and ``beta`` the task's
``target_directions``: metrics never rebuild tasks or models themselves.
"""

from __future__ import annotations

import copy
import math
import weakref

import torch
from torch import nn

from groklab.metrics.ntk import (
    empirical_ntk,
    kernel_alignment,
    kernel_change,
    kernel_regression,
    relative_parameter_change,
)
from groklab.metrics.registry import MetricContext, register_metric
from groklab.metrics.toy_model import (
    loss_decomposition,
    summary_statistics,
    target_matrix,
    top_eigenvector_alignment,
    wbar_alignment,
)
from groklab.models.committee import CommitteeMachine
from groklab.objective import accuracy, mse_target, training_objective

__all__ = [
    "toy_stats",
    "alignment",
    "laziness",
    "ntk_regression",
    "initial_kernel_regression",
    "ALIGNMENT_POINTS",
    "LAZINESS_POINTS",
    "MAX_KERNEL_OUTPUTS",
]

ALIGNMENT_POINTS = 256
LAZINESS_POINTS = 32
MAX_KERNEL_OUTPUTS = 8192  # ntk_regression: training points x outputs (the kernel is that square)


def _committee(model: nn.Module):
    """(committee net, frozen init copy or None) of a bare or Lazy-wrapped committee."""
    if isinstance(model, CommitteeMachine):
        return model, None
    net = getattr(model, "net", None)
    if isinstance(net, CommitteeMachine):
        return net, getattr(model, "net_0", None)
    raise ValueError("toy_stats needs model.name='committee'")


@register_metric("toy_stats")
def toy_stats(ctx: MetricContext) -> dict[str, float]:
    """Summary statistics and the eq. 6 loss decomposition of the toy model (module docstring).

    Columns ``toy.wbar_norm``, ``toy.trace_M``, ``toy.M_top_align`` (``|u_1 . bhat|``),
    ``toy.wbar_align`` (cosine), ``toy.loss_scale``, ``toy.loss_misalign``, ``toy.loss_linear``,
    ``toy.loss_total``. The loss terms are NaN for Hermite targets (no closed form here).
    """
    cfg = ctx.config
    net, net_0 = _committee(ctx.model)
    directions = ctx.task.target_directions
    if directions is None:
        raise ValueError("toy_stats needs a task with target directions (task.name='polynomial')")
    v = net.v if net.train_readouts else None
    stats = summary_statistics(net.W, v)
    directions = directions.to(stats.M.device)
    beta = directions[0]
    out = {
        "toy.wbar_norm": float(stats.wbar.norm()),
        "toy.trace_M": float(stats.trace),
        "toy.M_top_align": top_eigenvector_alignment(stats.M, beta),
        "toy.wbar_align": wbar_alignment(stats.wbar, beta),
    }
    if cfg.task.target != "quadratic":
        return out | {k: math.nan for k in ("toy.loss_scale", "toy.loss_misalign", "toy.loss_linear", "toy.loss_total")}
    s0 = None
    if net_0 is not None:
        s0 = summary_statistics(net_0.W, net_0.v if net.train_readouts else None)
    # Lazy puts alpha outside the committee (whose own alpha is 1): f = alpha * net_alpha * (...).
    alpha = cfg.model.alpha * net.alpha
    dec = loss_decomposition(
        stats.wbar, stats.M, target_matrix(directions), alpha=alpha, eps=net.eps,
        wbar0=None if s0 is None else s0.wbar, M0=None if s0 is None else s0.M,
    )
    return out | {
        "toy.loss_scale": float(dec.scale),
        "toy.loss_misalign": float(dec.misalignment),
        "toy.loss_linear": float(dec.linear),
        "toy.loss_total": float(dec.total),
    }


def _ntk_output(model: nn.Module, x: torch.Tensor):
    with torch.no_grad():
        out = model(x[:1])
    return None if out.ndim == 1 or out.shape[-1] == 1 else "trace"


@register_metric("alignment", cost="expensive")
def alignment(ctx: MetricContext) -> dict[str, float]:
    """``align.paper`` = ``y^T K y / (|K|_F |y|^2)`` and ``align.cka`` (double-centred) of the
    current NTK with the test labels on the first ``ALIGNMENT_POINTS`` test points.
    Scalar-output (regression) models only."""
    x, y = ctx.test_x[:ALIGNMENT_POINTS], ctx.test_y[:ALIGNMENT_POINTS]
    if not y.is_floating_point():
        raise ValueError("the alignment metric needs scalar regression labels (e.g. task.name='polynomial')")
    return {
        "align.paper": kernel_alignment(ctx.model, x, y, "paper", exact=True),
        "align.cka": kernel_alignment(ctx.model, x, y, "centered", exact=True),
    }


# Per initial model (one per run): its parameters and its NTK on the first test points.
_INIT_REFERENCES: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def _init_reference(model_0: nn.Module, x: torch.Tensor):
    """(theta_0 by name, K_0 on ``x``) of the initial model, on the CPU, computed once per model."""
    if model_0 not in _INIT_REFERENCES:
        x = x.cpu()
        theta_0 = {k: p.detach().clone() for k, p in model_0.named_parameters()}
        K_0 = empirical_ntk(model_0, x, output=_ntk_output(model_0, x)).detach()
        _INIT_REFERENCES[model_0] = (theta_0, K_0)
    return _INIT_REFERENCES[model_0]


@register_metric("laziness", cost="expensive")
def laziness(ctx: MetricContext) -> dict[str, float]:
    """``lazy.param_change`` = ``|theta - theta_0| / |theta_0|`` and ``lazy.kernel_change`` =
    ``|K_t - K_0|_F / |K_0|_F`` on the first ``LAZINESS_POINTS`` test points; ``theta_0`` and
    ``K_0`` from the run's initial model (module docstring)."""
    x = ctx.test_x[:LAZINESS_POINTS]
    theta_0, K_0 = _init_reference(ctx.initial_model(), x)
    params = dict(ctx.model.named_parameters())
    K_t = empirical_ntk(ctx.model, x, output=_ntk_output(ctx.model, x))
    return {
        "lazy.param_change": relative_parameter_change({k: p.cpu() for k, p in params.items()}, theta_0),
        "lazy.kernel_change": kernel_change(K_t.cpu(), K_0),
    }


def initial_kernel_regression(
    model_0: nn.Module,
    data: dict[str, torch.Tensor],
    label_scale: float = 1.0,
    device: str | torch.device = "cpu",
    ridge: float = 0.0,
) -> dict[str, float]:
    """Kernel regression with the initial empirical NTK of ``model_0`` over the whole training set.

    With ``F`` the model the run trains (laziness wrapper included) at its initialisation
    ``theta_0`` (``model_0``), ``K = J J^T`` its NTK on the training inputs (the full
    ``(P C) x (P C)`` kernel over all outputs, sample-major) and ``Y`` the training targets
    (float targets, or ``label_scale`` times the one-hot labels), the prediction is

        F_kr(x) = F(theta_0, x) + K(x, X) (K + ridge I)^+ (Y - F(theta_0, X)),

    ridgeless by default (pseudo-inverse, :func:`groklab.metrics.ntk.kernel_regression`). That
    is the minimum-``|theta - theta_0|`` fit of the linearised model, where full-batch gradient
    descent without weight decay on the MSE takes it (paper 001, section 4.1): the test error of
    a network that never leaves the lazy regime. Computed in float64 on ``device`` (``model_0``
    is not changed); cost ``O((P C)^2 n_params)``, so meant for small problems
    (``P C <= MAX_KERNEL_OUTPUTS``).

    Args:
        model_0: the model at initialisation.
        data: ``train_x``, ``train_y``, ``test_x``, ``test_y`` (any device).

    Returns:
        ``ntk_kr.train_mse`` and ``ntk_kr.test_mse`` (the MSE of ``train.loss='mse'``: mean over
        all entries against the same targets), ``ntk_kr.test_acc`` (argmax accuracy; NaN for
        regression).
    """
    model_0 = copy.deepcopy(model_0).to(device=device, dtype=torch.float64)
    f64 = dict(device=device, dtype=torch.float64)

    def inputs(x: torch.Tensor) -> torch.Tensor:
        return x.to(**f64) if x.is_floating_point() else x.to(device)

    x_tr, x_te = inputs(data["train_x"]), inputs(data["test_x"])
    y_tr, y_te = data["train_y"].to(device), data["test_y"].to(device)
    with torch.no_grad():
        f0_tr, f0_te = model_0(x_tr), model_0(x_te)  # (P,) or (P, C)
    n_out = 1 if f0_tr.ndim == 1 else f0_tr.shape[1]
    if len(y_tr) * n_out > MAX_KERNEL_OUTPUTS:
        raise ValueError(f"ntk_regression: {len(y_tr)} training points x {n_out} outputs is more than "
                         f"{MAX_KERNEL_OUTPUTS} kernel rows; use a smaller task")
    output = None if n_out == 1 else "flatten"
    target = mse_target(inputs(data["train_y"]), f0_tr, label_scale)  # float64, (P,) or (P, C)
    K = empirical_ntk(model_0, x_tr, output=output, chunk_size=256)  # (P C, P C)
    K_te = empirical_ntk(model_0, x_te, x_tr, output=output, chunk_size=256)  # (P_test C, P C)
    residual = (target - f0_tr).reshape(-1)  # (P C,)
    pred_tr = f0_tr + kernel_regression(K, residual, K, ridge).reshape(f0_tr.shape)
    pred_te = f0_te + kernel_regression(K, residual, K_te, ridge).reshape(f0_te.shape)
    mse = training_objective("mse", label_scale)
    return {
        "ntk_kr.train_mse": float(mse(pred_tr, y_tr)),
        "ntk_kr.test_mse": float(mse(pred_te, y_te)),
        "ntk_kr.test_acc": float(accuracy(pred_te, y_te)),
    }


# Per initial model (one per run) and device: the baseline is a constant of the run.
_BASELINES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@register_metric("ntk_regression")
def ntk_regression(ctx: MetricContext) -> dict[str, float]:
    """``ntk_kr.train_mse``, ``ntk_kr.test_mse``, ``ntk_kr.test_acc`` of ridgeless kernel regression
    with the initial NTK (:func:`initial_kernel_regression`): the lazy baseline the run's losses
    can be read against. A constant of the run, computed once per run and device."""
    model_0, device = ctx.initial_model(), str(ctx.train_x.device)
    per_device = _BASELINES.setdefault(model_0, {})
    if device not in per_device:
        data = {"train_x": ctx.train_x, "train_y": ctx.train_y, "test_x": ctx.test_x, "test_y": ctx.test_y}
        per_device[device] = initial_kernel_regression(model_0, data, ctx.config.train.label_scale, device)
    return dict(per_device[device])
