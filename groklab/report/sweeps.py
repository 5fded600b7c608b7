"""Figures of a sweep: a phase diagram over two grid keys and seed-averaged curves per value."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from groklab.analysis.grokking import median_censored
from groklab.errors import GroklabError

__all__ = ["phase_figure", "curves_by_figure"]


def _column(table: pd.DataFrame, key: str, what: str) -> pd.Series:
    if key not in table.columns:
        known = ", ".join(c for c in table.columns if "." in c or c.startswith("t_") or c == "seed")
        raise GroklabError(f"{what} '{key}' is not a column of these runs; some that are: {known}")
    return table[key]


def _saved(fig: plt.Figure, out: Union[str, Path]) -> Path:
    """Lay ``fig`` out, write it to ``out`` (format from the suffix), close it."""
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def phase_figure(table: pd.DataFrame, x: str, y: str, value: str, out: Union[str, Path], title: str = "") -> Path:
    """Heat map of ``value`` over the ``x`` and ``y`` grid keys, the median over the runs that
    share a cell (other keys, e.g. seeds). A run whose ``value`` is null never got there: it
    counts as later than all in the median, and a cell whose median is such a run is drawn
    hatched and labelled 'never' (censored), not coloured as a large number."""
    xs, ys, vs = _column(table, x, "--x"), _column(table, y, "--y"), _column(table, value, "--value")
    x_vals, y_vals = sorted(xs.unique()), sorted(ys.unique())
    grid = np.full((len(y_vals), len(x_vals)), np.nan)
    censored = np.zeros_like(grid, dtype=bool)
    counts = np.zeros_like(grid, dtype=int)
    for (xv, yv), cell in pd.DataFrame({"x": xs, "y": ys, "v": vs}).groupby(["x", "y"]):
        values = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in cell["v"]]
        med = median_censored(values)
        i, j = y_vals.index(yv), x_vals.index(xv)
        counts[i, j] = len(values)
        if med is None:
            censored[i, j] = True
        else:
            grid[i, j] = med
    fig, ax = plt.subplots(figsize=(max(6.0, 3.0 + 0.7 * len(x_vals)), max(3.5, 2.0 + 0.55 * len(y_vals))))
    image = ax.imshow(np.ma.masked_invalid(grid), origin="lower", cmap="viridis", aspect="auto")
    for i, j in zip(*np.nonzero(censored)):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="grey", lw=0))
        ax.text(j, i, "never", ha="center", va="center", fontsize=7, color="dimgrey")
    ax.set_xticks(range(len(x_vals)), [f"{v:g}" if isinstance(v, float) else str(v) for v in x_vals], rotation=45)
    ax.set_yticks(range(len(y_vals)), [f"{v:g}" if isinstance(v, float) else str(v) for v in y_vals])
    ax.set(xlabel=x, ylabel=y)
    fig.colorbar(image, ax=ax, label=f"{value} (median over {int(counts.max())} runs per cell)")
    ax.set_title(title or f"{value} over {x} and {y}\n(hatched 'never': the median run never got there)", fontsize=9)
    return _saved(fig, out)


def curves_by_figure(table: pd.DataFrame, metrics: dict[str, pd.DataFrame], by: str, column: str,
                     out: Union[str, Path], log_y: Optional[bool] = None) -> Path:
    """``column`` against log step, one colour per value of the grid key ``by``: the median over
    the runs sharing that value (seeds, other keys) and their range as a band."""
    groups = _column(table, by, "--by")
    values = [metrics[d][column] for d in table["dir"] if column in metrics[d]]
    if values and not any(np.isfinite(v.to_numpy(dtype=float)).any() for v in values):
        raise GroklabError(f"metrics column '{column}' holds no finite value in these runs (a regression task has no "
                           "accuracy: try --column test_loss)")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for k, value in enumerate(sorted(groups.unique())):
        dirs = table.loc[groups == value, "dir"]
        frames = [metrics[d].set_index("step")[column] for d in dirs if column in metrics[d]]
        if not frames:
            raise GroklabError(f"no run has a metrics column '{column}'")
        joined = pd.concat(frames, axis=1).sort_index()
        steps = np.maximum(joined.index.to_numpy(), 1)
        ax.plot(steps, joined.median(axis=1), color=f"C{k}", label=f"{by}={value:g}" if isinstance(value, float)
                else f"{by}={value}")
        if joined.shape[1] > 1:
            ax.fill_between(steps, joined.min(axis=1), joined.max(axis=1), color=f"C{k}", alpha=0.15, lw=0)
    if log_y is None:
        log_y = "loss" in column
    ax.set(xscale="log", yscale="log" if log_y else "linear", xlabel="training step (step 0 drawn at 1)",
           ylabel=column.replace("_", " "), title=f"{column} by {by}: median over runs, range band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _saved(fig, out)
