"""Sweeps: one config, a grid of overrides, one run directory per point.

``groklab sweep PRESET --grid model.alpha=0.25,1,4 --grid seed=0..7 [--set ...] [--out DIR]``
makes ``DIR/<point>/`` (an ordinary run directory each) and ``DIR/sweep.json``, which lists
every point with its overrides, directory and status (``done``, ``diverged``, ``failed``
with its error, or ``pending``). Restarted after a kill, a sweep skips the points that are
complete, resumes those that left a checkpoint, and runs the rest; a failing point is
recorded and the sweep goes on. ``--jobs N`` trains N points at once in worker processes;
``--pack K`` trains up to K points that differ only in what an ensemble batches (seed,
learning rate, weight decay, init scale, alpha, the committee's eps) as one batched model, as
many as fit the memory budget;
``--executor ray [--address ADDR] [--chunk N]`` sends them to a Ray cluster in chunks of N
packs per task (``pip install groklab[ray]``), writing the same directories (which must be on
storage every node sees).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from groklab.config import Config
from groklab.errors import GroklabError
from groklab.sweeps.executor import Job, Outcome, check_executor, execute
from groklab.sweeps.grid import grid_from_file, grid_points, parse_grid, point_name

__all__ = ["sweep", "parse_grid", "grid_from_file", "read_sweep", "point_state"]

SWEEP_FILE = "sweep.json"


def _write_atomic(path: Path, document: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    os.replace(tmp, path)


def point_state(directory: Path, config: Config) -> str:
    """``complete`` (finished, same config), ``resumable`` (same config, a checkpoint, no
    summary), ``fresh`` (nothing there), or ``conflict`` (a different run is there)."""
    if not directory.exists():
        return "fresh"
    saved = directory / "config.json"
    if not saved.is_file():
        return "fresh" if not any(directory.iterdir()) else "conflict"
    try:
        same = Config.from_json(saved.read_text()) == config
    except GroklabError:
        return "conflict"
    if not same:
        return "conflict"
    if (directory / "summary.json").is_file():
        return "complete"
    checkpoints = directory / "checkpoints"
    return "resumable" if checkpoints.is_dir() and any(checkpoints.glob("step_*.safetensors")) else "restart"


def sweep(base: Config, grid: dict[str, list[Any]], out: Union[str, Path], workers: int = 1,
          progress: bool = True, executor: str = "local", address: Optional[str] = None,
          chunk: Optional[int] = None, pack: int = 1) -> dict[str, Any]:
    """Run ``base`` at every point of ``grid`` into ``out``; returns the sweep document (also
    written to ``out/sweep.json``). Every point's config is validated before anything runs.

    ``executor="local"`` trains ``workers`` points at once in worker processes;
    ``executor="ray"`` sends chunks of ``chunk`` packs (default: about two chunks per cluster
    CPU) to the Ray cluster at ``address`` (default: the connected one, ``RAY_ADDRESS``, or a
    local instance started for this sweep). Both write the same directories and sweep.json.
    ``pack``: train up to that many fresh compatible points as one ensemble
    (:func:`groklab.sweeps.executor.pack_jobs`); resumed points always train alone."""
    check_executor(executor, chunk, pack)  # refused before the sweep directory is made
    if not grid:
        raise GroklabError("a sweep needs at least one --grid key=values")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise GroklabError(f"--out {out} exists and is not a directory")
    points = []
    for overrides in grid_points(grid):
        try:
            config = base.override(*overrides)
        except GroklabError as e:
            raise GroklabError(f"grid point {' '.join(overrides)}: {e}") from None
        points.append((overrides, config, point_name(overrides)))
    names = [name for _, _, name in points]
    if len(set(names)) != len(names):
        raise GroklabError("two grid points map to the same folder name; give distinct values")
    states = {name: point_state(out / name, config) for _, config, name in points}
    conflicts = [name for name, state in states.items() if state == "conflict"]
    if conflicts:
        raise GroklabError(f"{out / conflicts[0]} holds a run with another config; choose another --out "
                           f"({len(conflicts)} point(s) conflict)")
    out.mkdir(parents=True, exist_ok=True)
    previous = read_sweep(out) if (out / SWEEP_FILE).is_file() else {"points": []}
    old_status = {p["name"]: p for p in previous.get("points", [])}
    document = {
        "base": json.loads(base.to_json()),
        "grid": grid,
        "points": [
            {"name": name, "overrides": list(overrides), "dir": name,
             "status": "done" if states[name] == "complete" else "pending",
             "error": None}
            for overrides, _, name in points
        ],
    }
    for p in document["points"]:  # a complete point keeps what it was recorded as (diverged stays diverged)
        if states[p["name"]] == "complete" and p["name"] in old_status:
            p["status"] = old_status[p["name"]].get("status", "done")
    _write_atomic(out / SWEEP_FILE, document)
    by_dir = {str(out / p["name"]): p for p in document["points"]}

    def record(outcome: Outcome) -> None:
        entry = by_dir[outcome.out]
        entry["status"], entry["error"] = outcome.status, outcome.error
        _write_atomic(out / SWEEP_FILE, document)

    jobs = [Job(config.to_json(), str(out / name), resume=states[name] == "resumable")
            for _, config, name in points if states[name] != "complete"]
    execute(jobs, workers=workers, progress=progress, description=f"sweep {out.name}", on_outcome=record,
            executor=executor, address=address, chunk=chunk, pack=pack)
    return document


def read_sweep(directory: Union[str, Path]) -> dict[str, Any]:
    """The ``sweep.json`` of a sweep directory."""
    path = Path(directory) / SWEEP_FILE
    try:
        return json.loads(path.read_text())
    except OSError:
        raise GroklabError(f"{directory} is not a sweep directory (no {SWEEP_FILE})") from None
    except json.JSONDecodeError:
        raise GroklabError(f"{path} is damaged: not valid JSON") from None


def grid_of(assignments: Sequence[str], grid_file: Optional[str]) -> dict[str, list[Any]]:
    """The grid from ``--grid`` assignments and/or a ``--grid-file`` (a key in both is an error)."""
    grid = grid_from_file(grid_file) if grid_file else {}
    for key, values in parse_grid(assignments).items():
        if key in grid:
            raise GroklabError(f"{key} is in both --grid and the grid file")
        grid[key] = values
    return grid
