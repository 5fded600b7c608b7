"""Wall time of one DMFT solve (``groklab theory dmft``) against the same solve by the solver of an
earlier commit, in the same run, order alternated.

    python benchmarks/bench_dmft.py [--against REV] [--repeats 1]

The reference is the package as it was at ``REV`` (default: the commit before the solver stopped
reallocating and re-averaging its response Jacobian at every iteration), checked out into a
temporary directory with ``git archive``. Each solve runs in its own process (so both sides pay
the same imports and thread start-up) on the two settings the README quotes. Also reports the
largest relative difference of the two solutions' loss curves and their iteration counts: the
speed-up must not buy different numbers. Writes benchmarks/results/dmft.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parent
SETTINGS = (
    ("--alpha", "0.5", "--eps", "1", "--N", "4", "--p", "8", "--horizon", "6"),
    ("--alpha", "1", "--eps", "0.5", "--N", "4", "--p", "8", "--horizon", "20"),
)
# Runs the command line of the package found first on PYTHONPATH, and says which it was.
RUNNER = "import sys, groklab.cli; print(groklab.cli.__file__, file=sys.stderr); sys.exit(groklab.cli.main(sys.argv[1:]))"


def solve(package_root: Path, setting: tuple[str, ...], out: Path) -> float:
    """Seconds for one solve by the package under ``package_root``; the solution goes to ``out``."""
    env = dict(os.environ, PYTHONPATH=str(package_root))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUNNER, "theory", "dmft", *setting, "--out", str(out)],
                          cwd=package_root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"solve failed under {package_root}:\n{done.stderr[-2000:]}")
    used = next(line for line in done.stderr.splitlines() if line.endswith("cli.py"))
    if not used.startswith(str(package_root)):  # PYTHONPATH lost to another install
        raise SystemExit(f"expected the package under {package_root}, ran {used}")
    return seconds


def largest_difference(a: dict, b: dict) -> float:
    """Largest relative difference of the train and test loss curves of two solutions."""
    return max(abs(x - y) / max(abs(x), 1e-12) for key in ("train_loss", "test_loss") for x, y in zip(a[key], b[key]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="a3bf604", help="commit whose solver is the reference")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        reference = Path(tmp) / "reference"
        reference.mkdir()
        archive = subprocess.run(["git", "archive", args.against, "groklab"], cwd=REPO, capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(reference, filter="data")
        sides = {"groklab": REPO, "reference": reference}
        for setting in SETTINGS:
            times: dict[str, list[float]] = {side: [] for side in sides}
            for r in range(args.repeats):
                for side in (sides if r % 2 == 0 else reversed(list(sides))):
                    times[side].append(solve(sides[side], setting, Path(tmp) / f"{side}.json"))
            solutions = {side: json.loads((Path(tmp) / f"{side}.json").read_text()) for side in sides}
            row = {"setting": " ".join(setting), "groklab_s": times["groklab"], "reference_s": times["reference"],
                   "ratio": min(times["groklab"]) / min(times["reference"]),
                   "largest_relative_difference": largest_difference(solutions["reference"], solutions["groklab"]),
                   "iterations": {side: len(s["residuals"]) for side, s in solutions.items()}}
            rows.append(row)
            print(f"{row['setting']}: groklab {min(times['groklab']):.1f} s, reference ({args.against}) "
                  f"{min(times['reference']):.1f} s, ratio {row['ratio']:.2f}; curves differ by at most "
                  f"{row['largest_relative_difference']:.1e} (relative); iterations {row['iterations']}", flush=True)
    out = HERE / "results" / "dmft.json"
    out.write_text(json.dumps({"against": args.against, "load_average": os.getloadavg(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
