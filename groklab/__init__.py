"""groklab: run grokking experiments, measure what happens inside, predict and control it.

Public API::

    import groklab
    run = groklab.run("mlp-add")                      # or a Config, or a dict
    run = groklab.run(groklab.load_preset("gd-mse").override("optim.lr=50"))
    again = groklab.load(run.dir)                     # config, metrics DataFrame, summary
    table = groklab.runs("runs/")                     # one row per run under a root, config flattened
    groklab.sweep(groklab.load_preset("poly"), {"model.alpha": [0.5, 1, 2], "seed": [0, 1]}, "runs/alpha")
"""

from groklab.api import Run, load, resume, run
from groklab.config import Config, EvalConfig, ModelConfig, OptimConfig, TaskConfig, TrainConfig, apply_overrides
from groklab.errors import GroklabError
from groklab.presets import DEFAULT_PRESET, list_presets, load_preset
from groklab.store.index import query as query_runs
from groklab.store.index import runs
from groklab.sweeps import sweep

__version__ = "0.1.0"

__all__ = [
    "Run",
    "run",
    "resume",
    "load",
    "Config",
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "apply_overrides",
    "GroklabError",
    "DEFAULT_PRESET",
    "list_presets",
    "load_preset",
    "runs",
    "query_runs",
    "sweep",
]
