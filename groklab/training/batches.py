"""Minibatches drawn on the device: no DataLoader, no host round trip per step."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["Batches"]


class Batches:
    """Yields ``(x, y)`` batches of the training set.

    ``batch_size=None`` is full batch (the same tensors every step). Otherwise each epoch
    is a fresh permutation from ``generator``, cut into consecutive batches (the last one
    may be smaller), like a shuffling DataLoader but entirely on the device.
    The state (generator, permutation, position) is saved in checkpoints, so a resumed run
    sees exactly the batches an uninterrupted run would.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: Optional[int], generator: torch.Generator):
        self.x, self.y = x, y
        self.n = len(y)
        self.batch_size = None if batch_size is None or batch_size >= self.n else batch_size
        self.generator = generator
        self.order: Optional[torch.Tensor] = None
        self.position = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch ``(x, y)``: the whole set when full-batch, else the next slice of a
        seeded permutation drawn afresh each epoch."""
        if self.batch_size is None:
            return self.x, self.y
        if self.order is None or self.position >= self.n:
            self.order = torch.randperm(self.n, generator=self.generator, device=self.x.device)
            self.position = 0
        idx = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.x[idx], self.y[idx]

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """What a checkpoint needs to continue the same batch order: tensors and JSON metadata."""
        tensors = {"batches.generator": self.generator.get_state()}
        if self.order is not None:
            tensors["batches.order"] = self.order
        return tensors, {"position": self.position}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        """Continue the batch order saved by :meth:`state`."""
        self.generator.set_state(tensors["batches.generator"])
        order = tensors.get("batches.order")
        self.order = None if order is None else order.to(self.x.device)
        self.position = meta["position"]
