"""One experiment: train a config into a run directory (:func:`run`), continue it (:func:`resume`),
read it back (:func:`load`).

The layer that ties the loop, the run directory, the analysis of grokking times and the curves
plot together; sweeps and recipes build on it, and :mod:`groklab.api` (``groklab.run``,
``groklab.load``) exposes it to users.
"""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import pandas as pd
import torch

from groklab.analysis.grokking import grokking_times
from groklab.config import Config, config_from_dict
from groklab.errors import GroklabError
from groklab.metrics.registry import check_metric_names
from groklab.presets import load_preset
from groklab.report.curves import plot_curves
from groklab.store.rundir import RunDir, default_run_dir, prepare_run_dir
from groklab.training.ensemble import Ensemble
from groklab.training.loop import Trainer

__all__ = ["Run", "run", "run_ensemble", "resume", "load", "as_config", "finish"]


@dataclass(frozen=True)
class Run:
    """A finished run as stored on disk: its directory, config, metrics table and summary."""

    dir: Path
    config: Config
    metrics: pd.DataFrame
    summary: dict[str, Any]

    @property
    def curves(self) -> Path:
        """Path of the run's ``curves.png``."""
        return self.dir / "curves.png"


def as_config(config: Union[Config, dict, str, None]) -> Config:
    """Accept a :class:`Config`, a (partial) config dict, a preset name, or None (the default preset)."""
    if config is None or isinstance(config, str):
        return load_preset(*([config] if config else []))
    if isinstance(config, dict):
        return config_from_dict(config)
    if isinstance(config, Config):
        return config
    raise GroklabError(f"expected a Config, dict or preset name, got {type(config).__name__}")


