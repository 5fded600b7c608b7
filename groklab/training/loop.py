"""The training loop: step, evaluate on schedule, checkpoint on schedule, stop.

Parts are kept apart so each can be swapped or batched later: the model's parameters and
the optimiser state live in their own objects, :func:`train_step` is one pure-ish function
of (model, optimiser, batch), evaluation is a separate no-grad pass, and checkpointing
flattens the whole state (model, optimiser, schedule, batch order, RNG, interventions) to
safetensors. Interventions hook into :func:`train_step` through the protocol of
:mod:`groklab.interventions.base`; the loop does not know which ones run.
The loop syncs with the host only when it evaluates.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn
from tqdm.auto import tqdm

from groklab.config import Config, TrainConfig
from groklab.errors import GroklabError, RunInterrupted
from groklab.interventions import NO_INTERVENTIONS, Interventions, build_interventions
from groklab.metrics import geometry
from groklab.metrics.registry import MetricContext, compute_metrics, due_metrics
from groklab.models import build_model
from groklab.objective import Objective, accuracy, training_objective
from groklab.optim import build_optimizer, flatten_optimizer_state, unflatten_optimizer_state
from groklab.seeding import derive_seed, generator
from groklab.store.checkpoint import checkpoint_path, latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from groklab.store.rundir import RunDir
from groklab.tasks import TaskData, build_task
from groklab.training.batches import Batches

__all__ = ["Trainer", "Stopping", "resolve_device", "train_step", "evaluate"]

CORE_COLUMNS = ("step", "train_loss", "test_loss", "train_acc", "test_acc", "weight_norm")
# Between checkpoints metrics.parquet is rewritten at most this often, so a live run can be
# inspected (``groklab show``) without paying a Parquet write at every evaluation.
METRICS_FLUSH_SECONDS = 30.0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as torch spells it. A device
    this machine does not have is a :class:`GroklabError`, before anything is allocated."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise GroklabError(f"train.device='{name}' is not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise GroklabError(f"train.device='{name}' but this machine has no CUDA GPU; use auto or cpu")
        if device.index is not None and device.index >= count:
            raise GroklabError(f"train.device='{name}' but this machine has {count} CUDA GPU(s) (cuda:0 .. cuda:{count - 1})")
    elif device.type not in ("cpu", "mps"):
        raise GroklabError(f"train.device='{name}' is not supported here; use auto, cpu, cuda or cuda:N")
    return device


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    interventions: Interventions = NO_INTERVENTIONS,
) -> torch.Tensor:
    """One optimiser update on the batch ``(x, y)``; returns the loss minimised, intervention
    terms included (still on the device).

    Interventions may replace the batch, add loss terms and edit the gradients before the update.
    """
    optimizer.zero_grad(set_to_none=True)
    x, y = interventions.transform_batch(model, x, y)
    logits = model(x)
    loss = objective(logits, y)
    extra = interventions.extra_loss(model, x, y, logits)
    if extra is not None:
        loss = loss + extra
    loss.backward()
    interventions.after_backward(model)
    optimizer.step()
    schedule.step()
    return loss.detach()


# Rows per evaluation chunk by device type. On a CPU a chunk's activations should stay in cache:
# power-xdivy's evaluation (two sets of 4.7k pairs) ran 1.25-1.7x faster in chunks of 2048 than
# whole (benchmarks/profile_power_xdivy.py); a GPU wants few, large launches.
EVAL_CHUNK = {"cpu": 2048}
EVAL_CHUNK_DEFAULT = 16384


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    objective: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    chunk: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy on ``(x, y)``, in chunks of ``chunk`` rows (default by device,
    ``EVAL_CHUNK``) so large test sets fit and CPU activations stay in cache; 0-dim tensors."""
    chunk = chunk or EVAL_CHUNK.get(x.device.type, EVAL_CHUNK_DEFAULT)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(y), chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        logits = model(xb)
        loss_sum += objective(logits, yb) * len(yb)
        correct += accuracy(logits, yb) * len(yb)
    return loss_sum / len(y), correct / len(y)


def weight_norm(model: nn.Module) -> torch.Tensor:
    """l2 norm of all trainable parameters together (0-dim tensor)."""
    return geometry.weight_norm(p.detach() for p in model.parameters())


