"""Decoder-only transformer on the tokens ``a op b =`` (or ``a b =``), read out at ``=``.

One file, top to bottom, weights named as Nanda et al. (2023) and TransformerLens name
them: ``W_E``, ``W_pos``, per block ``W_Q, W_K, W_V, W_O`` and ``W_in, b_in, W_out,
b_out``, then ``W_U``. ``n_layers=1, layernorm=False`` is Nanda et al.'s model;
``n_layers=2, layernorm=True`` is Power et al.'s.

The fast path uses ``scaled_dot_product_attention``; passing a ``cache`` dict takes the
explicit path that also records attention patterns, and a test checks the two agree.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Transformer"]


def _normal(shape, std, generator):
    return nn.Parameter(torch.randn(*shape, generator=generator) * std)


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, generator: torch.Generator, init_scale: float):
        super().__init__()
        d_head = d_model // n_heads
        std = init_scale / math.sqrt(d_model)
        self.W_Q = _normal((n_heads, d_model, d_head), std, generator)
        self.W_K = _normal((n_heads, d_model, d_head), std, generator)
        self.W_V = _normal((n_heads, d_model, d_head), std, generator)
        self.W_O = _normal((n_heads, d_head, d_model), std, generator)

    def forward(self, x: torch.Tensor, cache: Optional[dict], prefix: str, last_only: bool = False) -> torch.Tensor:
        # last_only: only the final position queries (it sees every position, so no mask).
        q = torch.einsum("bpd,hde->bhpe", x[:, -1:] if last_only else x, self.W_Q)  # (batch, head, pos, d_head)
        k = torch.einsum("bpd,hde->bhpe", x, self.W_K)
        v = torch.einsum("bpd,hde->bhpe", x, self.W_V)
        if cache is None:
            z = F.scaled_dot_product_attention(q, k, v, is_causal=not last_only)  # (batch, head, pos, d_head)
        else:
            n_pos = x.shape[1]
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (batch, head, pos, pos)
            mask = torch.ones(n_pos, n_pos, dtype=torch.bool, device=x.device).triu(1)
            pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
            z = pattern @ v
            cache[f"{prefix}.attn.pattern"] = pattern
        return torch.einsum("bhpe,hed->bpd", z, self.W_O)  # (batch, pos, d_model)


class MLPBlock(nn.Module):
    def __init__(self, d_model: int, d_mlp: int, generator: torch.Generator, init_scale: float):
        super().__init__()
        std = init_scale / math.sqrt(d_model)
        self.W_in = _normal((d_model, d_mlp), std, generator)
        self.b_in = nn.Parameter(torch.zeros(d_mlp))
        self.W_out = _normal((d_mlp, d_model), std, generator)
        self.b_out = nn.Parameter(torch.zeros(d_model))

    def forward(self, x: torch.Tensor, cache: Optional[dict], prefix: str) -> torch.Tensor:
        hidden = F.relu(x @ self.W_in + self.b_in)  # (batch, pos, d_mlp)
        if cache is not None:
            cache[f"{prefix}.mlp.hidden"] = hidden
        return hidden @ self.W_out + self.b_out


class Block(nn.Module):
    def __init__(self, d_model, n_heads, d_mlp, layernorm, generator, init_scale):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model) if layernorm else nn.Identity()
        self.attn = Attention(d_model, n_heads, generator, init_scale)
        self.ln2 = nn.LayerNorm(d_model) if layernorm else nn.Identity()
        self.mlp = MLPBlock(d_model, d_mlp, generator, init_scale)

    def forward(self, x, cache, prefix, last_only: bool = False):
        # pre-LN residual stream; with last_only the output keeps just the final position
        x = (x[:, -1:] if last_only else x) + self.attn(self.ln1(x), cache, prefix, last_only)
        if cache is not None:
            cache[f"{prefix}.resid_mid"] = x
        return x + self.mlp(self.ln2(x), cache, prefix)


class Transformer(nn.Module):
    """Transformer over operand pairs ``(B, 2)``; returns logits ``(B, n_classes)`` at ``=``.

    Tokens: operands ``0..n_operands-1``, then ``op`` and ``=``. With ``op_token=True`` the
    sequence is ``a op b =`` (Power et al.), otherwise ``a b =`` (Nanda et al.).
    Init follows Nanda et al.: N(0, 1/d_model) for every matrix except
    ``W_U`` ~ N(0, 1/n_classes), zero biases, all times ``init_scale``.
    """

    def __init__(
        self,
        n_operands: int,
        n_classes: int,
        d_model: int = 128,
        n_heads: int = 4,
        d_mlp: int = 512,
        n_layers: int = 1,
        layernorm: bool = False,
        op_token: bool = True,
        init_scale: float = 1.0,
        generator: Optional[torch.Generator] = None,
    ):
        super().__init__()
        self.n_operands = n_operands
        self.op_token = op_token
        n_ctx = 4 if op_token else 3
        std = init_scale / math.sqrt(d_model)
        self.W_E = _normal((n_operands + 2, d_model), std, generator)  # operands, op, =
        self.W_pos = _normal((n_ctx, d_model), std, generator)
        self.blocks = nn.ModuleList(
            Block(d_model, n_heads, d_mlp, layernorm, generator, init_scale) for _ in range(n_layers)
        )
        self.ln_final = nn.LayerNorm(d_model) if layernorm else nn.Identity()
        self.W_U = _normal((d_model, n_classes), init_scale / math.sqrt(n_classes), generator)

    def tokens(self, pairs: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, n_ctx)`` for operand pairs ``(B, 2)``."""
        n = len(pairs)
        op = torch.full((n,), self.n_operands, dtype=torch.long, device=pairs.device)
        eq = op + 1
        parts = [pairs[:, 0], op, pairs[:, 1], eq] if self.op_token else [pairs[:, 0], pairs[:, 1], eq]
        return torch.stack(parts, dim=1)

    def forward(self, pairs: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        """Logits at the last position. With ``cache`` a dict, stores ``"embed"`` (B, pos,
        d_model), per block ``blocks.{i}.attn.pattern``, ``blocks.{i}.resid_mid``,
        ``blocks.{i}.mlp.hidden``, and ``"resid_final"`` and ``"logits"``."""
        x = self.W_E[self.tokens(pairs)] + self.W_pos  # (batch, pos, d_model)
        if cache is not None:
            cache["embed"] = x
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            # Only the '=' position is read out, so the last block need not compute the
            # others (about a quarter fewer FLOPs); the cached path keeps every position.
            x = block(x, cache, f"blocks.{i}", last_only=cache is None and i == last)
        resid = self.ln_final(x[:, -1])  # (batch, d_model)
        logits = resid @ self.W_U  # (batch, n_classes)
        if cache is not None:
            cache.update(resid_final=resid, logits=logits)
        return logits
