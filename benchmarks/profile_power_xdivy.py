"""Where ``power-xdivy``'s time goes: one training step and one evaluation, profiled, and the
FLOP rate they reach against this CPU's fp32 matmul rate.

    python benchmarks/profile_power_xdivy.py [--threads 2] [--steps 40] [--repeats 5]
        [--eval-chunk ROWS] [--out results/profile_power_xdivy.json]

For groklab's preset and for the reference loop of ``bench_power_xdivy.py``
(``reference_power.py``), each in this one process with the same thread count:

* seconds per training step (median over ``--repeats`` blocks of ``--steps`` steps, after a
  warm-up) and per evaluation (groklab: the train and test sets, 4656 + 4657 pairs, and the
  weight norm, as ``Trainer.record`` does; reference: its validation pass over 4656 pairs);
* FLOPs of one step and one evaluation, counted by ``torch.utils.flop_counter.FlopCounterMode``
  (matrix products and attention only: what the counter knows; elementwise work is not FLOPs
  here), and the rate they imply, GFLOP/s;
* the fp32 matmul rate of this CPU: a 2048 x 2048 ``torch.mm`` at the same thread count (the
  attainable peak), and the rate at the step's own largest product shape, (batch x 4 tokens,
  128) x (128, 512);
* ``torch.profiler`` tables of the operators' own CPU time (self time), grouped (``GROUPS``:
  matrix products, attention, normalisation, indexing and copies, optimiser, elementwise and
  reductions, framework Python), for 10 training steps and for one evaluation of each side.

``--eval-chunk`` sets the rows per evaluation chunk of groklab's CPU evaluation
(``groklab.training.loop.EVAL_CHUNK``; 16384, one chunk per set, was the setting before
issue 13's change), to profile before and after. Prints a summary and writes ``--out``.
Timings depend on the machine and its load (the load average is recorded); the suite asserts
none of them. The reference's steps are timed, counted and profiled as whole passes of its
``train_epoch`` (10 batches, the last one of 48 rows, one loader iterator per epoch, as the
real loop runs them), divided by the batches in the epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import reference_power as ref  # noqa: E402
from groklab.presets import load_preset  # noqa: E402
from groklab.store.rundir import RunDir  # noqa: E402
from groklab.training import loop  # noqa: E402
from groklab.training.loop import Trainer, train_step  # noqa: E402

# aten operator names (after "aten::") -> group; anything else under aten is elementwise work
# or a reduction, and what is not an aten operator is framework time (autograd nodes, the
# optimiser's and the data loader's Python).
GROUPS = {
    "matrix products": {"mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "einsum", "_addmm_activation"},
    "attention": {"_softmax", "softmax", "_softmax_backward_data", "_native_multi_head_attention",
                  "scaled_dot_product_attention", "_scaled_dot_product_flash_attention_for_cpu",
                  "_scaled_dot_product_flash_attention_for_cpu_backward", "masked_fill", "triu"},
    "normalisation": {"native_layer_norm", "native_layer_norm_backward", "layer_norm"},
    "indexing and copies": {"index", "index_put_", "_index_put_impl_", "index_select", "embedding",
                            "embedding_backward", "embedding_dense_backward", "gather", "scatter", "scatter_add_",
                            "copy_", "cat", "stack", "clone", "contiguous", "_to_copy", "to", "narrow", "slice",
                            "select", "expand", "view", "reshape", "_reshape_alias", "transpose", "permute", "t",
                            "unsqueeze", "squeeze", "as_strided", "empty", "empty_strided", "zeros", "zeros_like",
                            "empty_like", "fill_", "zero_", "resize_", "split", "unbind", "chunk", "arange",
                            "index_add_", "new_zeros", "new_empty", "detach", "alias", "unsafe_view",
                            "_unsafe_view", "flatten", "lift_fresh"},
}
OPTIMISER_PREFIXES = ("_fused_adam", "_foreach_", "lerp", "addcdiv", "addcmul")


def group_of(name: str) -> str:
    """The group of a profiler event name (``aten::addmm`` -> matrix products)."""
    if not name.startswith("aten::"):
        return "framework (autograd, optimiser, loader)"
    short = name.removeprefix("aten::")
    if short.startswith(OPTIMISER_PREFIXES):
        return "optimiser"
    for group, names in GROUPS.items():
        if short in names:
            return group
    return "elementwise and reductions"


def median_seconds(fn: Callable[[], object], repeats: int, per: int = 1) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` calls, divided by ``per``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) / per)
    return statistics.median(times)


def flops_of(fn: Callable[[], object]) -> int:
    """FLOPs ``FlopCounterMode`` counts in one call of ``fn``."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def profile_table(fn: Callable[[], object], top: int = 12) -> dict:
    """Self CPU time of ``fn`` by group and by operator (top ``top``), in ms and shares."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    groups: dict[str, float] = {}
    for e in events:
        group = group_of(e.key)
        groups[group] = groups.get(group, 0.0) + e.self_cpu_time_total
    ops = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return {
        "total_ms": total / 1e3,
        "groups": {g: {"ms": t / 1e3, "share": t / total} for g, t in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": e.key, "calls": e.count, "ms": e.self_cpu_time_total / 1e3,
                     "share": e.self_cpu_time_total / total} for e in ops],
    }


def matmul_rate(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """GFLOP/s of a fp32 (m, k) x (k, n) ``torch.mm`` run for about ``seconds``."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    for _ in range(3):
        torch.mm(a, b, out=out)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.mm(a, b, out=out)
        calls += 1
    return 2 * m * k * n * calls / (time.perf_counter() - started) / 1e9


