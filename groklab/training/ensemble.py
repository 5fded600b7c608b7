"""Ensembles: K runs that differ only in values that keep tensor shapes, trained as one
batched model in one process.

The members' parameters and buffers are stacked along a leading member dimension
(``torch.func.stack_module_state``); one step computes every member's gradient on its own
batch with ``vmap(grad(loss))`` over ``functional_call`` of one template module, and a
functional optimiser (plain/momentum SGD, Adam, AdamW, as ``torch.optim`` defines them)
updates all members at once with per-member learning rate and weight decay. Everything else
(data, batch order, evaluation, scheduled metrics, run directory) stays each member's own
:class:`~groklab.training.loop.Trainer`: at an evaluation the member's parameters are copied
into its trainer's model, which records its row as a solo run would.

What may differ between members (:data:`VARYING`): the seed (so the data split, batch order
and initialisation), the learning rate, the weight decay, ``model.init_scale`` and
``model.alpha`` (a buffer of the laziness wrapper), the fields a model keeps in buffers (its
config's ``per_member``: the committee machine's ``eps``) and the run name. Everything else must be
equal (:func:`ensemble_key`); interventions and the linearised companion are not batched.

Two things make the batched step cheaper than K solo steps beyond batching itself. When every
member trains on its full training set and is centred (``Lazy``), each member's initial
output ``f(theta_0, x)`` on that set is computed once instead of at every step (half the
forward pass of the toy model). And the process keeps freed memory instead of returning it
to the system (:func:`keep_freed_memory`): the batched temporaries are K times larger than a
solo run's, above glibc's threshold for giving memory back, so without it every step pays
page faults for each of them (most of an elementwise operation's time at K = 16).
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
import time
from typing import Optional

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from groklab.config import Config
from groklab.errors import GroklabError
from groklab.models.laziness import Lazy
from groklab.training import loop
from groklab.training.loop import Stopping, Trainer

__all__ = ["VARYING", "ensemble_key", "why_not_batched", "keep_freed_memory", "member_bytes", "Ensemble"]

VARYING = ("name", "seed", "optim.lr", "optim.weight_decay", "model.init_scale", "model.alpha")


def why_not_batched(config: Config) -> Optional[str]:
    """Why ``config`` cannot be an ensemble member (None if it can)."""
    if any(block.on for block in config.interventions.blocks().values()):
        return "interventions are not batched"
    if config.linearized.on:
        return "the linearised companion is not batched"
    return None


def keep_freed_memory() -> None:
    """Ask glibc (Linux) to keep freed memory in this process for reuse: no ``mmap`` for large
    blocks and no trimming of the heap. Large tensors freed and allocated again at every step
    then reuse the same pages instead of faulting fresh ones in. Elsewhere a no-op. The cost is
    that the process holds on to its peak memory until it exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)


