"""Benchmark: wall-time share of the paper-000 scheduled metrics in a default-schedule run.

Two runs of the ``mlp-add`` preset in this process, same seed, run to their end (3000 steps,
grokking at ~2200; no early stop): without scheduled metrics, and with ``eval.metrics`` set to
every paper-000 metric (``PAPER_000_METRICS``) on the default schedule
(``eval.metrics_every=null``: cheap metrics at every evaluation, expensive ones at
log-spaced evaluations, see :mod:`groklab.metrics.registry`). Each metric function is wrapped
with a timer, so the share of the metrics is also measured inside the second run, which does
not depend on the machine's load changing between the runs. Process CPU time is reported next
to wall time: on a shared machine it is the better estimate of what the run costs alone. For
context it also estimates, from the measured seconds per call, what the same metrics would
cost at every evaluation (``eval.metrics_every = train.eval_every``, the old default).

Run: ``python benchmarks/bench_metric_overhead.py [--steps N] [--threads N]``. Prints a
markdown table and writes ``benchmarks/results/metric_overhead.json``. The target (metrics
under 20% of the run's wall time) is reported, not enforced (exit code 0 either way).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

# Run as a plain script, so make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import groklab  # noqa: E402
from groklab.metrics import registry  # noqa: E402

PAPER_000_METRICS = ("matrix_info", "sharpness", "top_eigenvalue", "input_grad_norm", "robustness",
                     "sparsity_entropy", "nn_accuracy", "group_laws")
TARGET_SHARE = 0.20
RESULTS = Path(__file__).resolve().parent / "results" / "metric_overhead.json"


def _timed_metrics(names, spent: dict) -> None:
    """Wrap the registered metric functions so each call adds its (wall, cpu) seconds to ``spent``."""
    for name in names:
        fn = registry.METRICS[name]

        def timed(ctx, _fn=fn, _name=name):
            w, c = time.perf_counter(), time.process_time()
            try:
                return _fn(ctx)
            finally:
                acc = spent.setdefault(_name, [0.0, 0.0, 0])
                acc[0] += time.perf_counter() - w
                acc[1] += time.process_time() - c
                acc[2] += 1

        registry.METRICS[name] = timed


def _run(config, out: Path):
    w, c = time.perf_counter(), time.process_time()
    result = groklab.run(config, out=out, overwrite=True, progress=False)
    return time.perf_counter() - w, time.process_time() - c, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="train.steps (default: the preset's)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    base = groklab.load_preset("mlp-add").override("train.device=cpu", "train.checkpoint_every=null")
    if args.steps is not None:
        base = base.override(f"train.steps={args.steps}")
    with_metrics = base.override("eval.metrics=" + json.dumps(list(PAPER_000_METRICS)))
    spent: dict = {}
    _timed_metrics(PAPER_000_METRICS, spent)
    with tempfile.TemporaryDirectory() as tmp:
        plain_wall, plain_cpu, _ = _run(base, Path(tmp) / "plain")
        metric_wall, metric_cpu, result = _run(with_metrics, Path(tmp) / "metrics")
    in_wall = sum(v[0] for v in spent.values())
    in_cpu = sum(v[1] for v in spent.values())
    share_wall, share_cpu = in_wall / metric_wall, in_cpu / metric_cpu
    t, ev = base.train, with_metrics.eval
    evaluations = len(result.metrics)
    # The same metrics at every evaluation: seconds per call x evaluations, on top of the rest of the run.
    every_eval = sum(w / n * evaluations for w, _, n in spent.values())
    share_every_eval = every_eval / (metric_wall - in_wall + every_eval)
    print(f"mlp-add, {t.steps} steps (t_test_acc {result.summary['t_test_acc']}), {evaluations} evaluations "
          f"(every {t.eval_every} steps), {len(PAPER_000_METRICS)} metrics on the default schedule "
          f"(metrics_per_decade={ev.metrics_per_decade}), threads={torch.get_num_threads()}\n")
    print("| run | wall (s) | cpu (s) |")
    print("|---|---|---|")
    print(f"| without metrics | {plain_wall:.1f} | {plain_cpu:.1f} |")
    print(f"| with paper-000 metrics | {metric_wall:.1f} | {metric_cpu:.1f} |")
    print(f"| ratio with / without | {metric_wall / plain_wall:.2f} | {metric_cpu / plain_cpu:.2f} |")
    print(f"| metrics' share of the run (timed inside it) | {share_wall:.1%} | {share_cpu:.1%} |")
    print()
    print("| metric | cost class | calls | wall (s) | cpu (s) | s / call | share of run (wall) |")
    print("|---|---|---|---|---|---|---|")
    for name, (w, c, n) in sorted(spent.items(), key=lambda kv: -kv[1][0]):
        print(f"| {name} | {registry.METRIC_COSTS[name]} | {n} | {w:.2f} | {c:.2f} | {w / n:.3f} | "
              f"{w / metric_wall:.1%} |")
    met = share_wall < TARGET_SHARE
    verdict = "met" if met else "NOT met"
    print(f"\nmetrics' share {share_wall:.1%} of wall time (target < {TARGET_SHARE:.0%}: {verdict}); "
          f"at every evaluation they would be ~{share_every_eval:.0%} (estimated from the seconds per call)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "preset": "mlp-add", "steps": t.steps, "eval_every": t.eval_every, "evaluations": evaluations,
        "t_test_acc": result.summary["t_test_acc"], "metrics_every": ev.metrics_every,
        "metrics_per_decade": ev.metrics_per_decade, "metrics": list(PAPER_000_METRICS),
        "threads": torch.get_num_threads(),
        "without_metrics": {"wall_s": round(plain_wall, 2), "cpu_s": round(plain_cpu, 2)},
        "with_metrics": {"wall_s": round(metric_wall, 2), "cpu_s": round(metric_cpu, 2)},
        "ratio_wall": round(metric_wall / plain_wall, 3), "ratio_cpu": round(metric_cpu / plain_cpu, 3),
        "metric_share_wall": round(share_wall, 4), "metric_share_cpu": round(share_cpu, 4),
        "per_metric": {k: {"cost": registry.METRIC_COSTS[k], "calls": n, "wall_s": round(w, 3), "cpu_s": round(c, 3)}
                       for k, (w, c, n) in spent.items()},
        "estimated_share_at_every_evaluation": round(share_every_eval, 4),
        "target_share": TARGET_SHARE, "target_met": met,
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