# ----------------------------------------------------------------------------- the two loops
def groklab_side(workdir: Path):
    """(one training step, one evaluation, 1 step per call) of the ``power-xdivy`` preset as
    ``Trainer.fit`` runs them."""
    config = load_preset("power-xdivy").override("train.checkpoint_every=null")
    trainer = Trainer.create(config, RunDir(workdir))

    def step():
        x, y = trainer.batches.next()
        train_step(trainer.model, trainer.optimizer, trainer.schedule, x, y, trainer.objective, trainer.interventions)

    def evaluation():
        trainer.record()
        trainer.rows.clear()

    return step, evaluation, 1


def reference_side():
    """(one epoch of training steps, one evaluation, steps per epoch) of ``reference_power.py``:
    its own loop (loader, forward, loss, backward, AdamW, warm-up schedule, per-step ``.item()``
    logging) over one epoch, and its validation pass."""
    torch.manual_seed(0)
    train_loader, val_loader = ref.get_data(0)
    model = ref.Transformer(ref.N_LAYERS, ref.D_MODEL, ref.N_HEADS, ref.D_MLP, ref.P + 2, 4)
    optimizer = torch.optim.AdamW(model.parameters(), lr=ref.LR, betas=ref.BETAS, weight_decay=ref.WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / ref.WARMUP_STEPS))
    criterion, log = nn.CrossEntropyLoss(), {"step": [], "train_loss": [], "train_acc": []}
    device = torch.device("cpu")

    def epoch():
        ref.train_epoch(model, train_loader, optimizer, schedule, criterion, device, log, 0, max_steps=None)

    def evaluation():
        ref.evaluate(model, val_loader, criterion, device)

    return epoch, evaluation, len(train_loader)


def measure(train, evaluation, steps_per_call: int, steps: int, repeats: int) -> dict:
    """Timings, FLOPs and profiles of one side; ``train`` runs ``steps_per_call`` training steps."""
    calls, ten_steps = max(1, steps // steps_per_call), max(1, 10 // steps_per_call)
    for _ in range(ten_steps):  # warm-up
        train()
    evaluation()
    step_s = median_seconds(lambda: [train() for _ in range(calls)], repeats, per=calls * steps_per_call)
    eval_s = median_seconds(evaluation, repeats)
    step_flops, eval_flops = flops_of(train) / steps_per_call, flops_of(evaluation)
    return {
        "step_ms": 1e3 * step_s, "eval_ms": 1e3 * eval_s,
        "step_gflop": step_flops / 1e9, "eval_gflop": eval_flops / 1e9,
        "step_gflops_per_s": step_flops / step_s / 1e9, "eval_gflops_per_s": eval_flops / eval_s / 1e9,
        "step_profile": profile_table(lambda: [train() for _ in range(ten_steps)]),
        "eval_profile": profile_table(evaluation),
    }


def print_side(name: str, r: dict, peak: float) -> None:
    print(f"\n{name}: {r['step_ms']:.1f} ms a step ({r['step_gflop']:.2f} GFLOP, {r['step_gflops_per_s']:.1f} GFLOP/s, "
          f"{r['step_gflops_per_s'] / peak:.0%} of the 2048^2 matmul rate); evaluation {r['eval_ms']:.1f} ms "
          f"({r['eval_gflop']:.2f} GFLOP, {r['eval_gflops_per_s']:.1f} GFLOP/s)")
    for what in ("step_profile", "eval_profile"):
        p = r[what]
        shares = ", ".join(f"{g} {v['share']:.0%}" for g, v in p["groups"].items())
        print(f"  {what.split('_')[0]} (self CPU {p['total_ms']:.0f} ms): {shares}")
        for op in p["top_ops"][:6]:
            print(f"    {op['op']:40s} {op['calls']:5d} calls {op['ms']:8.1f} ms {op['share']:5.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40, help="training steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks (median taken)")
    parser.add_argument("--eval-chunk", type=int, default=None,
                        help="rows per CPU evaluation chunk (default: groklab's, EVAL_CHUNK)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "profile_power_xdivy.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.eval_chunk:
        loop.EVAL_CHUNK["cpu"] = args.eval_chunk
    peak = matmul_rate(2048, 2048, 2048)
    step_shape = matmul_rate(512 * 4, ref.D_MODEL, ref.D_MLP)
    with tempfile.TemporaryDirectory() as tmp:
        ours = measure(*groklab_side(Path(tmp)), args.steps, args.repeats)
    reference = measure(*reference_side(), args.steps, args.repeats)
    result = {"threads": args.threads, "eval_chunk": loop.EVAL_CHUNK["cpu"], "torch": torch.__version__,
              "load_average": os.getloadavg(),
              "cpu": _cpu_name(), "matmul_2048_gflops_per_s": peak, "matmul_step_shape_gflops_per_s": step_shape,
              "groklab": ours, "reference": reference}
    print(f"torch {torch.__version__}, {args.threads} threads, {result['cpu']}, load {result['load_average']}, "
          f"groklab evaluates in chunks of {result['eval_chunk']} rows")
    print(f"fp32 matmul: 2048^3 {peak:.1f} GFLOP/s; (2048, 128) x (128, 512) {step_shape:.1f} GFLOP/s")
    print_side("groklab power-xdivy", ours, peak)
    print_side("reference loop", reference, peak)
    print(f"\ngroklab / reference: step time {ours['step_ms'] / reference['step_ms']:.2f}, FLOPs per step "
          f"{ours['step_gflop'] / reference['step_gflop']:.2f}, FLOP rate "
          f"{ours['step_gflops_per_s'] / reference['step_gflops_per_s']:.2f}")
    args.out.write_text(json.dumps(result, indent=2) + "\n")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