def member_bytes(config: Config) -> int:
    """Estimated memory (bytes) one member of ``config`` adds to an ensemble: its parameters
    stacked, their gradients and optimiser state; its trainer's own model and data; and the
    tensors one training step saves for the backward pass, counted on a real forward pass of
    one batch (``torch.autograd.graph.saved_tensors_hooks``), which is what grows with K."""
    from groklab.models import build_model
    from groklab.objective import training_objective
    from groklab.seeding import generator
    from groklab.tasks import build_task

    data = build_task(config.task, config.seed)
    model = build_model(config.model, data, generator(config.seed, "init"))
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    slots = {"adam": 2, "adamw": 2}.get(config.optim.name, 1 if config.optim.momentum else 0)
    tensors = (data.train_x, data.train_y, data.test_x, data.test_y)
    data_bytes = sum(t.numel() * t.element_size() for t in tensors)
    batch = config.train.batch_size or len(data.train_y)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.data_ptr()] = max(saved.get(t.data_ptr(), 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        objective = training_objective(config.train.loss, config.train.label_scale)
        objective(model(data.train_x[:batch]), data.train_y[:batch])
    # stacked params + grads + optimiser slots, the trainer's model (and its centring copy), the
    # trainer's data plus the stacked full batch, and the saved activations
    return params * (2 + slots + 2) + 2 * data_bytes + sum(saved.values())


def ensemble_key(config: Config) -> str:
    """Configs with equal keys can train as one ensemble: the config without :data:`VARYING` and
    without the model's own ``per_member`` fields (alpha enters as whether the laziness wrapper
    is there and centred)."""
    data = json.loads(config.to_json())
    for key in VARYING + tuple(f"model.{name}" for name in config.model.per_member):
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    wrapped = config.model.alpha != 1.0 or config.model.centred
    data["model"]["laziness"] = [wrapped, config.model.centred]
    data["optim"]["alpha_lr_scaling"] = None  # it only sets the learning rate, which may differ
    return json.dumps(data, sort_keys=True)


class Ensemble:
    """The batched training state of ``trainers`` (fresh ones, at step 0, same ensemble key)."""

    def __init__(self, trainers: list[Trainer]):
        if len({ensemble_key(t.config) for t in trainers}) != 1:
            raise GroklabError("ensemble members must differ only in " + ", ".join(VARYING))
        for t in trainers:
            reason = why_not_batched(t.config)
            if reason:
                raise GroklabError(f"{t.config.name}: cannot train in an ensemble: {reason}")
        self.trainers = trainers
        self.active = list(range(len(trainers)))  # the trainers whose members are still stacked, in row order
        self.template = trainers[0].model
        self.params, self.buffers = stack_module_state([t.model for t in trainers])  # (K, ...) each
        self.params = {k: v.detach() for k, v in self.params.items()}
        device = next(iter(self.params.values())).device
        o = trainers[0].config.optim
        self.kind, self.momentum, self.betas = o.name, o.momentum, o.betas
        self.lr = torch.tensor([t.config.lr for t in trainers], dtype=torch.float64, device=device)
        self.weight_decay = torch.tensor([t.config.optim.weight_decay for t in trainers], dtype=torch.float64,
                                         device=device)
        self.state: dict[str, dict[str, torch.Tensor]] = {k: {} for k in self.params}
        self.step_count = 0
        keep_freed_memory()
        objective = trainers[0].objective
        # (x, y, f(theta_0, x)) stacked over members, when every member is centred and full-batch
        self.full_batch: Optional[tuple[torch.Tensor, ...]] = None
        if all(t.batches.batch_size is None for t in trainers) and isinstance(self.template, Lazy) \
                and self.template.net_0 is not None:
            with torch.no_grad():
                self.full_batch = tuple(torch.stack(parts) for parts in zip(
                    *((t.batches.x, t.batches.y, t.model.net_0(t.batches.x)) for t in trainers)))
            net = self.template.net

            def inner(tree: dict) -> dict:  # the wrapped network's own names
                return {k[len("net."):]: v for k, v in tree.items() if k.startswith("net.")}

            def loss(params, buffers, x, y, initial):
                # Lazy.forward with the initial output given: alpha * (net(x) - net_0(x))
                out = functional_call(net, (inner(params), inner(buffers)), (x,)) - initial
                return objective(buffers["alpha"].to(out.dtype) * out, y)
        else:
            def loss(params, buffers, x, y):
                return objective(functional_call(self.template, (params, buffers), (x,)), y)

        self._grads = vmap(grad(loss))

    def __len__(self) -> int:
        return len(self.trainers)

    def step(self) -> None:
        """One optimiser update of every active member on its own next batch."""
        if self.full_batch is not None:
            inputs = self.full_batch
        else:
            batches = [self.trainers[k].batches.next() for k in self.active]
            inputs = (torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches]))  # (K, B, ...)
        self._update(self._grads(self.params, self.buffers, *inputs))
        self.step_count += 1

    @staticmethod
    def _per_member(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Per-member scalars (K,) (computed in float64, as torch.optim computes its Python
        floats) shaped to broadcast against ``like`` (K, ...), in its dtype."""
        return values.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))

    @torch.no_grad()
    def _update(self, grads: dict[str, torch.Tensor]) -> None:
        # torch.optim's update rules (SGD, Adam, AdamW) batched over members, with the trainers'
        # own warm-up factor (LambdaLR) for this step.
        lr = self.lr * self.trainers[0].schedule.lr_lambdas[0](self.step_count)  # (K,) float64
        t = self.step_count + 1
        b1, b2 = self.betas
        for name, p in self.params.items():
            g, state = grads[name], self.state[name]
            wd = self._per_member(self.weight_decay, p)
            if self.kind in ("gd", "sgd"):
                d = g + wd * p
                if self.momentum:
                    buf = state.get("momentum_buffer")
                    d = state["momentum_buffer"] = d.clone() if buf is None else buf.mul_(self.momentum).add_(d)
                p.sub_(self._per_member(lr, p) * d)
                continue
            if self.kind == "adamw":
                p.mul_(self._per_member(1 - lr * self.weight_decay, p))
            else:
                g = g + wd * p
            m = state.setdefault("exp_avg", torch.zeros_like(p)).lerp_(g, 1 - b1)
            v = state.setdefault("exp_avg_sq", torch.zeros_like(p)).mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2**t)).add_(1e-8)
            p.sub_(self._per_member(lr / (1 - b1**t), p) * (m / denom))

    @torch.no_grad()
    def drop(self, finished: set[int]) -> None:
        """Remove the members of trainers ``finished`` from the stacked state, so that the steps
        that follow cost only what the members still training need."""
        rows = [row for row, k in enumerate(self.active) if k not in finished]
        if len(rows) == len(self.active):
            return
        index = torch.tensor(rows, device=self.lr.device)
        self.params = {name: v[index] for name, v in self.params.items()}
        self.buffers = {name: v[index] for name, v in self.buffers.items()}
        self.state = {name: {slot: v[index] for slot, v in slots.items()} for name, slots in self.state.items()}
        self.lr, self.weight_decay = self.lr[index], self.weight_decay[index]
        if self.full_batch is not None:
            self.full_batch = tuple(part[index] for part in self.full_batch)
        self.active = [self.active[row] for row in rows]

    @torch.no_grad()
    def write_back(self, k: int) -> None:
        """Copy the parameters and buffers of trainer ``k``'s member into its model."""
        row = self.active.index(k)
        named = dict(self.trainers[k].model.named_parameters()) | dict(self.trainers[k].model.named_buffers())
        for name, value in (self.params | self.buffers).items():
            named[name].copy_(value[row])
        self.trainers[k].step = self.step_count

    @torch.no_grad()
    def hand_over_optimizer(self, k: int) -> None:
        """Put member ``k``'s optimiser state into its trainer's ``torch.optim`` optimiser and
        schedule, as a solo run of as many steps would hold them (its checkpoint resumes)."""
        trainer, row = self.trainers[k], self.active.index(k)
        named = dict(trainer.model.named_parameters())
        for name, slots in self.state.items():
            p = named[name]
            state = {key: value[row].clone() for key, value in slots.items()}
            if self.kind in ("adam", "adamw"):
                state["step"] = torch.tensor(float(self.step_count))
            if state:
                trainer.optimizer.state[p] = state
        schedule = trainer.schedule.state_dict()
        schedule.update(last_epoch=self.step_count, _step_count=self.step_count + 1)
        trainer.schedule.load_state_dict(schedule)
        factor = trainer.schedule.lr_lambdas[0](self.step_count)
        for group, base in zip(trainer.optimizer.param_groups, trainer.schedule.base_lrs):
            group["lr"] = base * factor
        trainer.schedule._last_lr = [g["lr"] for g in trainer.optimizer.param_groups]

    def fit(self, progress: bool = True) -> list[dict]:
        """Train every member to ``train.steps`` (or its own early stop or divergence), recording
        its rows and checkpoints exactly where a solo run would; returns each member's outcome
        as :meth:`Trainer.fit` does. ``wall_seconds`` is the ensemble's time when the member
        finished (the members share it)."""
        from tqdm.auto import tqdm

        t = self.trainers[0].config.train
        started = time.perf_counter()
        outcomes: list[Optional[dict]] = [None] * len(self)
        stops = [Stopping.after(t, []) for _ in self.trainers]
        bar = tqdm(total=t.steps, unit="step", disable=not progress, dynamic_ncols=True, leave=True,
                   desc=f"ensemble of {len(self)}")
        flushed = started
        while True:
            s = self.step_count
            evaluate = s % t.eval_every == 0 or s == t.steps
            due_save = bool(t.checkpoint_every) and s % t.checkpoint_every == 0 and s > 0
            for k, trainer in enumerate(self.trainers):
                if outcomes[k] is not None or not (evaluate or due_save):
                    continue
                self.write_back(k)
                if evaluate:
                    trainer.evaluate_and_check(stops[k])
                at_end = stops[k].at_end(s)
                if at_end or due_save:
                    self.hand_over_optimizer(k)
                    trainer.save(time.perf_counter() - started)
                if at_end:
                    outcomes[k] = stops[k].outcome(time.perf_counter() - started)
            if evaluate and time.perf_counter() - flushed > loop.METRICS_FLUSH_SECONDS:
                # as a solo run does: a long run without checkpoints can be watched, and its rows
                # survive a kill
                for k, trainer in enumerate(self.trainers):
                    if outcomes[k] is None:
                        trainer.run_dir.write_metrics(trainer.rows)
                flushed = time.perf_counter()
            if all(o is not None for o in outcomes):
                break
            if evaluate or due_save:  # the only steps at which a member can finish
                self.drop({k for k, o in enumerate(outcomes) if o is not None})
            self.step()
            bar.update(1)
        bar.close()
        return outcomes
