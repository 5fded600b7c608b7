"""Wall time of a 3 x 3 x 4-seed sweep of the `poly` preset (alpha x eps x seed, 36 points)
packed into ensembles against the same sweep with every point alone, in one process.

    python benchmarks/bench_sweep.py [--steps 2000] [--pack 12] [--threads 1] [--jobs 1]

Everything a sweep does is timed (configs, data, models, evaluations every 100 steps, the
`toy_stats` metric, checkpoints, files). Points that differ in eps have different models, so
with alpha and the seed varying within a pack the 36 points make 3 packs of 12. The packed
sweep runs first in even repetitions and second in odd ones. Prints a table and writes
benchmarks/results/sweep.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import groklab
from groklab.sweeps import sweep
from groklab.training.ensemble import keep_freed_memory

GRID = {"model.alpha": [0.5, 1.0, 2.0], "model.eps": [0.02, 0.05, 0.2], "seed": [0, 1, 2, 3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--pack", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # process-wide: the unpacked sweep gets it too
    base = groklab.load_preset("poly").override(f"train.steps={args.steps}", "train.device=cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            order = (args.pack, 1) if repeat % 2 == 0 else (1, args.pack)
            seconds = {}
            for pack in order:
                started = time.perf_counter()
                sweep(base, GRID, Path(tmp) / f"r{repeat}-pack{pack}", workers=args.jobs, progress=False, pack=pack)
                seconds[pack] = time.perf_counter() - started
            row = {"repeat": repeat, "alone_s": seconds[1], "packed_s": seconds[args.pack],
                   "speedup": seconds[1] / seconds[args.pack]}
            rows.append(row)
            print(f"36 points x {args.steps} steps: alone {row['alone_s']:.1f} s, packed by {args.pack} "
                  f"{row['packed_s']:.1f} s, speed-up {row['speedup']:.2f}x", flush=True)
    out = Path(__file__).parent / "results" / "sweep.json"
    out.write_text(json.dumps({"steps": args.steps, "pack": args.pack, "threads": args.threads, "jobs": args.jobs,
                               "grid": GRID, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
