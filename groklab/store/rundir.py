"""The run directory: the contract other tools read (see ``../shared/DESIGN.md``).

    config.json       the whole resolved config, enough to rerun the experiment exactly
    metrics.parquet   one row per evaluation: step, train_loss, test_loss, train_acc,
                      test_acc, weight_norm, then one column per scheduled metric
    summary.json      final numbers and grokking times
    split.parquet     the seeded train/test split (a, b, label, train)
    checkpoints/      step_XXXXXXXX.safetensors
    curves.png        accuracy, loss and weight norm against step
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from groklab.config import Config
from groklab.errors import GroklabError

__all__ = ["RunDir", "prepare_run_dir", "default_run_dir"]


class RunDir:
    """Paths and readers/writers of one run directory."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    config_file = property(lambda self: self.path / "config.json")
    metrics_file = property(lambda self: self.path / "metrics.parquet")
    summary_file = property(lambda self: self.path / "summary.json")
    split_file = property(lambda self: self.path / "split.parquet")
    checkpoints = property(lambda self: self.path / "checkpoints")
    curves_file = property(lambda self: self.path / "curves.png")

    def write_config(self, config: Config) -> None:
        """Write ``config.json`` (the whole resolved config)."""
        self.config_file.write_text(config.to_json() + "\n")

    def read_config(self) -> Config:
        """The run's config; a GroklabError when this is not a run directory."""
        if not self.config_file.is_file():
            raise GroklabError(f"{self.path} is not a groklab run directory (no config.json)")
        return Config.from_json(self.config_file.read_text())

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        """Replace ``metrics.parquet`` with ``rows`` (one per evaluation), atomically: a reader
        never sees half a file."""
        frame = pd.DataFrame(rows)
        tmp = self.metrics_file.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(self.metrics_file)

    def read_metrics(self) -> pd.DataFrame:
        """``metrics.parquet`` as a DataFrame; a GroklabError when it is missing or damaged."""
        if not self.metrics_file.is_file():
            raise GroklabError(f"{self.path} has no metrics.parquet")
        try:
            frame = pd.read_parquet(self.metrics_file)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise GroklabError(f"{self.metrics_file} is damaged or not a Parquet file ({type(e).__name__})") from None
        if "step" not in frame.columns:
            raise GroklabError(f"{self.metrics_file} has no 'step' column: not a groklab metrics file")
        return frame

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``; non-finite numbers become null."""
        # JSON has no NaN: write null, as readers of the contract expect.
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in summary.items()}
        self.summary_file.write_text(json.dumps(clean, indent=2) + "\n")

    def read_summary(self) -> dict[str, Any]:
        if not self.summary_file.is_file():
            raise GroklabError(f"{self.path} has no summary.json (the run did not finish; resume it with --resume)")
        try:
            summary = json.loads(self.summary_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise GroklabError(f"{self.summary_file} is damaged: not valid JSON ({type(e).__name__})") from None
        if not isinstance(summary, dict) or "steps" not in summary:
            raise GroklabError(f"{self.summary_file} is not a groklab summary (no 'steps')")
        return summary


def default_run_dir(name: str, root: Path | str = "runs") -> Path:
    """A fresh directory name ``runs/<name>-<YYYYmmdd-HHMMSS>`` that does not exist yet."""
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    return path


def prepare_run_dir(path: Path | str, overwrite: bool) -> RunDir:
    """Create an empty run directory at ``path``.

    An existing non-empty directory is an error unless ``overwrite`` is set, and even then
    only a groklab run directory (one with config.json) is cleared: never anything else.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise GroklabError(f"--out {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise GroklabError(f"run directory {path} already exists; pass --overwrite to replace it or choose another --out")
        if not (path / "config.json").is_file():
            raise GroklabError(f"refusing to overwrite {path}: it is not empty and not a groklab run directory")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return RunDir(path)
