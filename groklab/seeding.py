"""Explicit, independent random streams derived from one run seed.

Each consumer (data split, model init, minibatch order, noise) gets its own
``torch.Generator`` seeded from ``(seed, purpose)``, so changing how one of them draws
numbers never shifts another, and nothing touches PyTorch's global RNG.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, purpose: str) -> int:
    """A 63-bit seed determined by ``seed`` and the name of its ``purpose``."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` for one purpose of one run."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, purpose))
    return g
