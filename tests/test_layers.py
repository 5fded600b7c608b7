"""Imports point down only: a module may import its own layer or the layers below it.

The layers, from the bottom (DESIGN.md; the README's layout section draws them):

 0 errors                       5 scheduled-metric adapters, interventions
 1 config (schemas only)        6 store (run directories, checkpoints, index)
 2 leaf helpers: seeding,       7 training (the loop)
   objective, optim, presets    8 analysis, theory, report
 3 tasks, models (and the       9 experiment (one config -> one run directory)
   model protocol)             10 sweeps
 4 pure metrics                11 recipes
                               12 api, cli, the package itself

Every import counts, also one inside a function (an import put late to dodge a cycle is still
a dependency). The test reads the source with ``ast``, so it sees the code as written.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import groklab

PACKAGE = Path(groklab.__file__).parent

LAYER_OF = {
    "groklab.errors": 0,
    "groklab.config": 1,
    "groklab.seeding": 2,
    "groklab.objective": 2,
    "groklab.optim": 2,
    "groklab.presets": 2,
    "groklab.tasks": 3,
    "groklab.models": 3,
    # pure metrics: functions of tensors and models
    "groklab.metrics.geometry": 4,
    "groklab.metrics.group_laws": 4,
    "groklab.metrics.matrix_info": 4,
    "groklab.metrics.ntk": 4,
    "groklab.metrics.toy_model": 4,
    # the rest of metrics (registry and the registered metrics) adapts them to the loop
    "groklab.metrics": 5,
    "groklab.interventions": 5,
    "groklab.store": 6,
    "groklab.training": 7,
    "groklab.analysis": 8,
    "groklab.theory": 8,
    "groklab.report": 8,
    "groklab.experiment": 9,
    "groklab.sweeps": 10,
    "groklab.recipes": 11,
    "groklab.api": 12,
    "groklab.cli": 12,
    "groklab": 12,
}


def layer(module: str) -> int:
    """The layer of a dotted module name: its longest prefix in LAYER_OF."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYER_OF:
            return LAYER_OF[prefix]
    raise KeyError(f"{module} is in no layer: add it to LAYER_OF")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every groklab module ``path`` imports; ``from X import Y`` counts as
    ``X.Y`` when that is a module, else ``X``."""
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "groklab"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            if source.split(".")[0] != "groklab":
                continue
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                is_module = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    PACKAGE.parent / candidate.replace(".", "/") / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else source))
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = module_name(path)
        for line, target in imported_modules(path):
            if layer(target) > layer(here):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {here} (layer {layer(here)}) imports "
                                f"{target} (layer {layer(target)})")
    return problems


def test_every_module_imports_only_its_layer_or_below():
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    # the control: a metric importing the trainer must be reported
    assert layer("groklab.training.loop") > layer("groklab.metrics.robustness")
    source = tmp_path / "groklab" / "metrics" / "bad.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from groklab.training.loop import Trainer\n    return Trainer\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "groklab")
    (tmp_path / "groklab" / "training").mkdir()
    (tmp_path / "groklab" / "training" / "loop.py").write_text("")
    problems = upward_imports()
    assert len(problems) == 1 and "groklab.metrics.bad (layer 5) imports groklab.training.loop (layer 7)" in problems[0]


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path))  # raises KeyError naming a module no layer holds
