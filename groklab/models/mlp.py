"""Two-layer MLP on a pair of one-hot operands.

    pre = x @ W_in (+ b_in)           x: two concatenated one-hot vectors, (B, 2 * n_operands)
    f   = phi(pre) @ W_out (+ b_out)   (B, n_classes)

With index input ``(B, 2)`` the first layer is an embedding lookup: a one-hot row times
``W_in`` just selects a row, so ``x @ W_in`` is the sum of two rows of ``W_in``, at a cost
of O(width) instead of O(n_operands * width). Dense float input ``(B, 2 * n_operands)``
takes the matmul path, which perturbed-input training and input-gradient metrics need.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "ACTIVATIONS"]


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
    """Two-layer perceptron; weights named ``W_in`` (d_in, width) and ``W_out`` (width, d_out).

    ``parametrization="standard"``: PyTorch's default ``nn.Linear`` init (uniform with bound
    1/sqrt(fan_in)) times ``init_scale``; no multipliers. ``"ntk"``: weights
    N(0, init_scale^2), ``pre = x @ W_in / sqrt(d_in)``, ``f = phi(pre) @ W_out / sqrt(width)``.
    ``"mean_field"``: as ``ntk`` but ``f = phi(pre) @ W_out / width`` (for phi = x^2 this is
    FORMULAS.md's output scale 1/(d_in * width) on unnormalised inputs).
    A fixed readout (``train_readout=False``) is a buffer, so optimisers never see it.
    """

    def __init__(
        self,
        n_operands: int,
        n_classes: int,
        width: int,
        activation_name: str = "relu",
        eps: float = 0.5,
        bias: bool = True,
        train_readout: bool = True,
        parametrization: str = "standard",
        init_scale: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ):
        super().__init__()
        self.n_operands = n_operands
        d_in = 2 * n_operands
        self.phi = activation(activation_name, eps)
        # Forward multipliers keep N(0,1) weights while fixing the scale of each layer.
        self.in_mult = 1.0 if parametrization == "standard" else 1.0 / math.sqrt(d_in)
        self.out_mult = {"standard": 1.0, "ntk": 1.0 / math.sqrt(width), "mean_field": 1.0 / width}[parametrization]

        W_in, b_in = self._init_layer(d_in, width, bias, parametrization, init_scale, generator)
        W_out, b_out = self._init_layer(width, n_classes, bias, parametrization, init_scale, generator)
        self.W_in = nn.Parameter(W_in)  # (d_in, width)
        self.b_in = nn.Parameter(b_in) if bias else None  # (width,)
        if train_readout:
            self.W_out = nn.Parameter(W_out)  # (width, d_out)
            self.b_out = nn.Parameter(b_out) if bias else None
        else:
            self.register_buffer("W_out", W_out)
            self.register_buffer("b_out", b_out if bias else None)

    @staticmethod
    def _init_layer(fan_in, fan_out, bias, parametrization, scale, generator):
        W = torch.empty(fan_in, fan_out)
        b = torch.empty(fan_out)
        if parametrization != "standard":
            nn.init.normal_(W, 0.0, scale, generator=generator)
            nn.init.normal_(b, 0.0, scale, generator=generator)
        else:
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default
            nn.init.uniform_(W, -bound, bound, generator=generator)
            nn.init.uniform_(b, -bound, bound, generator=generator)
            W, b = W * scale, b * scale
        return W, b

    def one_hot(self, pairs: torch.Tensor) -> torch.Tensor:
        """Dense input ``(B, 2 * n_operands)`` for operand pairs ``(B, 2)``."""
        return torch.cat([F.one_hot(pairs[:, 0], self.n_operands), F.one_hot(pairs[:, 1], self.n_operands)], 1).to(
            self.W_in.dtype
        )

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """Logits ``(B, n_classes)`` for operand pairs ``(B, 2)`` or dense inputs ``(B, d_in)``.

        If ``cache`` is a dict, the activations are stored in it under ``"pre"`` (B, width),
        ``"hidden"`` (B, width) and ``"logits"``.
        """
        if x.dtype == torch.long:
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
        out = hidden @ self.W_out  # (B, n_classes)
        if self.out_mult != 1.0:
            out = out * self.out_mult
        if self.b_out is not None:
            out = out + self.b_out
        if cache is not None:
            cache.update(pre=pre, hidden=hidden, logits=out)
        return out