def run(
    config: Union[Config, dict, str, None] = None,
    out: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Run:
    """Train one experiment and write its run directory; returns the :class:`Run`.

    ``out`` defaults to a fresh ``runs/<name>-<timestamp>``. An existing non-empty ``out``
    is an error unless ``overwrite`` (and then only if it is a groklab run directory).
    """
    config = as_config(config)
    target = Path(out or default_run_dir(config.name))
    fresh = not target.exists()
    try:
        trainer = _trainer(config, target, overwrite)
        _write_start(trainer)  # only once the run can start
    except BaseException:
        if fresh:  # a run that never started leaves nothing behind to block the corrected command
            shutil.rmtree(target, ignore_errors=True)
        raise
    return finish(trainer, trainer.fit(progress))


def run_ensemble(
    configs: Sequence[Union[Config, dict, str]],
    outs: Sequence[Union[str, Path]],
    overwrite: bool = False,
    progress: bool = True,
) -> list[Run]:
    """Train ``configs`` as one batched model (:class:`~groklab.training.ensemble.Ensemble`):
    they may differ only in seed, learning rate, weight decay, ``model.init_scale`` and
    ``model.alpha``. Each member gets its own run directory ``outs[k]``, laid out as
    :func:`run` writes it, with the same metrics as a solo run of its config (within float
    tolerance); ``wall_seconds`` in each summary is the ensemble's."""
    configs = [as_config(c) for c in configs]
    if len(configs) != len(outs):
        raise GroklabError(f"{len(configs)} configs but {len(outs)} output directories")
    if len({str(Path(o).resolve()) for o in outs}) != len(outs):
        raise GroklabError("ensemble members need distinct output directories")
    trainers, made = [], []
    try:
        for config, out in zip(configs, outs):
            target = Path(out)
            if not target.exists():
                made.append(target)
            trainers.append(_trainer(config, target, overwrite))
        ensemble = Ensemble(trainers)  # refuses members that differ in more than it batches
        for trainer in trainers:  # only once every member can start
            _write_start(trainer)
    except BaseException:
        for target in made:  # members that never started leave nothing behind
            shutil.rmtree(target, ignore_errors=True)
        raise
    outcomes = ensemble.fit(progress)
    return [finish(trainer, outcome) for trainer, outcome in zip(trainers, outcomes)]


def resume(directory: Union[str, Path], progress: bool = True, steps: Optional[int] = None,
           checkpoint: Optional[int] = None) -> Run:
    """Continue a killed run from its newest checkpoint (or the one of step ``checkpoint``) to
    the metrics an uninterrupted run would have produced (exactly so on CPU). ``steps``
    extends a finished run; it may not be below the steps already done. Everything is
    checked before anything in the directory changes."""
    run_dir = RunDir(directory)
    if not run_dir.path.is_dir():
        raise GroklabError(f"cannot resume {run_dir.path}: no such directory")
    config = run_dir.read_config()
    if steps is not None:
        config = config.override(f"train.steps={steps}")
    check_metric_names(config.eval.metrics)
    trainer = Trainer.create(config, run_dir)
    trainer.restore(checkpoint)
    if steps is not None:
        if steps < trainer.step:
            raise GroklabError(f"train.steps={steps} is below the {trainer.step} steps {run_dir.path} has already "
                               f"done; resume with train.steps >= {trainer.step}")
        run_dir.write_config(config)
    return finish(trainer, trainer.fit(progress))


def load(directory: Union[str, Path]) -> Run:
    """Read a finished run directory back: config, metrics as a DataFrame, summary."""
    run_dir = RunDir(directory)
    return Run(run_dir.path, run_dir.read_config(), run_dir.read_metrics(), run_dir.read_summary())


def _trainer(config: Config, target: Path, overwrite: bool) -> Trainer:
    """The trainer of a run into ``target``: data, model, device, everything that can refuse
    (nothing is written into the directory yet)."""
    check_metric_names(config.eval.metrics)
    return Trainer.create(config, prepare_run_dir(target, overwrite))


def _write_start(trainer: Trainer) -> None:
    """``config.json`` and, for a binary-operation task, ``split.parquet`` (the split is
    otherwise a function of (config, seed))."""
    run_dir, data, table = trainer.run_dir, trainer.data, trainer.data.table
    run_dir.write_config(trainer.config)
    if table is None:
        return
    is_train = torch.zeros(len(table), dtype=torch.bool)
    is_train[data.train_idx] = True
    pd.DataFrame(
        {"a": table.pairs[:, 0].numpy(), "b": table.pairs[:, 1].numpy(), "label": table.labels.numpy(), "train": is_train.numpy()}
    ).to_parquet(run_dir.split_file, index=False)


def finish(trainer: Trainer, outcome: dict[str, Any]) -> Run:
    """Write ``summary.json`` and ``curves.png`` of a trainer that has run (``outcome`` is what
    :meth:`Trainer.fit` returned) and return the :class:`Run`: the end of :func:`run`, for code
    that drives a :class:`Trainer` itself (e.g. a recipe that replaces the labels first)."""
    config, run_dir = trainer.config, trainer.run_dir
    metrics = pd.DataFrame(trainer.rows)
    final = trainer.rows[-1]
    summary = {
        "steps": trainer.step,
        "wall_seconds": round(outcome["wall_seconds"], 3),
        **{k: final[k] for k in ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm")},
        **grokking_times(metrics, config.eval),
        "stopped_early": outcome["stopped_early"],
        # a diverged run is a result (a point of a sweep), not an error: marked, with the step it was seen at
        "diverged": outcome["diverged_step"] is not None,
        "diverged_step": outcome["diverged_step"],
        "task": trainer.data.description,
        "n_train": len(trainer.data.train_y),
        "n_test": len(trainer.data.test_y),
        "n_params": sum(p.numel() for p in trainer.model.parameters()),
        "lr_effective": config.lr,
        "device": str(trainer.device),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    run_dir.write_summary(summary)
    plot_curves(metrics, run_dir.curves_file, title=f"{config.name}: {summary['task']}", times=summary)
    return Run(run_dir.path, config, metrics, run_dir.read_summary())
