"""How much of the DMFT's prediction is its own Monte Carlo: a setting of the recipe
`theory-vs-simulation` (default "rich": alpha 0.5, eps 1, N 4, P/D 8, tau <= 6), conditioned on
seed 0's initial state at D = 400, on the recipe's own grid for that setting and numerics (8000
samples, tol 1e-2), solved with 100 (the recipe's) to 3200 response samples and several Monte
Carlo seeds, with the plain response estimate (the recipe's) and with the direct-term control
variate (``direct_control``); beside it, simulations of seeds 0-2 at D = 400 and 1600.

    python docs/dmft_numerics.py [--setting rich|lazier|stalls] [--plan full|short|knobs|spread|eight]
                                 [--init-seed 0] [--init-D 400] [--dims 400 1600] [--sim-seeds 0 1 2]
                                 [--out FILE]

``--plan full`` (the default): plain at 100, 400, 1600 and 3200 response samples, control
variates at 100, 400 and 1600; about 35 minutes for "rich" on the 2-core machine (a solve at
3200 response samples takes 5 minutes and 7.5 GB). ``--plan short``: both estimators at 100,
400 and 1600. ``--plan knobs``: the plain estimate at 1600 response samples, then with one
numerical knob changed at a time (tol 1e-3; 32000 samples; 6400 response samples), 4 seeds each;
``--plan spread``: Monte Carlo seeds 4-7 at 1600 and 6400 response samples; ``--plan eight``:
seeds 0-7 at 1600. ``--init-seed S`` / ``--init-D D`` condition on the initial state of
simulation seed S at dimension D instead of seed 0's at D = 400; ``--dims`` and ``--sim-seeds``
choose the simulations. Prints one line per solve and per simulation and writes the numbers (grokking
time: first tau with test loss <= 0.1 x its initial value; the test loss relative to its
initial value at a few times) to the JSON file that docs/theory.md quotes
(``docs/dmft_numerics.json`` for "rich", the full plan and seed 0's initial state, else
``docs/dmft_numerics_<setting>_<plan>_init<S>_D<D>.json`` without the parts that are the defaults).
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


def _solves(seeds, direct_control: bool, response_samples: int, **numerics):
    """One plan entry: a solve per Monte Carlo seed, with ``numerics`` (``samples``, ``tol``)
    changed from the recipe's where given (``samples`` at least ``response_samples``)."""
    return seeds, dict(direct_control=direct_control, response_samples=response_samples, **numerics)


PLANS = {
    "full": (_solves(range(5), False, 100), _solves(range(5), False, 400), _solves(range(3), False, 1600),
             _solves(range(2), False, 3200), _solves(range(5), True, 100), _solves(range(3), True, 400),
             _solves(range(2), True, 1600)),
    "short": (_solves(range(3), False, 100), _solves(range(3), False, 400), _solves(range(2), False, 1600),
              _solves(range(3), True, 100), _solves(range(3), True, 400), _solves(range(2), True, 1600)),
    # one knob at a time from plain at 1600 response samples: the fixed point's tolerance, the
    # samples behind the order parameters, the response samples
    "knobs": (_solves(range(4), False, 1600), _solves(range(4), False, 1600, tol=1e-3),
              _solves(range(4), False, 1600, samples=32000), _solves(range(4), False, 6400)),
    # four more Monte Carlo seeds for the knobs plan's first and last rows: does the spread across
    # seeds shrink from 1600 to 6400 response samples? (4 seeds each cannot tell)
    "spread": (_solves(range(4, 8), False, 1600), _solves(range(4, 8), False, 6400)),
    "eight": (_solves(range(8), False, 1600),),  # a mean over draws, for another initial state
}


def times(horizon: float) -> tuple[float, ...]:
    """Where the relative test loss is reported: the same fractions of every setting's horizon
    (for "rich", tau = 0.5, 1, 2, 3, 4, 6)."""
    return tuple(round(horizon * f, 3) for f in (1 / 12, 1 / 6, 1 / 3, 1 / 2, 2 / 3, 1.0))


def summary(tau: np.ndarray, rel: np.ndarray, at: tuple[float, ...]) -> dict:
    """Grokking time (None if never within the horizon) and the relative test loss at times ``at``."""
    hit = np.nonzero(rel <= GENERALISED)[0]
    return {"t_grok": float(tau[hit[0]]) if len(hit) else None,
            "test_rel": {f"{t:g}": round(float(np.interp(t, tau, rel)), 4) for t in at}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="rich")
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--init-seed", type=int, default=0, help="the simulation seed whose initial state "
                        "the solves are conditioned on")
    parser.add_argument("--init-D", type=int, default=400, help="the dimension of that simulation")
    parser.add_argument("--dims", type=int, nargs="*", default=[400, 1600], help="simulated D (none: no simulations)")
    parser.add_argument("--sim-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    suffix = "".join(f"_{v}" for v, default in ((args.setting, "rich"), (args.plan, "full"),
                                                 (f"init{args.init_seed}", "init0"), (f"D{args.init_D}", "D400"))
                     if v != default)
    out = args.out or Path(__file__).parent / f"dmft_numerics{suffix}.json"
    s = SETTINGS[args.setting]
    at = times(s["horizon"])
    state = initial_state(theory_config(args.init_D, P_OVER_D * args.init_D, s["alpha"], s["eps"], s["horizon"])
                          .override(f"seed={args.init_seed}"))
    solves, simulations = [], []
    for seeds, knobs in PLANS[args.plan]:
        numerics = {**_numerics(False), **knobs}
        numerics["samples"] = max(numerics["samples"], numerics["response_samples"])
        for seed in seeds:
            started = time.perf_counter()
            sol = dmft(alpha=s["alpha"], eps=s["eps"], N=len(state["m0"]), p=P_OVER_D, eta=ETA, horizon=s["horizon"],
                       steps=int(s["steps"]), first_step=0.02, max_step=s["max_step"], m0=state["m0"], C0=state["C0"],
                       beta_sq=state["beta_sq"], window=5, seed=seed, **numerics)
            row = {**numerics, "seed": seed,
                   **summary(sol.tau, sol.test_loss / sol.test_loss[0], at),
                   "seconds": round(time.perf_counter() - started, 1)}
            solves.append(row)
            print("dmft", row, flush=True)
    for D in args.dims:
        for seed in args.sim_seeds:
            config = theory_config(D, P_OVER_D * D, s["alpha"], s["eps"], s["horizon"]).override(f"seed={seed}")
            with tempfile.TemporaryDirectory() as tmp:
                m = groklab.run(config, out=Path(tmp) / "run", progress=False).metrics
            rel = (m["test_loss"] / m["test_loss"].iloc[0]).to_numpy()
            row = {"D": D, "seed": seed, **summary(m["step"].to_numpy() / D, rel, at)}
            simulations.append(row)
            print("simulation", row, flush=True)
    out.write_text(json.dumps({"setting": args.setting, "plan": args.plan, "init_seed": args.init_seed,
                               "init_D": args.init_D, **s,
                               "N": len(state["m0"]), "p": P_OVER_D, "numerics": _numerics(False), "dmft": solves,
                               "simulations": simulations}, indent=1) + "\n")


if __name__ == "__main__":
    main()
