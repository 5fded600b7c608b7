"""groklab: run grokking experiments, measure what happens inside, predict and control it.

Public API::

    import groklab
    run = groklab.run("mlp-add")                      # or a Config, or a dict
    run = groklab.run(groklab.load_preset("gd-mse").override("optim.lr=50"))
    again = groklab.load(run.dir)                     # config, metrics DataFrame, summary
    table = groklab.runs("runs/")                     # one row per run under a root, config flattened
    groklab.sweep(groklab.load_preset("poly"), {"model.alpha": [0.5, 1, 2], "seed": [0, 1]}, "runs/alpha")

The public names load on first use (PEP 562): ``import groklab`` does not import PyTorch, pandas
or matplotlib, so the command line's light commands (``--help``, ``presets``) answer at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from groklab import config as _config

__version__ = "0.1.0"

# public name -> (module, attribute in it)
_PUBLIC: dict[str, tuple[str, str]] = {
    "Run": ("groklab.api", "Run"),
    "run": ("groklab.api", "run"),
    "resume": ("groklab.api", "resume"),
    "load": ("groklab.api", "load"),
    "Config": ("groklab.config", "Config"),
    "TaskConfig": ("groklab.config", "TaskConfig"),
    "ModelConfig": ("groklab.config", "ModelConfig"),
    "OptimConfig": ("groklab.config", "OptimConfig"),
    "TrainConfig": ("groklab.config", "TrainConfig"),
    "EvalConfig": ("groklab.config", "EvalConfig"),
    "apply_overrides": ("groklab.config", "apply_overrides"),
    "GroklabError": ("groklab.errors", "GroklabError"),
    "DEFAULT_PRESET": ("groklab.presets", "DEFAULT_PRESET"),
    "list_presets": ("groklab.presets", "list_presets"),
    "load_preset": ("groklab.presets", "load_preset"),
    "runs": ("groklab.store.index", "runs"),
    "query_runs": ("groklab.store.index", "query"),
    "sweep": ("groklab.sweeps", "sweep"),
}

__all__ = list(_PUBLIC)


def _load_builtins() -> None:
    # The built-in tasks, models, metrics and interventions register themselves when their
    # modules are imported, and the API imports them all.
    importlib.import_module("groklab.api")


_config.set_builtins_loader(_load_builtins)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'groklab' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # what a type checker and an IDE see
    from groklab.api import Run, load, resume, run
    from groklab.config import Config, EvalConfig, ModelConfig, OptimConfig, TaskConfig, TrainConfig, apply_overrides
    from groklab.errors import GroklabError
    from groklab.presets import DEFAULT_PRESET, list_presets, load_preset
    from groklab.store.index import query as query_runs
    from groklab.store.index import runs
    from groklab.sweeps import sweep
