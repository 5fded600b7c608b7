"""The committee machine of the lazy-to-rich toy model (paper 001, section 5, eq. 3).

``f(x) = (alpha / N) sum_i v_i phi(s w_i . x)``, ``phi(h) = h + (eps/2) h^2``, with
``w_i ~ N(0, I_D)`` at init and readouts ``v_i`` fixed to 1 (the paper's minimal model) or
trainable (appendix 11, eq. 23). The mean over neurons (not ``1/sqrt(N)``) and the output
scale ``alpha`` follow FORMULAS.md; ``s`` (``input_scale``) is 1 for the paper's
``x ~ N(0, I/D)`` and ``1/sqrt(D)`` for the ``x ~ N(0, I)`` variant (``h = W x / sqrt(D)``).

Training uses the centred loss ``mean((f(theta, x) - f(theta_0, x) - y)^2)``
(:func:`centred_mse_loss`) with learning rate ``eta_0 N / alpha^2``: the NTK carries a
factor ``alpha^2 / N`` (see :mod:`groklab.metrics.toy_model`), which that rate cancels.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from groklab.config import ModelConfig
from groklab.errors import GroklabError

__all__ = ["CommitteeMachine", "CommitteeConfig", "centred_mse_loss", "solution_weights"]


class CommitteeMachine(nn.Module):
    """Two-layer committee machine ``f(x) = alpha/N sum_i v_i phi(s w_i . x)``.

    Args:
        D: input dimension.
        N: number of hidden neurons.
        alpha: output scale (laziness; large alpha = lazy).
        eps: weight of the quadratic part of ``phi(h) = h + eps/2 h^2``.
        train_readouts: if False, ``v`` is a buffer fixed to 1 and only ``W`` is a
            parameter (so NTKs and optimisers see only ``W``); if True, ``v`` is a parameter.
        readout_init: ``"ones"`` or ``"gaussian"`` (``v_i ~ N(0, 1)``); only with
            trainable readouts.
        input_scale: ``s`` in ``h = s W x``.
        seed / generator: source of the init ``W ~ N(0, I)`` entrywise; a given
            ``generator`` takes precedence over ``seed``.
        dtype: parameter dtype.

    Attributes:
        W: (N, D) first-layer weights.
        v: (N,) readouts.
    """

    # the model protocol (groklab.models.protocol)
    input_kind = "dense"
    n_operands = None
    embedding_hook = "hidden"

    def __init__(self, D: int, N: int, *, alpha: float = 1.0, eps: float = 0.0,
                 train_readouts: bool = False,
                 readout_init: Literal["ones", "gaussian"] = "ones",
                 input_scale: float = 1.0, seed: int = 0,
                 generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.D, self.N = D, N
        self.alpha = float(alpha)
        # a buffer (float64, not saved in checkpoints) so that ensemble members can each have their own eps
        self.register_buffer("eps_weight", torch.tensor(float(eps), dtype=torch.float64), persistent=False)
        self.input_scale = float(input_scale)
        self.train_readouts = bool(train_readouts)
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(torch.randn(N, D, generator=gen, dtype=dtype))  # (N, D)
        if readout_init == "ones":
            v = torch.ones(N, dtype=dtype)  # (N,)
        elif readout_init == "gaussian":
            if not train_readouts:
                raise ValueError("fixed readouts are always 1 in the toy model")
            v = torch.randn(N, generator=gen, dtype=dtype)  # (N,)
        else:
            raise ValueError(f"unknown readout_init {readout_init!r}")
        if train_readouts:
            self.v = nn.Parameter(v)
        else:
            self.register_buffer("v", v)

    def preactivations(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, N) preactivations ``h_i = s w_i . x``."""
        return self.input_scale * (x @ self.W.T)

    def forward(self, x: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """(B, D) -> (B,) network output ``alpha/N sum_i v_i phi(h_i)``; with ``cache``,
        stores ``hidden`` (preactivations) and ``logits`` (the output) there.

        Without ``cache``, and when it is cheaper (``(B + N) D < B N``, e.g. the paper's
        D = 100, N = 500, P = 550), the output is computed from the quadratic form it is
        (:meth:`quadratic_form_output`), which never builds the (B, N) preactivations."""
        if cache is None and (x.shape[0] + self.N) * self.D < x.shape[0] * self.N:
            return self.quadratic_form_output(x)
        h = self.preactivations(x)  # (B, N)
        phi = h + 0.5 * self.eps_weight.to(h.dtype) * h * h
        out = (self.alpha / self.N) * (phi @ self.v)  # (B,)
        if cache is not None:
            cache["hidden"], cache["logits"] = h, out
        return out

    def quadratic_form_output(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) the same output as :meth:`forward`, written as the function of x it is:
        ``f(x) = alpha s (W^T v / N) . x + (alpha eps s^2 / 2) x^T (W^T diag(v) W / N) x``
        (the toy model's ``wbar`` and ``M`` for readouts 1). It costs about ``(B + N) D^2``
        multiply-adds, forward and backward, instead of ``B N D``, and holds (D, D) and (B, D)
        temporaries instead of (B, N) ones."""
        s, eps = self.input_scale, self.eps_weight.to(x.dtype)
        mean_weight = self.W.T @ self.v / self.N  # (D,)
        second_moment = (self.W.T * self.v) @ self.W / self.N  # (D, D)
        quadratic = ((x @ second_moment) * x).sum(-1)  # (B,)
        return self.alpha * (s * (x @ mean_weight) + 0.5 * eps * s * s * quadratic)

    @property
    def eps(self) -> float:
        """Weight of the quadratic part of ``phi``."""
        return float(self.eps_weight)

    def extra_repr(self) -> str:
        return (f"D={self.D}, N={self.N}, alpha={self.alpha}, eps={self.eps}, "
                f"train_readouts={self.train_readouts}, input_scale={self.input_scale}")


def centred_mse_loss(model: nn.Module, model_at_init_outputs: torch.Tensor,
                     x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Centred MSE ``mean((f(theta, x) - f(theta_0, x) - y)^2)`` (FORMULAS.md, "Centering").

    Subtracting the init output removes the random function ``f(theta_0, .)`` from the
    predictor, so the network starts at zero output and the loss depends on the weights
    only through their change (``wbar - wbar_0``, ``M - M_0`` in the toy model).

    Args:
        model: any module mapping (B, D) -> (B,) (or (B, C) with matching ``y``).
        model_at_init_outputs: ``f(theta_0, x)``, same shape as ``model(x)``, computed
            once under ``torch.no_grad()`` on the same ``x``.
        x: (B, D) inputs.
        y: targets, same shape as ``model(x)``.

    Returns:
        scalar loss (no factor 1/2).
    """
    return ((model(x) - model_at_init_outputs - y) ** 2).mean()


def solution_weights(directions: torch.Tensor, N: int, *, alpha: float, eps: float) -> torch.Tensor:
    """(N, D) first-layer weights at which the committee computes the quadratic target exactly.

    The target ``y = 0.5 sum_k (beta_k . x)^2 = 0.5 x^T T x`` (``T = sum_k beta_k beta_k^T``,
    rows of ``directions``) is reached at ``wbar = 0``, ``M = T / (alpha eps)`` (FORMULAS.md,
    "Optimum"), since ``f(x) = alpha wbar . x + (alpha eps / 2) x^T M x`` for readouts 1.
    Neurons come in +/- pairs, pair ``j`` on direction ``k = j mod K``:
    ``w = +/- beta_k sqrt(N / (alpha eps n_k))`` with ``n_k`` neurons on direction ``k``, so
    ``(1/N) sum_i w_i w_i^T = T / (alpha eps)`` and ``wbar = 0`` exactly. An odd ``N`` leaves
    the last neuron at zero (it contributes nothing).

    Args:
        directions: (K, D) or (D,) target directions ``beta_k``.
        N: number of neurons, at least ``2 K``.
        alpha: output scale of the network (the whole output, Lazy wrapper included).
        eps: quadratic weight of ``phi(h) = h + eps/2 h^2`` (> 0).

    Returns:
        (N, D) weights in ``directions``' dtype.
    """
    B = directions.reshape(-1, directions.shape[-1])  # (K, D)
    K = B.shape[0]
    pairs = N // 2
    if pairs < K or eps <= 0 or alpha <= 0:
        raise ValueError(f"need N >= 2K (N={N}, K={K}) and alpha, eps > 0 (alpha={alpha}, eps={eps})")
    k_of_pair = torch.arange(pairs) % K  # (pairs,)
    n_k = 2 * torch.bincount(k_of_pair, minlength=K).to(B.dtype)  # (K,) neurons per direction
    scale = torch.sqrt(N / (alpha * eps * n_k))  # (K,)
    rows = B[k_of_pair] * scale[k_of_pair, None]  # (pairs, D)
    W = torch.zeros(N, B.shape[1], dtype=B.dtype)  # (N, D)
    W[0 : 2 * pairs : 2], W[1 : 2 * pairs : 2] = rows, -rows
    return W


class CommitteeConfig(ModelConfig):
    """``model.name='committee'``: paper 001's toy model on a scalar regression task,
    ``f = alpha/N sum_i v_i phi(w_i . x)``, ``phi(h) = h + eps/2 h^2``, ``N = width``,
    ``w_i ~ N(0, init_scale^2 I)``; readouts ``v_i = 1``, trained iff ``train_readout``."""

    name: Literal["committee"] = "committee"
    accepts_inputs = ("dense",)
    accepts_targets = ("scalar",)
    per_member = ("eps",)
    width: int = Field(256, ge=1, le=1_000_000, description="neurons N")
    eps: float = Field(0.5, description="weight of the quadratic part of phi(h) = h + eps/2 h^2")
    train_readout: bool = True
    init_interp: float = Field(
        0.0, ge=0, le=1, description="on a quadratic polynomial task: initial W = (1 - t) W_random + "
        "t W_star, W_star the analytic solution (M = T / (alpha eps), wbar = 0; paper 001 app. 8.4.2); 0 = random",
    )

    def check(self, config) -> None:
        if self.init_interp > 0:
            if getattr(config.task, "target", None) != "quadratic":
                raise ValueError("model.init_interp interpolates toward the toy model's analytic solution: it needs "
                                 "model.name='committee' and task.target='quadratic'")
            if self.eps <= 0:
                raise ValueError("model.init_interp needs model.eps > 0 (the solution is M = T / (alpha eps))")
            if self.width < 2 * config.task.n_directions:
                raise ValueError("model.init_interp needs model.width >= 2 * task.n_directions (a +/- pair of "
                                 "neurons per target direction)")


from groklab.models import register_model  # noqa: E402  (the registry is defined before this module is imported)


@register_model(CommitteeConfig)
def _build(cfg: CommitteeConfig, data, generator: torch.Generator) -> nn.Module:
    # alpha and centring come from build_model's Lazy wrapper: alpha * (f(theta) - f(theta_0)).
    net = CommitteeMachine(data.input_dim, cfg.width, alpha=1.0, eps=cfg.eps, train_readouts=cfg.train_readout,
                           generator=generator)
    with torch.no_grad():
        net.W.mul_(cfg.init_scale)  # the weight-scale sweep: w_i ~ N(0, init_scale^2 I)
        if cfg.init_interp > 0:  # paper 001 app. 8.4.2: start part of the way to the solution
            if data.target_directions is None:
                raise GroklabError("model.init_interp needs a task with target directions (task.name='polynomial')")
            W_star = solution_weights(data.target_directions, cfg.width, alpha=cfg.alpha, eps=cfg.eps)
            net.W.mul_(1.0 - cfg.init_interp).add_(cfg.init_interp * W_star.to(net.W.dtype))
    return net
