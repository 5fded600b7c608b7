"""Checkpoint files: tensors in safetensors (never pickle), everything else as JSON metadata.

A checkpoint is one ``step_XXXXXXXX.safetensors`` file, written to a temporary name and
renamed into place, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

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
    "flatten_optimizer_state",
    "unflatten_optimizer_state",
]

_NAME = re.compile(r"step_(\d+)\.safetensors$")


def checkpoint_path(directory: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives in ``directory``."""
    return Path(directory) / f"step_{step:08d}.safetensors"


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``tensors`` and JSON-serialisable ``meta`` atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # safetensors wants contiguous, unshared CPU tensors.
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = path.with_suffix(".tmp")
    save_file(cpu, str(tmp), metadata={"groklab": json.dumps(meta)})
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint back as ``(tensors, meta)``; a damaged file raises :class:`GroklabError`."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
        meta = json.loads(header["__metadata__"]["groklab"])
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise GroklabError(f"checkpoint {path} is unreadable or corrupt ({type(e).__name__}); cannot resume from it") from None
    return tensors, meta


def latest_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or None if there is none."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.search(p.name))]
    return max(found)[1] if found else None


def flatten_optimizer_state(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser state_dict into tensors (for safetensors) and JSON metadata."""
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer_state`: the optimiser state_dict back."""
    slots: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            slots.setdefault(int(index), {})[key] = value
    for name, value in meta["scalars"].items():
        index, key = name.split(".", 1)
        slots.setdefault(int(index), {})[key] = value
    return {"state": slots, "param_groups": meta["param_groups"]}
