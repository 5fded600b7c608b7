"""Ensemble throughput: member-steps per second of K members trained as one batched model
(groklab.training.ensemble) against K solo trainers stepped one after another, same process.

    python benchmarks/bench_ensemble.py [--presets mlp-add poly] [--members 1 4 16] [--steps 30] [--threads 1]

Only the training steps are timed (evaluation, metrics and files are the same work either
way). Each member is its preset with its own seed. Both sides run with the allocator setting
an ensemble turns on (``keep_freed_memory``), set before anything is measured, so the ratio is
batching alone. Prints a table and writes benchmarks/results/ensemble.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import groklab
from groklab.store.rundir import RunDir
from groklab.training.ensemble import Ensemble, keep_freed_memory
from groklab.training.loop import Trainer, train_step


def trainers(preset: str, k: int, root: Path) -> list[Trainer]:
    base = groklab.load_preset(preset).override("train.device=cpu")
    return [Trainer.create(base.override(f"seed={s}"), RunDir(root / f"{preset}-{k}-{s}")) for s in range(k)]


def seconds_per_step(step, steps: int) -> float:
    step()  # warm-up (first-call costs, allocations)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["mlp-add", "poly"])
    parser.add_argument("--members", nargs="+", type=int, default=[1, 4, 16])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # process-wide: the sequential side gets it too
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            for k in args.members:
                solo = trainers(preset, k, Path(tmp) / "solo")

                def sequential():
                    for t in solo:
                        x, y = t.batches.next()
                        train_step(t.model, t.optimizer, t.schedule, x, y, t.objective)

                t_seq = seconds_per_step(sequential, args.steps)
                ensemble = Ensemble(trainers(preset, k, Path(tmp) / "ens"))
                t_ens = seconds_per_step(ensemble.step, args.steps)
                rows.append({"preset": preset, "members": k, "sequential_s_per_step": t_seq,
                             "ensemble_s_per_step": t_ens, "speedup": t_seq / t_ens,
                             "member_steps_per_s": k / t_ens})
                print(f"{preset:8s} K={k:3d}  sequential {t_seq * 1e3:8.1f} ms  ensemble {t_ens * 1e3:8.1f} ms  "
                      f"speed-up {t_seq / t_ens:5.2f}x  ({k / t_ens:7.1f} member-steps/s)", flush=True)
    out = Path(__file__).parent / "results" / "ensemble.json"
    out.write_text(json.dumps({"threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
