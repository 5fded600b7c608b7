"""The committee machine's quadratic-form output against its preactivation path, per training step.

    python benchmarks/bench_committee.py [--members 1 16] [--steps 20] [--threads 1]

One gradient of the centred MSE (forward and backward, as a training step computes it) for K
members at once (``vmap(grad(...))``, as an ensemble steps; K = 1 is a solo step's work), at
the sizes of paper 001's toy-model figures. groklab computes ``f(x) = alpha (wbar . x +
eps/2 x^T M x)`` when that is cheaper (:meth:`CommitteeMachine.quadratic_form_output`); the
reference is the same module's per-neuron path, ``alpha/N sum_i phi(w_i . x)`` over the (P, N)
preactivations (what ``forward`` computes when a metric asks for them), timed in the same run
with the order alternated. Both gradients are compared (relative difference). Prints a table
and writes benchmarks/results/committee.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.func import functional_call, grad, vmap

from groklab.models.committee import CommitteeMachine

SIZES = {  # name: (D, N, P), the figures' own
    "poly preset": (50, 200, 275),
    "fig. 3a/3b": (100, 500, 450),
    "fig. 3e (phase diagram)": (100, 500, 550),
}


def gradients(D: int, N: int, P: int, K: int):
    """The K members' gradient functions through each path (quadratic form, per neuron), and
    their shared arguments."""
    net = CommitteeMachine(D, N, alpha=1.0, eps=0.3, seed=0)
    W = torch.randn(K, N, D)
    x, y = torch.randn(K, P, D) / D**0.5, torch.randn(K, P)

    def loss(W, x, y, per_neuron: bool):
        # forward with a cache keeps the (P, N) preactivations: the per-neuron path
        out = functional_call(net, {"W": W}, (x,), {"cache": {}} if per_neuron else {})
        return ((2.0 * out - y) ** 2).mean()

    quadratic = vmap(grad(lambda W, x, y: loss(W, x, y, per_neuron=False)))
    per_neuron = vmap(grad(lambda W, x, y: loss(W, x, y, per_neuron=True)))
    return quadratic, per_neuron, (W, x, y)


def seconds(fn, args, steps: int) -> float:
    fn(*args)  # warm-up
    started = time.perf_counter()
    for _ in range(steps):
        fn(*args)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (D, N, P) in SIZES.items():
        for K in args.members:
            quadratic, per_neuron, inputs = gradients(D, N, P, K)
            g_q, g_n = quadratic(*inputs), per_neuron(*inputs)
            difference = float((g_q - g_n).abs().max() / g_n.abs().max())
            times = {"quadratic": [], "per_neuron": []}
            for order in ((quadratic, "quadratic"), (per_neuron, "per_neuron")), \
                         ((per_neuron, "per_neuron"), (quadratic, "quadratic")):
                for fn, key in order:
                    times[key].append(seconds(fn, inputs, args.steps))
            q, n = (min(times[k]) for k in ("quadratic", "per_neuron"))
            rows.append({"size": name, "D": D, "N": N, "P": P, "K": K, "quadratic_ms": 1e3 * q,
                         "per_neuron_ms": 1e3 * n, "speed_up": n / q, "max_relative_difference": difference})
            print(f"{name:24s} K={K:3d}  quadratic form {1e3 * q:7.2f} ms  per neuron {1e3 * n:7.2f} ms  "
                  f"{n / q:5.2f}x  (gradients differ by {difference:.1e} relative)", flush=True)
    out = Path(__file__).parent / "results" / "committee.json"
    out.write_text(json.dumps({"threads": args.threads, "steps": args.steps, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
