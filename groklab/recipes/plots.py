"""Figure helpers shared by recipes: curves of several runs against step."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["curves_figure"]


def curves_figure(runs: Sequence, labels: Sequence[str], columns: Sequence[str], title: str,
                  log_y: Sequence[str] = ("train_loss", "test_loss")) -> Figure:
    """One panel per metric column, one line per run, steps on a log axis."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3.8), squeeze=False)
    for ax, column in zip(axes[0], columns):
        for run, label in zip(runs, labels):
            m = run.metrics
            ax.plot(m["step"].clip(lower=1), m[column], label=label)
        ax.set(xscale="log", xlabel="step", ylabel=column, yscale="log" if column in log_y else "linear")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
