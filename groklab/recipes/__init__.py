"""Recipes: one named, runnable reproduction per figure of the papers.

``groklab reproduce NAME [--quick] [--out DIR]`` runs a recipe's experiments (each a normal
run directory under ``DIR``), draws the figure as ``DIR/NAME.png`` and writes
``DIR/verdict.json``::

    {"recipe": ..., "claim": "one sentence from the paper", "measured": {name: number},
     "supported": true | false, "notes": "...", "quick": bool, "wall_seconds": ...}

A recipe states its check before it runs and reports what it measured; when the quick
size cannot support the claim, the verdict says so instead of bending the check.
Register a recipe with :func:`recipe`; modules ``robust`` (paper 000), ``lazyrich``,
``lazyrich_toy``, ``lazyrich_nets`` and ``theory`` (paper 001) hold them, and each module's
words (claims, controls' rationales, falsifiers, notes) are in its card file beside it
(:mod:`groklab.recipes.cards`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

import groklab.report  # noqa: F401  (selects matplotlib's file-only backend before any figure)
from groklab.errors import GroklabError

if TYPE_CHECKING:  # listing recipes reads their cards only: no pandas, pyplot or PyTorch
    from matplotlib.figure import Figure

    from groklab.config import Config

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
        from groklab.experiment import run

        result = run(config, out=self.out / label, overwrite=True, progress=self.progress)
        self.runs.append(result.dir)
        return result


@dataclass(frozen=True)
class Recipe:
    """A registered recipe: its name, the paper's figure it reproduces, the claim, and
    ``fn(ctx)``, which returns a :class:`~groklab.recipes.protocol.Design` (or, the older form
    that runs and judges by itself, a :class:`Verdict`)."""

    name: str
    paper: str
    claim: str
    fn: Callable[[RecipeContext], Any]

    @property
    def summary(self) -> str:
        """``[paper] claim``, the line ``groklab reproduce --list`` prints."""
        return _summary(self.paper, self.claim)


def _summary(paper: str, claim: str) -> str:
    return f"[{paper}] {claim}"


RECIPES: dict[str, Recipe] = {}


def recipe(name: str, paper: Optional[str] = None,
           claim: Optional[str] = None) -> Callable[[Callable[[RecipeContext], Any]], Callable]:
    """Decorator registering ``fn(ctx) -> Design`` (see :class:`Recipe`) as recipe ``name``.

    The paper and claim come from the recipe's card (:mod:`groklab.recipes.cards`); a recipe
    outside this package passes them here instead."""

    def add(fn: Callable[[RecipeContext], Any]) -> Callable[[RecipeContext], Any]:
        text = (paper, claim)
        if None in text:
            from groklab.recipes.cards import card

            c = card(name)
            text = (paper or c.paper, claim or c.claim)
        RECIPES[name] = Recipe(name, *text, fn)
        return fn

    return add


def _load_all() -> None:
    # Importing every module of this package registers its recipes.
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def list_recipes() -> dict[str, str]:
    """``{name: "[paper] claim"}`` for every recipe, sorted by name: the package's from their
    cards (no module is imported), and any registered from outside."""
    from groklab.recipes.cards import cards

    listed = {name: _summary(c.paper, c.claim) for name, c in cards().items()}
    listed.update({name: r.summary for name, r in RECIPES.items()})
    return dict(sorted(listed.items()))


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _figure_for(design, results, control, name: str, claim: str):
    from groklab.report.figures import bands_figure

    if design.figure is not None:
        return design.figure(results, control)
    return bands_figure(results, control, title=name)


def _size_dir(out: Path, control: bool) -> Path:
    return out / "control" if control else out


def _run_design(entry: "Recipe", design, ctx: "RecipeContext", overrides: Sequence[str], seeds: Optional[Sequence[int]],
                jobs: int, reuse: bool = False, pack: int = 1) -> tuple[dict[str, Any], Figure]:
    """Run a :class:`~groklab.recipes.protocol.Design` (treatment, then control), judge it and
    return (verdict fields, figure)."""
    from groklab.recipes.protocol import code_version, judge_design, results_from_runs, run_all

    seeds = list(seeds) if seeds else list(design.seeds)
    run_control = design.control is not None and (not ctx.quick or design.control.run_quick)
    sets = tuple(overrides)
    plan = []  # (config, out, runner) per (condition, arm, seed)
    conditions = [False, True] if run_control else [False]
    arms_of = {False: list(design.arms), True: design.control.arms_of(design.arms) if run_control else []}
    if run_control:
        design.control.check_applies([arm.config.override(*sets) for arm in arms_of[True]])
    for is_control in conditions:
        for arm in arms_of[is_control]:
            config = arm.config.override(*sets)
            config = design.control.apply(config) if is_control else config
            for s in seeds:
                plan.append((config.override(f"seed={s}"), _size_dir(ctx.out, is_control) / f"{arm.key}-seed{s}",
                             arm.runner))
    runs, reused = run_all(plan, workers=max(1, jobs), progress=ctx.progress, description=entry.name, reuse=reuse,
                           pack=pack)
    ctx.runs.extend(r.dir for r in runs)
    tables, start = [], 0
    for is_control in conditions:
        arms = arms_of[is_control]
        chunk = runs[start:start + len(arms) * len(seeds)]
        start += len(chunk)
        by_arm = {arm.key: chunk[i * len(seeds):(i + 1) * len(seeds)] for i, arm in enumerate(arms)}
        tables.append(results_from_runs(arms, seeds, by_arm, design.measure))
    results, control = tables[0], (tables[1] if run_control else None)
    judged = judge_design(design, results, control)
    notes = [f"size: {design.size}", f"seeds: {seeds}"]
    if sets:
        notes.append(f"overrides applied to every arm: {' '.join(sets)}")
    notes.append("verdict: supported only if every criterion holds for the treatment"
                 + (" and not all of them hold for the control." if design.control else "."))
    notes.append(f"would have been false if: {design.falsifier}")
    if design.control is not None:
        ctl = judged["control"]
        state = ("not run at the quick size (documented only)" if not ctl["ran"]
                 else "effect absent, as the paper says" if not ctl["holds"] else "effect ALSO present")
        subset = (f", on {len(arms_of[True])} of the {len(design.arms)} arms" if run_control
                  and len(arms_of[True]) < len(design.arms) else "")
        notes.append(f"control ({' '.join(design.control.overrides)}{subset}): {state}. {design.control.why}")
    else:
        notes.append("control: none (the claim names no setting in which the effect is absent).")
    if design.notes:
        notes.append(design.notes)
    fields = {
        **judged,
        "measured": results.flat(),
        "per_seed": results.per_seed(),
        "control_measured": control.flat() if control else {},
        "seeds": seeds,
        "arms": {a.key: a.label for a in design.arms},
        "overrides": list(sets),
        "size": design.size + (f"; the values above overridden by --set {' '.join(sets)}" if sets else ""),
        "notes": " ".join(notes),
        "commit": code_version(),
        "reused_runs": reused,  # finished runs read back (--reuse) rather than trained in this call
        "pack": pack,  # up to this many compatible runs trained as one ensemble
    }
    return fields, _figure_for(design, results, control, entry.name, entry.claim)


def reproduce(name: str, out: Optional[Union[str, Path]] = None, quick: bool = False, overwrite: bool = False,
              progress: bool = True, overrides: Sequence[str] = (), seeds: Optional[Sequence[int]] = None,
              jobs: int = 1, reuse: bool = False, pack: int = 1) -> dict[str, Any]:
    """Run recipe ``name``; write ``<out>/<name>.png`` and ``<out>/verdict.json``; return the verdict.

    ``overrides`` (``key=value``) apply to every run of the recipe, treatment and control, so a
    variant is one command; ``seeds`` replaces the recipe's seeds; ``jobs`` trains that many
    runs at once in worker processes (one torch thread each); ``reuse`` reads run directories
    under ``out`` that already hold a finished run of the same config instead of retraining
    (restart after a kill, or judge old runs with the current code); ``pack`` trains up to that
    many runs that differ only in seed, lr, weight decay, init scale or alpha as one ensemble
    (:mod:`groklab.training.ensemble`: the same numbers within float tolerance, faster for small
    full-batch models)."""
    _load_all()
    if name not in RECIPES:
        raise GroklabError(f"unknown recipe '{name}'; see 'groklab reproduce --list' ({', '.join(sorted(RECIPES))})")
    entry = RECIPES[name]
    out = Path(out or Path("runs") / "reproduce" / (name + ("-quick" if quick else "")))
    if out.is_dir() and (out / "verdict.json").is_file() and not (overwrite or reuse):
        raise GroklabError(f"{out} already holds a verdict; pass --overwrite or choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / "verdict.json").is_file() and not (overwrite or reuse):
        from groklab.store.rundir import prepare_run_dir

        prepare_run_dir(out, overwrite=False)  # raises the usual "already exists" error
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ctx = RecipeContext(out, quick, progress)
    made = entry.fn(ctx)
    if isinstance(made, Verdict):  # a recipe that has not moved to the protocol yet
        if overrides or seeds:
            raise GroklabError(f"recipe '{name}' does not take --set or --seeds yet")
        fields, figure = {"measured": made.measured, "supported": bool(made.supported), "notes": made.notes}, made.figure
    else:
        fields, figure = _run_design(entry, made, ctx, overrides, seeds, jobs, reuse, pack)
    figure_path = out / f"{name}.png"
    figure.savefig(figure_path, dpi=110, bbox_inches="tight")
    document = {
        "recipe": name,
        "paper": entry.paper,
        "claim": entry.claim,
        "supported": bool(fields.pop("supported")),
        "measured": {k: _json_number(v) for k, v in fields.pop("measured").items()},
        **{k: _json_clean(v) for k, v in fields.items()},
        "quick": quick,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "figure": figure_path.name,
    }
    (out / "verdict.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def _json_clean(value: Any) -> Any:
    """Non-finite floats become None (JSON has no inf/NaN), recursively."""
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    return _json_number(value)
