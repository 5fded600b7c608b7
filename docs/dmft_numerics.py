"""How much of the DMFT's prediction is its own Monte Carlo: the recipe `theory-vs-simulation`'s
setting "rich" (alpha 0.5, eps 1, N 4, P/D 8, tau <= 6), conditioned on seed 0's initial state at
D = 400, on the recipe's own grid (135 steps of at most 0.05) and numerics (8000 samples, tol 1e-2),
solved with 100 (the recipe's) to 3200 response samples and several Monte Carlo seeds, with the
plain response estimate (the recipe's) and with the direct-term control variate
(``direct_control``); beside it, simulations of seeds 0-2 at D = 400 and 1600.

    python docs/dmft_numerics.py [--out docs/dmft_numerics.json]

About 35 minutes on the 2-core machine (a solve at 3200 response samples takes 5 minutes and
7.5 GB). Prints one line per solve and per simulation and writes
the numbers (grokking time: first tau with test loss <= 0.1 x its initial value; the test loss
relative to its initial value at a few times) to the JSON file that docs/theory.md quotes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import groklab
from groklab.recipes.theory import ETA, GENERALISED, P_OVER_D, SETTINGS, _numerics, initial_state, theory_config
from groklab.theory import dmft

SETTING = "rich"
TIMES = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
# (direct_control, response samples, Monte Carlo seeds)
PLAN = ((False, 100, range(5)), (False, 400, range(5)), (False, 1600, range(3)), (False, 3200, range(2)),
        (True, 100, range(5)), (True, 400, range(3)), (True, 1600, range(2)))


def summary(tau: np.ndarray, rel: np.ndarray) -> dict:
    """Grokking time (None if never within the horizon) and the relative test loss at TIMES."""
    hit = np.nonzero(rel <= GENERALISED)[0]
    return {"t_grok": float(tau[hit[0]]) if len(hit) else None,
            "test_rel": {f"{t:g}": round(float(np.interp(t, tau, rel)), 4) for t in TIMES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "dmft_numerics.json")
    args = parser.parse_args()
    s = SETTINGS[SETTING]
    state = initial_state(theory_config(400, P_OVER_D * 400, s["alpha"], s["eps"], s["horizon"]))
    solves, simulations = [], []
    for direct_control, response_samples, seeds in PLAN:
        for seed in seeds:
            started = time.perf_counter()
            sol = dmft(alpha=s["alpha"], eps=s["eps"], N=len(state["m0"]), p=P_OVER_D, eta=ETA, horizon=s["horizon"],
                       steps=int(s["steps"]), first_step=0.02, max_step=s["max_step"], m0=state["m0"], C0=state["C0"],
                       beta_sq=state["beta_sq"], window=5, seed=seed, direct_control=direct_control,
                       **dict(_numerics(False), response_samples=response_samples))
            row = {"direct_control": direct_control, "response_samples": response_samples, "seed": seed,
                   **summary(sol.tau, sol.test_loss / sol.test_loss[0]),
                   "seconds": round(time.perf_counter() - started, 1)}
            solves.append(row)
            print("dmft", row, flush=True)
    for D in (400, 1600):
        for seed in range(3):
            config = theory_config(D, P_OVER_D * D, s["alpha"], s["eps"], s["horizon"]).override(f"seed={seed}")
            with tempfile.TemporaryDirectory() as tmp:
                m = groklab.run(config, out=Path(tmp) / "run", progress=False).metrics
            rel = (m["test_loss"] / m["test_loss"].iloc[0]).to_numpy()
            row = {"D": D, "seed": seed, **summary(m["step"].to_numpy() / D, rel)}
            simulations.append(row)
            print("simulation", row, flush=True)
    args.out.write_text(json.dumps({"setting": SETTING, **s, "N": len(state["m0"]), "p": P_OVER_D,
                                    "numerics": _numerics(False), "dmft": solves, "simulations": simulations},
                                   indent=1) + "\n")


if __name__ == "__main__":
    main()
