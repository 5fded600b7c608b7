"""Run many recipes at once, each in its own process, and collect their verdicts.

    python docs/reproduce_all.py quick OUT_DIR [NAME ...] [--parallel 4] [--jobs 2] [--timeout 900]
    python docs/reproduce_all.py full OUT_DIR [NAME ...] [--set key=value ...] [--seeds N] [--reuse] [--pack K]

With no NAME, every recipe. Each recipe runs as ``groklab reproduce NAME [--quick] --jobs J
--out OUT_DIR/NAME`` (``--parallel`` recipes at a time, so up to parallel x jobs training
processes), with its log in ``OUT_DIR/NAME.log``; a recipe past ``--timeout`` seconds is
stopped and listed as such. Then ``python docs/make_gallery.py SIZE OUT_DIR/*`` copies the
verdicts that finished into the gallery.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path


def run_one(name: str, args) -> tuple[str, str, float]:
    out = Path(args.out) / name
    cmd = [sys.executable, "-m", "groklab.cli", "reproduce", name, "--out", str(out), "--overwrite", "--no-progress",
           "--jobs", str(args.jobs)]
    if args.size == "quick":
        cmd.append("--quick")
    for assignment in args.overrides:
        cmd += ["--set", assignment]
    if args.seeds:
        cmd += ["--seeds", args.seeds]
    if args.reuse:
        cmd.append("--reuse")
    if args.pack > 1:
        cmd += ["--pack", str(args.pack)]
    started = time.perf_counter()
    with open(Path(args.out) / f"{name}.log", "w") as log:
        try:
            code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            return name, f"stopped after {args.timeout} s", time.perf_counter() - started
    if code != 0:
        return name, f"failed (exit {code}, see {name}.log)", time.perf_counter() - started
    verdict = json.loads((out / "verdict.json").read_text())
    return name, "supported" if verdict["supported"] else "not supported", time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", choices=["quick", "full"])
    parser.add_argument("out")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--parallel", type=int, default=1, help="recipes at a time")
    parser.add_argument("--jobs", type=int, default=2, help="training processes per recipe")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds")
    parser.add_argument("--reuse", action="store_true", help="judge finished runs already in OUT_DIR again")
    parser.add_argument("--pack", type=int, default=1, help="train up to K compatible runs as one ensemble")
    args = parser.parse_args()
    from groklab.recipes import list_recipes

    names = args.names or list(list_recipes())
    Path(args.out).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        for done in as_completed([pool.submit(run_one, n, args) for n in names]):
            name, status, seconds = done.result()
            print(f"{name}\t{status}\t{seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
