"""MLP on a pair of one-hot operands or on dense float inputs, with one or more hidden layers.

    pre_0 = x @ W_in (+ b_in)                     x: (B, d_in), d_in = 2 * n_operands or given
    pre_i = phi(pre_{i-1}) @ W_mid[i-1] (+ b_mid[i-1])   i = 1 .. depth-1, (B, width)
    f     = phi(pre_{depth-1}) @ W_out (+ b_out)   (B, n_classes)

``depth=1`` is the two-layer network of the modular tasks (only ``W_in`` and ``W_out``);
``depth=2, width=200`` on 784 inputs is Omnigrok's 784-200-200-10 MNIST MLP.

With index input ``(B, 2)`` the first layer is an embedding lookup: a one-hot row times
``W_in`` just selects a row, so ``x @ W_in`` is the sum of two rows of ``W_in``, at a cost
of O(width) instead of O(n_operands * width). Dense float input ``(B, d_in)`` takes the
matmul path, which dense tasks (images, student-teacher), perturbed-input training and
input-gradient metrics need.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Optional

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from groklab.config import ModelConfig

__all__ = ["MLP", "MLPConfig", "ACTIVATIONS"]


def activation(name: str, eps: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The elementwise nonlinearity ``phi`` named by ``model.activation``."""
    if name == "poly":
        return lambda h: h + 0.5 * eps * h * h  # paper 001: phi(h) = h + eps/2 h^2
    return ACTIVATIONS[name]


ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
    "quadratic": torch.square,
}


