"""Hand-made runs for unit-testing recipe checks: anything with ``metrics``, ``summary`` and
``config``, as :func:`groklab.recipes.protocol.results_from_runs` expects."""

from types import SimpleNamespace
from typing import Optional

import pandas as pd

from groklab.analysis.grokking import grokking_times


def fake_run(metrics: Optional[dict] = None, summary: Optional[dict] = None, config=None):
    """A run whose metrics table is ``metrics`` (columns -> lists) and whose summary is the
    grokking times of that table (accuracy and loss thresholds as groklab's defaults), updated
    with ``summary``."""
    table = pd.DataFrame(metrics or {})
    base = {}
    if {"step", "train_acc", "test_acc", "train_loss", "test_loss"} <= set(table.columns):
        base = grokking_times(table)
        base.update({k: float(table[k].iloc[-1]) for k in ("train_acc", "test_acc", "train_loss", "test_loss")})
    base.update(summary or {})
    return SimpleNamespace(metrics=table, summary=base, config=config, dir=None)


def curve(steps, **columns):
    """``{"step": steps, **columns}`` with every column filled to the length of ``steps``:
    scalars repeat, lists must match."""
    out = {"step": list(steps)}
    for k, v in columns.items():
        out[k] = list(v) if isinstance(v, (list, tuple)) else [v] * len(out["step"])
    return out
