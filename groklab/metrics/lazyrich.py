"""Scheduled metrics of paper 001's lazy-to-rich toy model and laziness measures.

* ``toy_stats`` (committee model on the polynomial task): ``|wbar|``, ``Tr M``, alignment of
  M's top eigenvector and of ``wbar`` with ``beta``, and the three terms of the population
  test loss (eq. 6, :func:`groklab.metrics.toy_model.loss_decomposition`), measured from
  init (``wbar - wbar_0``, ``M - M_0``) when the model is centred.
* ``alignment``: paper-form and double-centred CKA of the *current* empirical NTK with the
  test labels, on the first ``ALIGNMENT_POINTS`` test points (exact kernel).
* ``laziness``: ``|theta - theta_0| / |theta_0|`` and ``|K_t - K_0|_F / |K_0|_F`` on the first
  ``LAZINESS_POINTS`` test points.

``theta_0`` and ``beta`` are not read from the live model or the TaskData: both are
deterministic functions of (config, seed), so they are rebuilt (and cached per config) with
the same builders and generators the loop uses. That is resume-safe (a resumed run rebuilds
the same ``theta_0``), works for uncentred models (no ``net_0`` to read) and for any
architecture.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from groklab.metrics.ntk import empirical_ntk, kernel_alignment, kernel_change, relative_parameter_change
from groklab.metrics.registry import MetricContext, register_metric
from groklab.metrics.toy_model import (
    loss_decomposition,
    summary_statistics,
    target_matrix,
    top_eigenvector_alignment,
    wbar_alignment,
)

__all__ = ["toy_stats", "alignment", "laziness", "ALIGNMENT_POINTS", "LAZINESS_POINTS"]

ALIGNMENT_POINTS = 256
LAZINESS_POINTS = 32


def _committee(model: nn.Module):
    """(committee net, frozen init copy or None) of a bare or Lazy-wrapped committee."""
    from groklab.models.committee import CommitteeMachine

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
    from groklab.tasks.polynomial import polynomial_data

    cfg = ctx.config
    net, net_0 = _committee(ctx.model)
    v = net.v if net.train_readouts else None
    stats = summary_statistics(net.W, v)
    data = polynomial_data(cfg.task, cfg.seed)
    beta = data.beta.to(stats.M.device)
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
        stats.wbar, stats.M, target_matrix(data.directions.to(stats.M.device)), alpha=alpha, eps=net.eps,
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


@register_metric("alignment")
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


@lru_cache(maxsize=4)
def _init_reference(config_json: str, n_points: int):
    """(theta_0 by name, K_0 on the first n test points, those points), on the CPU."""
    from groklab.config import Config
    from groklab.models import build_model
    from groklab.seeding import generator
    from groklab.tasks import build_task

    config = Config.from_json(config_json)
    data = build_task(config.task, config.seed)
    model_0 = build_model(config.model, data, generator(config.seed, "init"))
    x = data.test_x[:n_points]
    theta_0 = {k: p.detach().clone() for k, p in model_0.named_parameters()}
    K_0 = empirical_ntk(model_0, x, output=_ntk_output(model_0, x)).detach()
    return theta_0, K_0, x


@register_metric("laziness")
def laziness(ctx: MetricContext) -> dict[str, float]:
    """``lazy.param_change`` = ``|theta - theta_0| / |theta_0|`` and ``lazy.kernel_change`` =
    ``|K_t - K_0|_F / |K_0|_F`` on the first ``LAZINESS_POINTS`` test points; ``theta_0`` and
    ``K_0`` are rebuilt from (config, seed) (module docstring)."""
    theta_0, K_0, x = _init_reference(ctx.config.to_json(), LAZINESS_POINTS)
    params = dict(ctx.model.named_parameters())
    x = x.to(ctx.test_x.device)
    K_t = empirical_ntk(ctx.model, x, output=_ntk_output(ctx.model, x))
    return {
        "lazy.param_change": relative_parameter_change({k: p.cpu() for k, p in params.items()}, theta_0),
        "lazy.kernel_change": kernel_change(K_t.cpu(), K_0),
    }
