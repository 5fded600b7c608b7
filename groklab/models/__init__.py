"""Models: built from a ``ModelConfig`` and the task's vocabulary sizes.

Every model maps operand pairs ``(B, 2)`` (the MLP also dense inputs ``(B, input_dim)``)
to logits ``(B, n_classes)`` and, given a
``cache`` dict, stores its named activations there, so metrics never reach into a model.
"""

from __future__ import annotations

import torch
from torch import nn

from groklab.config import ModelConfig
from groklab.errors import GroklabError
from groklab.models.committee import CommitteeMachine, solution_weights
from groklab.models.laziness import Lazy, frozen_copy
from groklab.models.mlp import MLP
from groklab.models.transformer import Transformer

__all__ = ["MLP", "Transformer", "CommitteeMachine", "Lazy", "frozen_copy", "build_model"]


def build_model(cfg: ModelConfig, data: "TaskData", generator: torch.Generator) -> nn.Module:  # noqa: F821
    """The network a model config describes for a task's data, initialised from ``generator``
    (on the CPU, so the same seed gives the same weights on any device), wrapped in
    :class:`Lazy` when ``alpha != 1`` or centring is on."""
    n_operands, n_classes = data.n_operands, data.output_dim
    if cfg.name == "committee":
        if data.input_dim is None or not data.is_regression:
            raise GroklabError("model.name='committee' needs dense inputs and a scalar regression target")
        # alpha and centring come from the Lazy wrapper below: alpha * (f(theta) - f(theta_0)).
        net: nn.Module = CommitteeMachine(
            data.input_dim, cfg.width, alpha=1.0, eps=cfg.eps, train_readouts=cfg.train_readout,
            generator=generator,
        )
        with torch.no_grad():
            net.W.mul_(cfg.init_scale)  # the weight-scale sweep: w_i ~ N(0, init_scale^2 I)
            if cfg.init_interp > 0:  # paper 001 app. 8.4.2: start part of the way to the solution
                if data.target_directions is None:
                    raise GroklabError("model.init_interp needs a task with target directions (task.name='polynomial')")
                W_star = solution_weights(data.target_directions, cfg.width, alpha=cfg.alpha, eps=cfg.eps)
                net.W.mul_(1.0 - cfg.init_interp).add_(cfg.init_interp * W_star.to(net.W.dtype))
    elif cfg.name == "mlp":
        net = MLP(
            n_operands,
            n_classes,
            cfg.width,
            activation_name=cfg.activation,
            eps=cfg.eps,
            bias=cfg.bias,
            train_readout=cfg.train_readout,
            parametrization=cfg.parametrization,
            init_scale=cfg.init_scale,
            generator=generator,
            # Dense tasks (images, teacher) give input_dim instead of operand pairs.
            d_in=None if n_operands is not None else data.input_dim,
            depth=cfg.depth,
            he_init=cfg.he_init,
        )
    else:
        net = Transformer(
            n_operands,
            n_classes,
            d_model=cfg.d_model,
            n_heads=cfg.n_heads,
            d_mlp=cfg.d_mlp,
            n_layers=cfg.n_layers,
            layernorm=cfg.layernorm,
            op_token=cfg.op_token,
            init_scale=cfg.init_scale,
            generator=generator,
        )
    if cfg.alpha != 1.0 or cfg.centred:
        return Lazy(net, cfg.alpha, cfg.centred)
    return net
