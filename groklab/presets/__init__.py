"""Presets: named, documented configs shipped with the package (one JSON file each).

Each file holds ``{"description": "one line", "config": {...partial config...}}``; keys it
leaves out take the defaults of :class:`groklab.config.Config`.
"""

from __future__ import annotations

import json
from importlib import resources

from groklab.config import Config, config_from_dict
from groklab.errors import GroklabError

__all__ = ["DEFAULT_PRESET", "list_presets", "load_preset"]

DEFAULT_PRESET = "mlp-add"


def _files() -> dict[str, object]:
    return {f.name.removesuffix(".json"): f for f in resources.files(__name__).iterdir() if f.name.endswith(".json")}


def _read(name: str) -> dict:
    files = _files()
    if name not in files:
        raise GroklabError(f"unknown preset '{name}'; available: {', '.join(sorted(files))}")
    return json.loads(files[name].read_text())


def list_presets() -> dict[str, str]:
    """``{name: one-line description}`` of every shipped preset, sorted by name."""
    return {name: _read(name)["description"] for name in sorted(_files())}


def load_preset(name: str = DEFAULT_PRESET) -> Config:
    """The validated config of preset ``name``; unknown names raise :class:`GroklabError`."""
    return config_from_dict({"name": name, **_read(name)["config"]})
