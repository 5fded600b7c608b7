"""Grokking times: when a run fit its training set and when it generalised."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import pandas as pd

from groklab.config import EvalConfig

__all__ = ["first_step", "grokking_times", "median_censored"]


def first_step(steps: pd.Series, condition: pd.Series) -> Optional[int]:
    """The first step at which ``condition`` holds, or None if it never does."""
    hits = steps[condition.fillna(False).astype(bool)]
    return int(hits.iloc[0]) if len(hits) else None


def grokking_times(metrics: pd.DataFrame, cfg: EvalConfig = EvalConfig()) -> dict:
    """Grokking times from a metrics table (one row per evaluation, sorted by step).

    ``t_train_acc`` / ``t_test_acc``: first step at which accuracy reaches
    ``cfg.train_acc_threshold`` / ``cfg.test_acc_threshold``. ``t_train_loss`` /
    ``t_test_loss``: first step at which the loss falls to ``cfg.loss_threshold`` times its
    value at the first evaluation. ``grok_delay = t_test - t_train`` and
    ``grok_ratio = t_test / t_train`` (None when either is missing) and ``grokked`` (the test
    time exists) use the accuracy times, or, for a regression task (no accuracy: every
    accuracy NaN), the loss times; ``grok_measure`` says which (``accuracy`` or ``loss``).
    """
    steps = metrics["step"]
    t_train_acc = first_step(steps, metrics["train_acc"] >= cfg.train_acc_threshold)
    t_test_acc = first_step(steps, metrics["test_acc"] >= cfg.test_acc_threshold)
    t_loss = {}
    for split in ("train", "test"):
        loss = metrics[f"{split}_loss"]
        t_loss[split] = first_step(steps, loss <= cfg.loss_threshold * loss.iloc[0]) if len(loss) else None
    regression = bool(len(metrics)) and bool(metrics[["train_acc", "test_acc"]].isna().all().all())
    t_train, t_test = (t_loss["train"], t_loss["test"]) if regression else (t_train_acc, t_test_acc)
    both = t_train is not None and t_test is not None
    return {
        "t_train_acc": t_train_acc,
        "t_test_acc": t_test_acc,
        "t_train_loss": t_loss["train"],
        "t_test_loss": t_loss["test"],
        "grok_delay": t_test - t_train if both else None,
        "grok_ratio": t_test / t_train if both and t_train > 0 else None,
        "grokked": t_test is not None,
        "grok_measure": "loss" if regression else "accuracy",
    }


def median_censored(values: Sequence[Optional[float]]) -> Optional[float]:
    """Median with censored values (None: the run never got there) counted as later than any
    that did; None when the median itself is censored (or there are no values)."""
    ordered = sorted(math.inf if v is None else float(v) for v in values)
    if not ordered:
        return None
    n = len(ordered)
    med = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return None if math.isinf(med) and med > 0 else med