class MLP(nn.Module):
    """Perceptron with ``depth`` hidden layers; weights named ``W_in`` (d_in, width),
    ``W_mid.0 .. W_mid.{depth-2}`` (width, width) (and ``b_mid.*``) between hidden layers,
    ``W_out`` (width, d_out). Give ``n_operands`` for operand-pair tasks (``d_in = 2 *
    n_operands``) or ``d_in`` for dense inputs (then ``n_operands=None``).

    ``parametrization="standard"``: PyTorch's default ``nn.Linear`` init (uniform with bound
    1/sqrt(fan_in)) times ``init_scale``; no multipliers. ``"ntk"``: weights
    N(0, init_scale^2), ``pre = x @ W_in / sqrt(d_in)``, ``f = phi(pre) @ W_out / sqrt(width)``.
    ``"mean_field"``: as ``ntk`` but ``f = phi(pre) @ W_out / width`` (for phi = x^2 this is
    FORMULAS.md's output scale 1/(d_in * width) on unnormalised inputs). In both, a hidden-to-
    hidden layer divides by sqrt(width) (1/sqrt(fan_in) in the forward pass), and ``he_init``
    draws each weight matrix from N(0, init_scale^2 * 2 / fan_in) instead of N(0, init_scale^2)
    (paper 001's MNIST network: ``150 * sqrt(2 / fan_in) * N(0, 1)`` with 1/sqrt(fan_in) in
    the forward pass and the readout divided by the width); biases stay N(0, init_scale^2).
    Parameters are drawn in the order W_in, b_in, W_mid.0, b_mid.0, ..., W_out, b_out, so a
    depth-1 network gets the same weights from the same generator as before depth existed.
    A fixed readout (``train_readout=False``) is a buffer, so optimisers never see it.
    """

    embedding_hook = "hidden"  # the model protocol (groklab.models.protocol)

    @property
    def input_kind(self) -> str:
        """``"pairs"`` with ``n_operands``, ``"dense"`` with ``d_in`` (the model protocol)."""
        return "dense" if self.n_operands is None else "pairs"

    def __init__(
        self,
        n_operands: Optional[int],
        n_classes: int,
        width: int,
        activation_name: str = "relu",
        eps: float = 0.5,
        bias: bool = True,
        train_readout: bool = True,
        parametrization: str = "standard",
        init_scale: float = 1.0,
        generator: Optional[torch.Generator] = None,
        d_in: Optional[int] = None,
        depth: int = 1,
        he_init: bool = False,
    ):
        super().__init__()
        if (n_operands is None) == (d_in is None):
            raise ValueError("MLP needs exactly one of n_operands (operand pairs) and d_in (dense inputs)")
        if depth < 1:
            raise ValueError(f"MLP depth must be >= 1 hidden layer, got {depth}")
        if he_init and parametrization == "standard":
            raise ValueError("he_init applies to the ntk / mean_field parametrizations (standard has its own init)")
        self.n_operands = n_operands
        d_in = 2 * n_operands if d_in is None else d_in
        self.d_in, self.depth = d_in, depth
        self.phi = activation(activation_name, eps)
        # Forward multipliers keep N(0,1) weights while fixing the scale of each layer.
        self.in_mult = 1.0 if parametrization == "standard" else 1.0 / math.sqrt(d_in)
        self.mid_mult = 1.0 if parametrization == "standard" else 1.0 / math.sqrt(width)
        self.out_mult = {"standard": 1.0, "ntk": 1.0 / math.sqrt(width), "mean_field": 1.0 / width}[parametrization]

        init = dict(bias=bias, parametrization=parametrization, scale=init_scale, generator=generator, he=he_init)
        W_in, b_in = self._init_layer(d_in, width, **init)
        mids = [self._init_layer(width, width, **init) for _ in range(depth - 1)]
        W_out, b_out = self._init_layer(width, n_classes, **init)
        self.W_in = nn.Parameter(W_in)  # (d_in, width)
        self.b_in = nn.Parameter(b_in) if bias else None  # (width,)
        self.W_mid = nn.ParameterList(nn.Parameter(W) for W, _ in mids)  # depth-1 x (width, width)
        self.b_mid = nn.ParameterList(nn.Parameter(b) for _, b in mids) if bias else None
        if train_readout:
            self.W_out = nn.Parameter(W_out)  # (width, d_out)
            self.b_out = nn.Parameter(b_out) if bias else None
        else:
            self.register_buffer("W_out", W_out)
            self.register_buffer("b_out", b_out if bias else None)

    @staticmethod
    def _init_layer(fan_in, fan_out, bias, parametrization, scale, generator, he=False):
        W = torch.empty(fan_in, fan_out)
        b = torch.empty(fan_out)
        if parametrization != "standard":
            nn.init.normal_(W, 0.0, scale * (math.sqrt(2.0 / fan_in) if he else 1.0), generator=generator)
            nn.init.normal_(b, 0.0, scale, generator=generator)
        else:
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default
            nn.init.uniform_(W, -bound, bound, generator=generator)
            nn.init.uniform_(b, -bound, bound, generator=generator)
            W, b = W * scale, b * scale
        return W, b

    def one_hot(self, pairs: torch.Tensor) -> torch.Tensor:
        """Dense input ``(B, 2 * n_operands)`` for operand pairs ``(B, 2)``."""
        if self.n_operands is None:
            raise ValueError("this MLP takes dense inputs (d_in), not operand pairs")
        return torch.cat([F.one_hot(pairs[:, 0], self.n_operands), F.one_hot(pairs[:, 1], self.n_operands)], 1).to(
            self.W_in.dtype
        )

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for operand pairs ``(B, 2)`` or dense inputs ``(B, d_in)``.

        If ``cache`` is a dict, the activations are stored in it under ``"pre"`` (B, width),
        ``"hidden"`` (B, width) (the last hidden layer, which the readout reads) and
        ``"logits"``; with ``depth > 1`` also ``"pre.{i}"`` and ``"hidden.{i}"`` per layer.
        """
        if x.dtype == torch.long:
            if self.n_operands is None:
                raise ValueError("this MLP takes dense float inputs (d_in), not operand pairs")
            # Two row gathers: index_select's backward (index_add) is cheaper on CPU than
            # embedding's sort-based backward or a dense one-hot matmul.
            pre = self.W_in.index_select(0, x[:, 0]) + self.W_in.index_select(0, x[:, 1] + self.n_operands)  # (B, width)
        else:
            pre = x @ self.W_in  # (B, width)
        if self.in_mult != 1.0:
            pre = pre * self.in_mult
        if self.b_in is not None:
            pre = pre + self.b_in
        hidden = self.phi(pre)
        layers = {}
        for i, W in enumerate(self.W_mid):
            layers[f"pre.{i}"], layers[f"hidden.{i}"] = pre, hidden
            pre = hidden @ W  # (B, width)
            if self.mid_mult != 1.0:
                pre = pre * self.mid_mult
            if self.b_mid is not None:
                pre = pre + self.b_mid[i]
            hidden = self.phi(pre)
        if layers:
            layers[f"pre.{self.depth - 1}"], layers[f"hidden.{self.depth - 1}"] = pre, hidden
        out = hidden @ self.W_out  # (B, n_classes)
        if self.out_mult != 1.0:
            out = out * self.out_mult
        if self.b_out is not None:
            out = out + self.b_out
        if cache is not None:
            cache.update(layers)
            cache.update(pre=pre, hidden=hidden, logits=out)
        return out


class MLPConfig(ModelConfig):
    """``model.name='mlp'``: the :class:`MLP`, on operand pairs (one-hot rows) or dense inputs."""

    name: Literal["mlp"] = "mlp"
    accepts_inputs = ("pairs", "dense")
    accepts_targets = ("classes", "vectors")
    dense_input_layer = True
    width: int = Field(256, ge=1, le=1_000_000, description="hidden width")
    depth: int = Field(
        1, ge=1, description="hidden layers: 1 = the two-layer W_in/W_out net; 2 = e.g. Omnigrok's "
        "784-200-200-10 (extra layers W_mid.0, ...)"
    )
    activation: Literal["relu", "gelu", "tanh", "quadratic", "poly"] = "relu"
    eps: float = Field(0.5, description="poly activation h + eps/2 h^2")
    bias: bool = True
    train_readout: bool = True
    parametrization: Literal["standard", "ntk", "mean_field"] = Field(
        "standard",
        description="standard: PyTorch default init; ntk / mean_field: N(0,1) weights, input / sqrt(d_in), "
        "output / sqrt(width) or / width",
    )
    he_init: bool = Field(
        False, description="parametrization ntk / mean_field: weights N(0, init_scale^2 * 2 / fan_in) "
        "instead of N(0, init_scale^2) (paper 001's MNIST network)"
    )

    @model_validator(mode="after")
    def _he_init_has_unit_weights(self) -> "MLPConfig":
        if self.he_init and self.parametrization == "standard":
            raise ValueError("model.he_init scales N(0,1) weights by sqrt(2/fan_in): it needs model.name='mlp' with "
                             "model.parametrization='ntk' or 'mean_field'")
        return self


from groklab.models import register_model  # noqa: E402  (the registry is defined before this module is imported)


@register_model(MLPConfig)
def _build(cfg: MLPConfig, data, generator: torch.Generator) -> nn.Module:
    return MLP(
        data.n_operands,
        data.output_dim,
        cfg.width,
        activation_name=cfg.activation,
        eps=cfg.eps,
        bias=cfg.bias,
        train_readout=cfg.train_readout,
        parametrization=cfg.parametrization,
        init_scale=cfg.init_scale,
        generator=generator,
        # Dense tasks (images, teacher) give input_dim instead of operand pairs.
        d_in=None if data.n_operands is not None else data.input_dim,
        depth=cfg.depth,
        he_init=cfg.he_init,
    )
