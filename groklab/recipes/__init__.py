"""Recipes: one named, runnable reproduction per figure of the papers.

``groklab reproduce NAME [--quick] [--out DIR]`` runs a recipe's experiments (each a normal
run directory under ``DIR``), draws the figure as ``DIR/NAME.png`` and writes
``DIR/verdict.json``::

    {"recipe": ..., "claim": "one sentence from the paper", "measured": {name: number},
     "supported": true | false, "notes": "...", "quick": bool, "wall_seconds": ...}

A recipe states its check before it runs and reports what it measured; when the quick
size cannot support the claim, the verdict says so instead of bending the check.
Register a recipe with :func:`recipe`; modules ``lazyrich`` (paper 001) and ``robust``
(paper 000) hold them.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from groklab.config import Config  # noqa: E402
from groklab.errors import GroklabError  # noqa: E402
from groklab.store.rundir import prepare_run_dir  # noqa: E402

__all__ = ["Recipe", "RecipeContext", "Verdict", "RECIPES", "recipe", "reproduce", "list_recipes"]


@dataclass
class Verdict:
    """What a recipe found: the numbers, whether they support the claim, and why."""

    measured: dict[str, Any]
    supported: bool
    notes: str
    figure: Figure


@dataclass
class RecipeContext:
    """Handed to a recipe: where to write, which size to run, and a helper to run configs."""

    out: Path
    quick: bool
    progress: bool = False
    runs: list[Path] = field(default_factory=list)

    def run(self, config: Config, label: str):
        """Run ``config`` into ``out/label`` (replacing an earlier run of this recipe there)."""
        from groklab.api import run

        result = run(config, out=self.out / label, overwrite=True, progress=self.progress)
        self.runs.append(result.dir)
        return result


@dataclass(frozen=True)
class Recipe:
    name: str
    paper: str
    claim: str
    fn: Callable[[RecipeContext], Verdict]

    @property
    def summary(self) -> str:
        return f"[{self.paper}] {self.claim}"


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, paper: str, claim: str) -> Callable[[Callable[[RecipeContext], Verdict]], Callable]:
    """Decorator registering ``fn(ctx) -> Verdict`` as recipe ``name`` with the paper's claim."""

    def add(fn: Callable[[RecipeContext], Verdict]) -> Callable[[RecipeContext], Verdict]:
        RECIPES[name] = Recipe(name, paper, claim, fn)
        return fn

    return add


def _load_all() -> None:
    # Importing every module of this package registers its recipes.
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def list_recipes() -> dict[str, str]:
    """``{name: "[paper] claim"}`` for every recipe, sorted by name."""
    _load_all()
    return {name: RECIPES[name].summary for name in sorted(RECIPES)}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def reproduce(name: str, out: Optional[Union[str, Path]] = None, quick: bool = False, overwrite: bool = False,
              progress: bool = True) -> dict[str, Any]:
    """Run recipe ``name``; write ``<out>/<name>.png`` and ``<out>/verdict.json``; return the verdict."""
    _load_all()
    if name not in RECIPES:
        raise GroklabError(f"unknown recipe '{name}'; see 'groklab reproduce --list' ({', '.join(sorted(RECIPES))})")
    entry = RECIPES[name]
    out = Path(out or Path("runs") / "reproduce" / (name + ("-quick" if quick else "")))
    if out.is_dir() and (out / "verdict.json").is_file() and not overwrite:
        raise GroklabError(f"{out} already holds a verdict; pass --overwrite or choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "verdict.json").is_file() and not overwrite:
        prepare_run_dir(out, overwrite=False)  # raises the usual "already exists" error
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    verdict = entry.fn(RecipeContext(out, quick, progress))
    figure_path = out / f"{name}.png"
    verdict.figure.savefig(figure_path, dpi=110, bbox_inches="tight")
    document = {
        "recipe": name,
        "claim": entry.claim,
        "measured": {k: _json_number(v) for k, v in verdict.measured.items()},
        "supported": bool(verdict.supported),
        "notes": verdict.notes,
        "quick": quick,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "figure": figure_path.name,
    }
    (out / "verdict.json").write_text(json.dumps(document, indent=2) + "\n")
    return document
