"""Laziness (paper 001): scale the output by alpha and centre it at initialisation.

    F(theta, x) = alpha * (f(theta, x) - f(theta_0, x))

Large alpha keeps the network near its linearisation (lazy, kernel regime); small alpha
forces it to move its features (rich regime). Together with a learning rate divided by
alpha^2 (see ``Config.lr``) the early dynamics do not depend on alpha (Chizat et al. 2019).
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

__all__ = ["Lazy", "frozen_copy"]


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy whose parameters are turned into buffers.

    Buffers travel with ``state_dict`` (so checkpoints keep theta_0) and ``.to(device)``,
    but ``parameters()`` skips them, so no optimiser, weight norm or gradient sees them.
    """
    clone = copy.deepcopy(module)
    for sub in clone.modules():
        for name, param in list(sub._parameters.items()):
            del sub._parameters[name]
            sub.register_buffer(name, None if param is None else param.detach().clone())
    return clone


class Lazy(nn.Module):
    """Wraps a model ``net`` as ``alpha * (net(x) - net_0(x))`` (or ``alpha * net(x)``
    when ``centre`` is false). ``net_0`` is a frozen copy of ``net`` at construction."""

    def __init__(self, net: nn.Module, alpha: float, centre: bool):
        super().__init__()
        self.net = net
        # A float64 buffer, so an ensemble can give each member its own alpha (stacked buffers);
        # cast to the output's dtype it is exactly the float the multiplication always used.
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))
        self.net_0 = frozen_copy(net) if centre else None

    # the model protocol (groklab.models.protocol) is the wrapped network's
    @property
    def input_kind(self) -> str:
        return self.net.input_kind

    @property
    def n_operands(self) -> Optional[int]:
        return self.net.n_operands

    @property
    def embedding_hook(self) -> str:
        return self.net.embedding_hook

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        out = self.net(x, cache)
        if self.net_0 is not None:
            with torch.no_grad():
                out_0 = self.net_0(x)
            out = out - out_0
        out = self.alpha.to(out.dtype) * out
        if cache is not None:
            cache["logits"] = out
        return out
