"""Checkpoint files: tensors in safetensors (never pickle), everything else as JSON metadata.

A checkpoint is one ``step_XXXXXXXX.safetensors`` file, written to a temporary name and
renamed into place, so a run killed mid-write leaves the previous checkpoint intact. Its
metadata carries a SHA-256 digest of every tensor's name, dtype, shape and bytes, checked on
load: a flipped bit is an error naming the newest intact checkpoint, never a silent resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from groklab.errors import GroklabError

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "latest_checkpoint",
    "checkpoint_path",
    "tensor_digest",
    "list_checkpoints",
]

_NAME = re.compile(r"step_(\d+)\.safetensors$")


def checkpoint_path(directory: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in ``directory``."""
    return Path(directory) / f"step_{step:08d}.safetensors"


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and raw bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON-serialisable ``meta`` atomically to ``path``, with the
    tensors' digest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors wants contiguous, unshared CPU tensors.
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = path.with_suffix(".tmp")
    save_file(cpu, str(tmp), metadata={"groklab": json.dumps(meta), "sha256": tensor_digest(cpu)})
    os.chmod(tmp, 0o644)  # as readable as the rest of the run directory
    os.replace(tmp, path)


class _Damaged(Exception):
    """A checkpoint that cannot be read or fails its digest; the message says which."""


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
        meta = json.loads(header["__metadata__"]["groklab"])
        stored = header["__metadata__"].get("sha256")  # checkpoints written before digests have none
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise _Damaged(f"is unreadable or corrupt ({type(e).__name__})") from None
    if stored is not None and tensor_digest(tensors) != stored:
        raise _Damaged("is damaged (its tensors do not match their digest)")
    return tensors, meta


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint back as ``(tensors, meta)``, checking its digest. A damaged file
    raises :class:`GroklabError` naming the newest intact checkpoint beside it."""
    path = Path(path)
    try:
        return _read(path)
    except _Damaged as e:
        raise GroklabError(f"checkpoint {path} {e}{_fallback(path)}") from None


def _fallback(path: Path) -> str:
    """'; the newest intact one is ... (resume with --checkpoint STEP)' or why there is none."""
    for step, other in reversed(list_checkpoints(path.parent)):
        if other == path:
            continue
        try:
            _read(other)
        except _Damaged:
            continue
        return f"; the newest intact checkpoint is step {step}: resume from it with --checkpoint {step}"
    return "; no intact checkpoint is left to resume from"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.search(p.name)))


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None if there is none."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None
