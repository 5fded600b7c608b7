"""Grids of config overrides: ``key=v1,v2,v3`` and ``key=a..b`` (integers, inclusive), or a JSON
file ``{"key": [values], ...}``; their Cartesian product is the list of sweep points."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any, Sequence

from groklab.config import parse_override
from groklab.errors import GroklabError

__all__ = ["parse_grid", "grid_from_file", "grid_points", "point_name"]

_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def _values(key: str, raw: str) -> list[Any]:
    match = _RANGE.match(raw.strip())
    if match:
        lo, hi = int(match.group(1)), int(match.group(2))
        if hi < lo:
            raise GroklabError(f"--grid {key}={raw}: the range a..b needs a <= b")
        return list(range(lo, hi + 1))
    values = [parse_override(f"{key}={part.strip()}")[1] for part in raw.split(",") if part.strip()]
    if not values:
        raise GroklabError(f"--grid {key}= needs at least one value (e.g. {key}=1,2 or {key}=0..3)")
    return values


def parse_grid(assignments: Sequence[str]) -> dict[str, list[Any]]:
    """``["model.alpha=0.25,1,4", "seed=0..7"]`` -> ``{"model.alpha": [0.25, 1, 4], "seed": [0, ..., 7]}``.
    A key given twice is an error."""
    grid: dict[str, list[Any]] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        key = key.strip()
        if not sep or not key:
            raise GroklabError(f"--grid '{assignment}' is not of the form key=v1,v2 or key=a..b")
        if key in grid:
            raise GroklabError(f"--grid names {key} twice")
        grid[key] = _values(key, raw)
    return grid


def grid_from_file(path: str) -> dict[str, list[Any]]:
    """A JSON object mapping dotted keys to lists of values."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise GroklabError(f"cannot read grid file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise GroklabError(f"grid file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and v for v in data.values()):
        raise GroklabError(f"grid file {path} must be a JSON object of non-empty lists, e.g. {{\"seed\": [0, 1]}}")
    return data


def grid_points(grid: dict[str, list[Any]]) -> list[tuple[str, ...]]:
    """Every combination as a tuple of ``key=value`` overrides (values as JSON), in grid order."""
    keys = list(grid)
    return [tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo))
            for combo in itertools.product(*(grid[k] for k in keys))]


def point_name(overrides: Sequence[str]) -> str:
    """A folder name for one point: ``model.alpha=0.25_seed=3`` (safe characters only)."""
    parts = []
    for assignment in overrides:
        key, _, value = assignment.partition("=")
        value = value.strip('"')
        parts.append(f"{key}={re.sub(r'[^A-Za-z0-9.+-]', '-', value)}")
    return "_".join(parts) or "point"
