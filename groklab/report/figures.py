"""Figures of several runs: curves against step, steps to a target per setting, and the seed
bands of a recipe's arms (median line, range band, control dashed). The recipes draw with these;
:mod:`groklab.report.curves` draws one run, :mod:`groklab.report.sweeps` a sweep."""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from groklab.analysis.grokking import median_censored

__all__ = ["curves_figure", "steps_figure", "bands_figure", "words", "WORDS"]


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
        med = median_censored(values)
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


# Axis names in words for the columns recipes plot (anything else: underscores become spaces).
WORDS = {
    "step": "training step",
    "train_acc": "train accuracy", "test_acc": "test accuracy",
    "train_loss": "train loss", "test_loss": "test loss",
    "weight_norm": "weight norm |theta|",
    "sharpness": "sharpness (Hessian trace)",
    "matrix_info.pe": "perturbed entropy PE", "matrix_info.pmi": "perturbed mutual information PMI",
    "matrix_info.mid": "MI difference MID", "matrix_info.ed": "entropy difference ED",
    "group_laws.abelian_acc": "a+b vs b+a agreement", "group_laws.abelian_logit_dist": "a+b vs b+a logit distance",
    "group_laws.abelian_embed_dist": "a+b vs b+a embedding distance",
    "group_laws.doubling_acc": "doubling x+x=2x accuracy", "group_laws.zero_identity_acc": "zero identity accuracy",
    "group_laws.associativity_acc": "associativity accuracy",
    "toy.M_top_align": "top eigenvector of M . beta", "lazy.param_change": "|theta - theta0| / |theta0|",
    "toy.loss_scale": "scale term", "toy.loss_misalign": "misalignment term", "toy.loss_linear": "linear-mode term",
    "align.cka": "centred CKA of NTK with labels",
    "lin.train_loss": "train loss of the linearised copy", "lin.test_loss": "test loss of the linearised copy",
    "train_mse_acc": "train share with MSE < 1e-3", "test_mse_acc": "test share with MSE < 1e-3",
}


def words(column: str) -> str:
    """How a figure names ``column``."""
    return WORDS.get(column, column.replace("_", " "))


def _seed_table(runs: Sequence, column: str):
    """(steps, values[seed, step]) on the union of the seeds' evaluation steps (NaN where a seed
    has no value, e.g. after it stopped early)."""
    import numpy as np

    frames = [r.metrics.dropna(subset=[column]) for r in runs]
    steps = sorted(set().union(*(f["step"].tolist() for f in frames)))
    table = np.full((len(frames), len(steps)), np.nan)
    where = {s: i for i, s in enumerate(steps)}
    for k, f in enumerate(frames):
        for s, v in zip(f["step"], f[column]):
            table[k, where[s]] = v
    return np.asarray(steps), table


def _median_time(runs: Sequence, key: str):
    values = [r.summary.get(key) for r in runs]
    return median_censored(values)


LONG_LEGEND = 45  # characters: a longer entry puts the legend under the panels, off the curves
MANY_ENTRIES = 10  # more legend entries than this also go under the panels (they would cover the first)


def bands_figure(results, control=None, columns: Optional[Sequence[str]] = None, title: str = "",
                 log_y: Sequence[str] = ("train_loss", "test_loss", "sharpness"),
                 control_suffix: Optional[Callable] = None) -> Figure:
    """One panel per column, one colour per arm: the median over seeds as a line and the
    range over seeds as a band (every seed drawn when there are two); the control's arms
    dashed, labelled with ``control_suffix(arm)`` (default `` (control)``). Vertical dotted
    lines mark each arm's median fit (train) and grok (test) step: accuracy thresholds where
    the runs have accuracies, loss thresholds otherwise. Long legend entries go under the panels."""
    import numpy as np

    first = next(iter(results.runs.values()))[0]
    regression = first.metrics["train_acc"].isna().all()
    if columns is None:
        columns = ["train_loss", "test_loss"] if regression else ["train_acc", "test_acc", "test_loss"]
    fig, axes = plt.subplots(1, len(columns), figsize=(4.8 * len(columns), 3.9), squeeze=False)
    times = ("t_train_loss", "t_test_loss") if regression else ("t_train_acc", "t_test_acc")
    suffix_of = control_suffix or (lambda arm: " (control)")
    groups = [(results, "-", lambda arm: "")] + ([(control, "--", suffix_of)] if control is not None else [])
    for ax, column in zip(axes[0], columns):
        for results_, style, suffix in groups:
            for i, arm in enumerate(results_.arms):
                runs = results_.runs[arm.key]
                if column not in runs[0].metrics:
                    continue
                steps, table = _seed_table(runs, column)
                x = np.maximum(steps, 1)
                with np.errstate(all="ignore"):
                    med = np.nanmedian(table, axis=0)
                colour = f"C{i}"
                ax.plot(x, med, style, color=colour, label=f"{arm.label}{suffix(arm)}", lw=1.6)
                if len(runs) > 1:
                    ax.fill_between(x, np.nanmin(table, axis=0), np.nanmax(table, axis=0), color=colour, alpha=0.15,
                                    lw=0)
                if style == "-":
                    for key, mark in zip(times, (":", "-.")):
                        t = _median_time(runs, key)
                        if t is not None and column == columns[0]:
                            ax.axvline(max(t, 1), color=colour, ls=mark, lw=0.9, alpha=0.8)
        ax.set(xscale="log", xlabel=words("step") + " (step 0 drawn at 1)", ylabel=words(column),
               yscale="log" if column in log_y else "linear")
        ax.grid(alpha=0.3)
    mark_text = "fit" if not regression else "train loss 0.1x"
    axes[0][0].set_title(f"dotted: median {mark_text} step; dash-dot: median "
                         f"{'grok' if not regression else 'test loss 0.1x'} step", fontsize=8)
    n = len(results.seeds)
    fig.suptitle(f"{title} ({n} seed{'s' if n > 1 else ''}: median line, range band)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    longest = max(map(len, labels), default=0)
    if longest > LONG_LEGEND or len(labels) > MANY_ENTRIES:
        ncol = 1 if longest > 2 * LONG_LEGEND else 2 if longest > LONG_LEGEND else 4
        legend_inches = 0.1 + 0.16 * math.ceil(len(labels) / ncol)  # rows of 7-point text
        width, height = fig.get_size_inches()
        fig.set_size_inches(width, height + legend_inches)  # the panels keep their size
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, legend_inches / (height + legend_inches), 1, 1))
    else:
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
    return fig

