"""Figure helpers shared by recipes: curves of several runs against step."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["curves_figure", "steps_figure", "median_censored"]


def curves_figure(runs: Sequence, labels: Sequence[str], columns: Sequence[str], title: str,
                  log_y: Sequence[str] = ("train_loss", "test_loss"), axes: Optional[Sequence[Axes]] = None) -> Figure:
    """One panel per metric column, one line per run, steps on a log axis; into ``axes`` (one per
    column) of an existing figure when given."""
    if axes is None:
        fig, grid = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.8), squeeze=False)
        axes = list(grid[0])
    else:
        fig = axes[0].figure
    for ax, column in zip(axes, columns):
        for run, label in zip(runs, labels):
            m = run.metrics.dropna(subset=[column])  # scheduled metrics: only on their own steps
            ax.plot(m["step"].clip(lower=1), m[column], label=label)
        ax.set(xscale="log", xlabel="step", ylabel=column, yscale="log" if column in log_y else "linear")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def steps_figure(steps: dict, budget: int, title: str, table: bool = True, ax: Optional[Axes] = None) -> Figure:
    """Steps to a target per configuration: one dot per seed (runs that never reached it drawn
    at ``budget`` as open markers), the median as a bar, and optionally a table of the numbers.
    ``steps`` maps a label to a list of steps (None = not reached within ``budget``). Given
    ``ax``, draws into it (without the table) and returns its figure."""
    labels = list(steps)
    n = len(labels)
    if ax is not None:
        fig, table = ax.figure, False
    elif table:
        fig, (ax, tab) = plt.subplots(2, 1, figsize=(max(6.0, 1.4 * n + 2), 4.6 + 0.3 * n),
                                      gridspec_kw={"height_ratios": [3.2, 0.9 + 0.3 * n]})
        tab.axis("off")
    else:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * n + 2), 4.2))
    rows = []
    for i, label in enumerate(labels):
        values = steps[label]
        reached = [v for v in values if v is not None]
        med = median_censored(values, budget)
        ax.bar(i, med if med is not None else budget, color="C0", alpha=0.3)
        ax.scatter([i] * len(reached), reached, color="C0", zorder=3)
        missed = len(values) - len(reached)
        if missed:
            ax.scatter([i] * missed, [budget] * missed, facecolors="none", edgecolors="C3", zorder=3)
        rows.append([label, ", ".join("-" if v is None else str(v) for v in values),
                     "> budget" if med is None else f"{med:.0f}"])
    ax.axhline(budget, color="C3", ls=":", lw=1, label=f"budget {budget} steps")
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set(ylabel="steps to target test acc")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title)
    if table:
        tab.table(cellText=rows, colLabels=["config", "steps per seed", "median"], loc="center", cellLoc="left")
    fig.tight_layout()
    return fig


def median_censored(values: Sequence, budget: int):
    """Median with runs that never reached the target counted as later than any that did;
    None when the median itself is such a run."""
    ordered = sorted(float("inf") if v is None else float(v) for v in values)
    if not ordered:
        return None
    n = len(ordered)
    med = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return None if med == float("inf") else med