@dataclass
class Trainer:
    """One run's live state. Build with :meth:`create`, then :meth:`fit`."""

    config: Config
    run_dir: RunDir
    device: torch.device
    data: TaskData
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    batches: Batches
    step: int = 0
    elapsed: float = 0.0  # wall seconds spent in earlier sessions of this run
    rows: list[dict[str, float]] = field(default_factory=list)
    x: dict[str, torch.Tensor] = field(default_factory=dict)  # train/test tensors on the device
    interventions: Interventions = field(default_factory=Interventions)
    _initial_model: Optional[nn.Module] = field(default=None, repr=False)

    @classmethod
    def create(cls, config: Config, run_dir: RunDir) -> "Trainer":
        """A fresh trainer at step 0: the task's data and the model built from ``config`` and its
        seed, on the configured device, with optimiser, schedule, batches and interventions."""
        device = resolve_device(config.train.device)
        data = build_task(config.task, config.seed)
        n_train, batch = len(data.train_y), config.train.batch_size
        if batch is not None and batch > n_train:
            raise GroklabError(f"train.batch_size={batch} exceeds the {n_train} training examples of this task; "
                               f"use train.batch_size=null for full batch or at most {n_train}")
        model = build_model(config.model, data, generator(config.seed, "init")).to(device)
        optimizer, schedule = build_optimizer(config, model)
        x = {
            "train_x": data.train_x.to(device),
            "train_y": data.train_y.to(device),
            "test_x": data.test_x.to(device),
            "test_y": data.test_y.to(device),
        }
        batches = Batches(x["train_x"], x["train_y"], config.train.batch_size, generator(config.seed, "batches", device))
        interventions = build_interventions(config, model, device, data=x)
        return cls(
            config, run_dir, device, data, model, optimizer, schedule, batches, x=x, interventions=interventions
        )

    # ----------------------------------------------------------------- objective
    @functools.cached_property
    def objective(self) -> Objective:
        """The training loss ``loss(logits, labels)`` of ``train.loss`` and ``train.label_scale``."""
        return training_objective(self.config.train.loss, self.config.train.label_scale)

    # ----------------------------------------------------------------- evaluation
    def record(self) -> dict[str, float]:
        """Evaluate at the current step and append the row (one host sync)."""
        self.model.eval()
        train_loss, train_acc = evaluate(self.model, self.x["train_x"], self.x["train_y"], self.objective)
        test_loss, test_acc = evaluate(self.model, self.x["test_x"], self.x["test_y"], self.objective)
        values = torch.stack([train_loss, test_loss, train_acc, test_acc, weight_norm(self.model)]).tolist()
        row = {"step": self.step, **dict(zip(CORE_COLUMNS[1:], values))}
        if self.config.eval.metrics:  # those due at this step (groklab.metrics.registry.due_metrics)
            row.update(compute_metrics(self.config.eval.metrics, self.metric_context()))
        row.update(self.interventions.on_evaluate(row))
        self.model.train()
        self.rows.append(row)
        return row

    def metric_context(self, step: Optional[int] = None) -> MetricContext:
        """What the scheduled metrics see at ``step`` (default: the current step)."""
        step = self.step if step is None else step
        return MetricContext(
            self.model, self.config, self.x["train_x"], self.x["train_y"], self.x["test_x"], self.x["test_y"], step,
            generator(derive_seed(self.config.seed, "metrics"), str(step)),
            task=self.data, objective=self.objective, initial_model=self.initial_model,
        )

    def initial_model(self) -> nn.Module:
        """The model at initialisation, on the CPU, rebuilt from (model config, seed) on first
        call and kept: the reference ``theta_0`` of laziness metrics."""
        if self._initial_model is None:
            self._initial_model = build_model(self.config.model, self.data, generator(self.config.seed, "init")).eval()
        return self._initial_model

    def complete_last_row(self) -> None:
        """Add to the newest row the scheduled metrics that were not due at its step, as a run's
        last step has them all (an early stop is a last step the schedule did not know)."""
        missing = [n for n in self.config.eval.metrics if n not in due_metrics(self.config, self.step)]
        if missing:
            self.model.eval()
            self.rows[-1].update(compute_metrics(missing, self.metric_context(), scheduled=False))
            self.model.train()

    # ----------------------------------------------------------------- checkpoints
    def save(self, wall: float) -> None:
        opt_tensors, opt_meta = flatten_optimizer_state(self.optimizer.state_dict())
        batch_tensors, batch_meta = self.batches.state()
        iv_tensors, iv_meta = self.interventions.state()
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items() if v is not None}
        tensors.update(opt_tensors)
        tensors.update(batch_tensors)
        tensors.update(iv_tensors)
        meta = {
            "step": self.step,
            "elapsed": wall,
            "optimizer": opt_meta,
            "schedule": self.schedule.state_dict(),
            "batches": batch_meta,
            "interventions": iv_meta,
        }
        self.run_dir.write_metrics(self.rows)  # before the checkpoint: resume trusts rows up to its step
        save_checkpoint(checkpoint_path(self.run_dir.checkpoints, self.step), tensors, meta)

    def restore(self, step: Optional[int] = None) -> None:
        """Load the checkpoint of ``step`` (default: the newest) and the metrics rows up to it;
        a missing or damaged checkpoint raises :class:`GroklabError` before anything changes."""
        if step is None:
            path = latest_checkpoint(self.run_dir.checkpoints)
            if path is None:
                raise GroklabError(f"cannot resume {self.run_dir.path}: it has no checkpoints/step_*.safetensors")
        else:
            path = checkpoint_path(self.run_dir.checkpoints, step)
            if not path.is_file():
                have = ", ".join(str(s) for s, _ in list_checkpoints(self.run_dir.checkpoints)) or "none"
                raise GroklabError(f"{self.run_dir.path} has no checkpoint at step {step} (it has: {have})")
        tensors, meta = load_checkpoint(path)
        model_sd = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_sd, strict=False)
        self.optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta["optimizer"]))
        self.schedule.load_state_dict(meta["schedule"])
        self.batches.load_state(tensors, meta["batches"])
        self.interventions.load_state(tensors, meta.get("interventions", {}))
        self.step, self.elapsed = meta["step"], meta["elapsed"]
        frame = self.run_dir.read_metrics()
        self.rows = [r for r in frame.to_dict("records") if r["step"] <= self.step]

    # ----------------------------------------------------------------- the loop
    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Train to ``train.steps`` (or the early stop); returns wall seconds and stop reason."""
        t = self.config.train
        started = time.perf_counter()
        resumed = bool(self.rows)
        stop = Stopping.after(t, self.rows)
        bar = tqdm(total=t.steps, initial=self.step, unit="step", disable=not progress, dynamic_ncols=True, leave=True)
        flushed = started
        with _CtrlC() as ctrl_c:
            while True:
                # A resumed run restarts exactly after its checkpoint: that step is already
                # evaluated and saved.
                fresh_step = not resumed
                resumed = False
                if fresh_step and (self.step % t.eval_every == 0 or self.step == t.steps):
                    row = self.evaluate_and_check(stop)
                    bar.set_postfix_str(_progress_text(row), refresh=False)
                    if time.perf_counter() - flushed > METRICS_FLUSH_SECONDS:
                        self.run_dir.write_metrics(self.rows)
                        flushed = time.perf_counter()
                at_end = stop.at_end(self.step)
                due_save = t.checkpoint_every and self.step % t.checkpoint_every == 0 and self.step > 0
                if fresh_step and (at_end or due_save):
                    self.save(self.elapsed + time.perf_counter() - started)
                if at_end:
                    break
                if ctrl_c.pressed:  # at a step boundary, so resuming from here is exact
                    self.save(self.elapsed + time.perf_counter() - started)
                    bar.close()
                    raise RunInterrupted(self.run_dir.path, self.step)
                x, y = self.batches.next()
                train_step(self.model, self.optimizer, self.schedule, x, y, self.objective, self.interventions)
                self.step += 1
                bar.update(1)
        bar.close()
        return stop.outcome(self.elapsed + time.perf_counter() - started)

    def evaluate_and_check(self, stop: "Stopping") -> dict[str, float]:
        """:meth:`record` this step and let ``stop`` see the row; a run that stops early here
        gets the scheduled metrics of a last step (:meth:`complete_last_row`)."""
        row = self.record()
        stop.observe(row, self.step)
        if stop.stopped_early and self.step < self.config.train.steps:
            self.complete_last_row()
        return row


@dataclass
class Stopping:
    """When a run ends before ``train.steps``: its stop condition (every one that is set of: test
    accuracy at least ``train.stop_at_test_acc``, train accuracy at least ``train.stop_at_train_acc``,
    train and test loss below ``train.stop_below_loss``) held for
    ``train.stop_patience`` evaluations, its train loss fell below ``train.stop_converged_below``,
    or (with ``train.on_divergence='stop'``) a training loss became NaN or infinite. Fed every
    evaluated row; built from the rows a resumed run already has."""

    train: TrainConfig
    held: int = 0
    stopped_early: bool = False
    diverged_step: Optional[int] = None

    @classmethod
    def after(cls, train: TrainConfig, rows: list[dict[str, float]]) -> "Stopping":
        """The state after ``rows`` (empty for a fresh run)."""
        stop = cls(train, diverged_step=_diverged_step(rows))
        for row in reversed(rows):  # trailing evaluations that already met the stop condition
            if not _meets_stop_condition(row, train):
                break
            stop.held += 1
        stop.stopped_early = stop.held >= train.stop_patience or any(_converged(row, train) for row in rows)
        return stop

    def observe(self, row: dict[str, float], step: int) -> None:
        """Take the row evaluated at ``step`` into account."""
        if _meets_stop_condition(row, self.train):
            self.held += 1
            self.stopped_early = self.held >= self.train.stop_patience
        else:
            self.held = 0
        self.stopped_early = self.stopped_early or _converged(row, self.train)
        if self.diverged_step is None and not math.isfinite(row["train_loss"]):
            self.diverged_step = step

    def at_end(self, step: int) -> bool:
        """Whether the run ends at ``step``."""
        halted = self.train.on_divergence == "stop" and self.diverged_step is not None
        return step >= self.train.steps or self.stopped_early or halted

    def outcome(self, wall_seconds: float) -> dict[str, Any]:
        """What :meth:`Trainer.fit` returns."""
        return {"wall_seconds": wall_seconds, "stopped_early": self.stopped_early, "diverged_step": self.diverged_step}


def _converged(row: dict[str, float], train: TrainConfig) -> bool:
    """Whether ``row``'s train loss is below ``train.stop_converged_below`` (False when unset)."""
    return train.stop_converged_below is not None and row["train_loss"] < train.stop_converged_below


