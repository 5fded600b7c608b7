"""``curves.png``: accuracy, loss and weight norm of one run against (log-scaled) step."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

__all__ = ["plot_curves"]


def plot_curves(metrics: pd.DataFrame, path: Path, title: str = "", times: Optional[dict] = None) -> Path:
    """Draw train/test accuracy, train/test loss and weight norm; mark the grokking times."""
    steps = metrics["step"].clip(lower=1)  # step 0 on a log axis
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    regression = metrics["train_acc"].isna().all()  # regression tasks have no accuracy
    for split, style in (("train", "-"), ("test", "-")):
        axes[0].plot(steps, metrics[f"{split}_acc"].fillna(0.0) if regression else metrics[f"{split}_acc"],
                     style, label=split, alpha=0.0 if regression else 1.0)
        axes[1].plot(steps, metrics[f"{split}_loss"], style, label=split)
    axes[2].plot(steps, metrics["weight_norm"], color="tab:green")
    for key, colour in (("t_train_acc", "tab:blue"), ("t_test_acc", "tab:orange")):
        if times and times.get(key):
            axes[0].axvline(times[key], color=colour, ls=":", lw=1)
    axes[0].set(ylabel="accuracy", ylim=(-0.02, 1.02))
    if regression:
        axes[0].text(0.5, 0.5, "regression: no accuracy", ha="center", va="center", transform=axes[0].transAxes)
    losses = metrics[["train_loss", "test_loss"]].to_numpy(dtype=float)
    drawable = (losses[np.isfinite(losses)] > 0).any()  # a run NaN from step 0 has nothing to log-scale
    axes[1].set(ylabel="loss", yscale="log" if drawable else "linear")
    if not drawable:
        axes[1].text(0.5, 0.5, "loss not finite", ha="center", va="center", transform=axes[1].transAxes)
    if times and times.get("diverged_step") is not None:
        for ax in axes:
            ax.axvline(max(times["diverged_step"], 1), color="tab:red", ls="--", lw=1)
        axes[1].text(0.02, 0.02, f"diverged at step {times['diverged_step']}", color="tab:red",
                     transform=axes[1].transAxes, fontsize=8)
    axes[2].set(ylabel="weight norm |theta|")
    for ax in axes:
        ax.set(xscale="log", xlabel="step (step 0 drawn at 1)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    axes[1].legend()
    fig.suptitle(title)
    # fixed margins: tight_layout draws the figure once more, about 40% of this function's time
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.13, top=0.9, wspace=0.25)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