def _meets_stop_condition(row: dict[str, float], train: TrainConfig) -> bool:
    """Whether ``row`` meets the early-stop condition (False when the run has none). NaN never does."""
    acc, train_acc, loss = train.stop_at_test_acc, train.stop_at_train_acc, train.stop_below_loss
    if acc is None and train_acc is None and loss is None:
        return False
    return ((acc is None or row["test_acc"] >= acc) and (train_acc is None or row["train_acc"] >= train_acc)
            and (loss is None or (row["train_loss"] < loss and row["test_loss"] < loss)))


class _CtrlC:
    """Within the block, Ctrl-C (SIGINT) only sets ``pressed``; the loop saves a checkpoint at
    the next step boundary and raises :class:`RunInterrupted`. A second Ctrl-C interrupts at
    once. Outside the main thread (no signal handlers there) it does nothing."""

    def __enter__(self) -> "_CtrlC":
        import signal
        import threading

        self.pressed, self._previous = False, None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True

    def __exit__(self, *exc) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress_text(row: dict[str, float]) -> str:
    return (
        f"train acc {row['train_acc']:.3f} loss {row['train_loss']:.3g} | "
        f"test acc {row['test_acc']:.3f} loss {row['test_loss']:.3g}"
    )


def _diverged_step(rows: list[dict[str, float]]) -> Optional[int]:
    """The first evaluated step whose training loss is NaN or infinite, or None."""
    return next((int(r["step"]) for r in rows if not math.isfinite(r["train_loss"])), None)
