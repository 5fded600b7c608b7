"""The ``groklab`` command line.

    groklab run [PRESET] [--set key=value ...] [--out DIR] [--overwrite]
    groklab run --resume DIR [--set train.steps=N]
    groklab presets
    groklab reproduce NAME [--quick] [--out DIR] [--set key=value ...] [--seeds N|LIST] [--jobs N]
    groklab reproduce --list
    groklab sweep [PRESET] --grid KEY=V1,V2 [--grid KEY=A..B ...] [--set ...] [--out DIR] [--jobs N]
                  [--executor local|ray [--address ADDR] [--chunk N]]
    groklab runs [ROOT] [--query SQL]
    groklab plot phase DIR --x KEY --y KEY [--value COLUMN]  |  groklab plot curves DIR --by KEY
    groklab show DIR [--json]
    groklab theory dmft --alpha A --eps E --N N --p P_OVER_D [--horizon TAU ...] [--out FILE]
    groklab theory online --alpha A --eps E --D D [--horizon TAU ...] [--out FILE]

Bad input prints one line ``groklab: error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional, Sequence

from groklab.errors import GroklabError, RunInterrupted

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise GroklabError(f"{message} (see '{self.prog} --help')")


def _add_set(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE ...``: one flag may take several assignments and may be repeated."""
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help=f"{help} (several after one --set, or --set repeated; name the preset or recipe "
                             "before --set)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="groklab", description="Run, measure and control grokking experiments.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    run = sub.add_parser("run", help="run one experiment (default preset if none is named)")
    run.add_argument("preset", nargs="?", help="preset name (see 'groklab presets'); default: mlp-add")
    _add_set(run, "override config keys, e.g. --set optim.lr=0.01 seed=1")
    run.add_argument("--config", help="start from this config.json instead of a preset")
    run.add_argument("--out", help="run directory (default: runs/<preset>-<timestamp>)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    run.add_argument("--resume", metavar="DIR", help="continue the killed run in DIR from its last checkpoint")
    run.add_argument("--checkpoint", type=int, metavar="STEP",
                     help="with --resume: start from the checkpoint of this step instead of the newest")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument("--print-config", action="store_true", help="print the resolved config and exit")

    sub.add_parser("presets", help="list the shipped presets, one line each")

    rep = sub.add_parser("reproduce", help="run the recipe behind one figure of a paper")
    rep.add_argument("name", nargs="?", help="recipe name (see --list)")
    rep.add_argument("--list", action="store_true", help="list the recipes with the claim each tests")
    rep.add_argument("--quick", action="store_true", help="the small size (minutes on a laptop CPU)")
    rep.add_argument("--out", help="output directory (default: runs/reproduce/NAME[-quick])")
    rep.add_argument("--overwrite", action="store_true", help="replace an earlier reproduction in --out")
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_set(rep, "override config keys in every run of the recipe (treatment and control)")
    rep.add_argument("--seeds", help="seeds to run instead of the recipe's: a count N (0..N-1) or a list 0,3,7")
    rep.add_argument("--jobs", type=int, default=1, help="train this many runs at once in worker processes")
    rep.add_argument("--pack", type=int, default=1,
                     help="train up to this many runs that differ only in seed, lr, weight decay, init scale, alpha "
                          "(or the committee's eps) as one batched model (an ensemble), as many as fit half the free "
                          "memory ($GROKLAB_PACK_MEMORY GiB if set) and split evenly over --jobs; 1 = every run alone "
                          "(default)")
    rep.add_argument("--reuse", action="store_true",
                     help="read finished runs of the same config in --out instead of retraining (restart a killed "
                          "reproduction, or judge earlier runs with this code)")

    sw = sub.add_parser("sweep", help="run a preset over a grid of config values, one run directory per point")
    sw.add_argument("preset", nargs="?", help="preset name (default: mlp-add)")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2|A..B",
                    help="a grid axis, e.g. model.alpha=0.25,1,4 or seed=0..7 (repeatable)")
    sw.add_argument("--grid-file", help="JSON object of grid axes, e.g. {\"seed\": [0, 1]}")
    _add_set(sw, "override config keys at every point")
    sw.add_argument("--out", help="sweep directory (default: runs/sweep-<preset>-<timestamp>); rerun to resume")
    sw.add_argument("--jobs", type=int, default=1, help="train this many points at once in worker processes")
    sw.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="local: this machine (--jobs); ray: a Ray cluster, in chunks of points (pip install "
                         "'groklab[ray]'; --out must be on storage every node sees)")
    sw.add_argument("--address", help="ray: the cluster to use, e.g. auto or ray://HEAD:10001 (default: RAY_ADDRESS, "
                                      "else a local Ray instance)")
    sw.add_argument("--chunk", type=int, help="ray: packs of points per Ray task (default: about two tasks per "
                                              "cluster CPU)")
    sw.add_argument("--pack", type=int, default=1,
                    help="train up to this many points that differ only in seed, lr, weight decay, init scale, "
                         "alpha (or the committee's eps) as one batched model (an ensemble), as many as fit half the "
                         "free memory ($GROKLAB_PACK_MEMORY GiB if set) and split evenly over --jobs; 1 = every point "
                         "alone (default)")
    sw.add_argument("--no-progress", action="store_true", help="no progress bar")

    rn = sub.add_parser("runs", help="list the runs under a folder, or query them with SQL (DuckDB)")
    rn.add_argument("root", nargs="?", default="runs")
    rn.add_argument("--query", help="SQL over the tables runs and metrics, e.g. "
                    "'SELECT \"model.alpha\", median(t_test_acc) FROM runs GROUP BY 1'")
    rn.add_argument("--csv", action="store_true", help="print CSV instead of a table")

    pl = sub.add_parser("plot", help="figures of a sweep: a phase diagram or curves by a grid key")
    pl.add_argument("kind", choices=["phase", "curves"])
    pl.add_argument("dir", help="sweep (or any) directory holding run directories")
    pl.add_argument("--x", help="phase: grid key on the x axis")
    pl.add_argument("--y", help="phase: grid key on the y axis")
    pl.add_argument("--value", default="grok_delay", help="phase: summary column to colour by (default grok_delay)")
    pl.add_argument("--by", help="curves: grid key, one colour per value")
    pl.add_argument("--column", default="test_acc", help="curves: metrics column (default test_acc)")
    pl.add_argument("--out", help="PNG path (default: DIR/phase-X-Y.png or DIR/curves-BY.png)")

    show = sub.add_parser("show", help="print the summary of a run directory")
    show.add_argument("dir")
    show.add_argument("--json", action="store_true", help="print summary.json as it is")
    _add_theory_parser(sub)
    return parser


# ----------------------------------------------------------------------------- groklab theory
def _add_theory_parser(sub) -> None:
    """``groklab theory dmft|online``: the toy model's theory curves (docs/theory.md)."""
    th = sub.add_parser("theory", help="theory curves of the lazy-to-rich toy model (DMFT at finite P/D, online limit)")
    tsub = th.add_subparsers(dest="theory_command", parser_class=_Parser, metavar="WHICH")
    dm = tsub.add_parser("dmft", help="finite-P/D DMFT: train/test loss and alignment over tau = step/D")
    on = tsub.add_parser("online", help="infinite-data (online) limit, infinite width: the two-scalar flow")
    for q in (dm, on):
        q.add_argument("--alpha", type=float, required=True, help="output scale")
        q.add_argument("--eps", type=float, required=True, help="quadratic weight of phi = h + eps/2 h^2")
        q.add_argument("--eta", type=float, default=1.0, help="learning rate in units of N / alpha^2 (default 1)")
        q.add_argument("--horizon", type=float, default=10.0, help="final time in tau = step / D (default 10)")
        q.add_argument("--out", help="write the curves as JSON to this file")
        q.add_argument("--json", action="store_true", help="print the curves as JSON instead of a table")
    dm.add_argument("--N", type=int, required=True, help="hidden neurons (fixed as D grows; cost ~ N^3)")
    dm.add_argument("--p", type=float, required=True, help="P / D, training points per input dimension")
    dm.add_argument("--steps", type=int, default=80, help="time steps of the grid (default 80)")
    dm.add_argument("--first-step", type=float, default=None, help="first step of a geometric grid (default uniform)")
    dm.add_argument("--max-step", type=float, default=None, help="cap on the grid's steps")
    dm.add_argument("--D-init", type=float, default=400.0,
                    help="dimension whose typical initial overlap 1/sqrt(D) seeds the escape from the saddle (default 400)")
    dm.add_argument("--samples", type=int, default=10000, help="Monte Carlo samples (default 10000)")
    dm.add_argument("--response-samples", type=int, default=400, help="samples for the responses (default 400)")
    dm.add_argument("--direct-control", action="store_true",
                    help="control variates for the responses (R_l's direct terms and R_z from all samples); "
                         "not an error bar against the default: which of the two groks earlier depends on the "
                         "setting and the draws (docs/theory.md)")
    dm.add_argument("--damping", type=float, default=0.5, help="damped update step (default 0.5)")
    dm.add_argument("--tol", type=float, default=2e-3, help="residual at which the iteration stops (default 2e-3)")
    dm.add_argument("--max-iter", type=int, default=60, help="iterations per time window (default 60)")
    dm.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo draws")
    dm.add_argument("--quiet", action="store_true", help="do not print the residual of each iteration")
    on.add_argument("--D", type=int, required=True, help="input dimension (the flow is exact at any D, N = infinity)")
    on.add_argument("--points", type=int, default=41, help="times reported (default 41)")


def _cmd_theory(args) -> int:
    import json

    import numpy as np

    if args.theory_command == "dmft":
        from groklab.theory import dmft

        def report(stage, it, res):
            if not args.quiet:
                print(f"{stage} iteration {it}: residual {res:.3g}", file=sys.stderr)

        sol = dmft(alpha=args.alpha, eps=args.eps, N=args.N, p=args.p, eta=args.eta, horizon=args.horizon,
                   steps=args.steps, first_step=args.first_step, max_step=args.max_step, D_init=args.D_init,
                   samples=args.samples, response_samples=args.response_samples,
                   direct_control=args.direct_control, damping=args.damping,
                   tol=args.tol, max_iter=args.max_iter, seed=args.seed, callback=report)
        data = sol.to_dict()
        rows = [("tau", sol.tau), ("train_loss", sol.train_loss), ("test_loss", sol.test_loss),
                ("cosine_mean", np.abs(sol.cosine).mean(1))]
    elif args.theory_command == "online":
        from groklab.theory.online import solve_two_scalar_flow

        if not args.alpha > 0 or not args.eps > 0 or not args.eta > 0 or not args.horizon > 0 or args.D < 1 \
                or args.points < 2:
            raise GroklabError("theory online: alpha, eps, eta, horizon must be > 0, D >= 1 and points >= 2")
        tau = np.linspace(0.0, args.horizon, args.points)
        # Time in GD steps = tau D; eta_eff = eta / alpha^2 for the learning rate eta N / alpha^2.
        sol = solve_two_scalar_flow(D=args.D, B=float(args.D), alpha=args.alpha, eps=args.eps,
                                    eta_eff=args.eta / args.alpha ** 2, t_eval=tau * args.D)
        data = {"tau": tau.tolist(), "step": sol.t.tolist(), "loss": sol.loss.tolist(), "a": sol.a.tolist(),
                "b": sol.b.tolist(), "params": {"alpha": args.alpha, "eps": args.eps, "eta": args.eta, "D": args.D}}
        rows = [("tau", tau), ("step", sol.t), ("loss", sol.loss), ("b_over_D", sol.b / args.D)]
    else:
        raise GroklabError("theory: say which, 'dmft' or 'online' (see 'groklab theory --help')")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(data, f)
    if args.json:
        print(json.dumps(data))
    else:
        print("  ".join(f"{name:>12}" for name, _ in rows))
        n = len(rows[0][1])
        for i in sorted(set(np.linspace(0, n - 1, min(n, 21)).astype(int))):
            print("  ".join(f"{float(col[i]):12.5g}" for _, col in rows))
    return 0


def _cmd_run(args) -> int:
    import groklab
    from groklab.config import Config

    if args.resume:
        if args.preset or args.config or args.out:
            raise GroklabError("--resume DIR takes no preset, --config or --out: the run directory holds its config")
        steps = None
        for assignment in args.overrides:
            key, value = groklab.config.parse_override(assignment)
            if key != "train.steps" or not isinstance(value, int):
                raise GroklabError(f"--resume allows only --set train.steps=N (an integer), got '{assignment}'")
            steps = value
        result = groklab.resume(args.resume, progress=not args.no_progress, steps=steps, checkpoint=args.checkpoint)
    else:
        if args.checkpoint is not None:
            raise GroklabError("--checkpoint STEP goes with --resume DIR")
        if args.config and args.preset:
            raise GroklabError("give a preset or --config FILE, not both")
        if args.config:
            try:
                text = open(args.config).read()
            except OSError as e:
                raise GroklabError(f"cannot read --config {args.config}: {e.strerror}") from None
            config = Config.from_json(text)
            filled = groklab.config.missing_keys(text)
            if filled:  # --config promises an exact rerun: say what the file did not pin down
                shown = ", ".join(filled[:8]) + (f" and {len(filled) - 8} more" if len(filled) > 8 else "")
                print(f"groklab: note: {args.config} does not set {len(filled)} key(s); took their defaults: {shown}",
                      file=sys.stderr)
        else:
            config = groklab.load_preset(args.preset or groklab.DEFAULT_PRESET)
        config = config.override(*args.overrides)
        if args.print_config:
            print(config.to_json())
            return 0
        result = groklab.run(config, out=args.out, overwrite=args.overwrite, progress=not args.no_progress)
    _print_summary(result)
    return 0


def _print_summary(result) -> None:
    s = result.summary
    fmt = lambda v: "never" if v is None else v  # noqa: E731
    num = lambda v, spec=".3g": "nan" if v is None else format(v, spec)  # noqa: E731  (JSON stores NaN as null)
    regression = s["train_acc"] is None or s["train_acc"] != s["train_acc"]  # null / NaN: no accuracy
    if regression:  # grokking times from the losses (0.1 x initial)
        final = f"  final   train loss {num(s['train_loss'])} | test loss {num(s['test_loss'])}\n"
        times = f"  train loss fell 10x at step {fmt(s['t_train_loss'])}, test loss at step {fmt(s['t_test_loss'])}"
    else:
        final = (f"  final   train acc {num(s['train_acc'], '.3f')} loss {num(s['train_loss'])} | test acc "
                 f"{num(s['test_acc'], '.3f')} loss {num(s['test_loss'])}\n")
        times = (f"  fit at step {fmt(s['t_train_acc'])}, generalised at step {fmt(s['t_test_acc'])}"
                 + (f" (x{s['grok_ratio']:.1f} later)" if s.get("grok_ratio") else ""))
    if s.get("diverged"):
        stopped = "stopped there" if result.config.train.on_divergence == "stop" else "training went on"
        times += f"\n  diverged: training loss not finite at step {s['diverged_step']} ({stopped})"
    print(
        f"\n{result.config.name}: {s['task']}, {s['steps']} steps in {s['wall_seconds']:.1f} s on {s['device']}\n"
        + final
        + times
        + f"\n  run directory {result.dir}\n  curves        {result.curves}\n  summary       {result.dir / 'summary.json'}"
    )


def _cmd_presets(args) -> int:
    from groklab.presets import DEFAULT_PRESET, list_presets

    presets = list_presets()
    width = max(map(len, presets))
    for name, description in presets.items():
        marker = "*" if name == DEFAULT_PRESET else " "
        print(f"{marker} {name:<{width}}  {description}")
    return 0


def _cmd_reproduce(args) -> int:
    from groklab.recipes import list_recipes, reproduce

    if args.list:
        recipes = list_recipes()
        width = max(map(len, recipes))
        for name, summary in recipes.items():
            print(f"{name:<{width}}  {summary}")
        return 0
    if not args.name:
        raise GroklabError("name a recipe (see 'groklab reproduce --list')")
    if args.jobs < 1:
        raise GroklabError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.pack < 1:
        raise GroklabError(f"--pack must be at least 1 (got {args.pack})")
    verdict = reproduce(args.name, out=args.out, quick=args.quick, overwrite=args.overwrite, progress=not args.no_progress,
                        overrides=args.overrides, seeds=_parse_seeds(args.seeds), jobs=args.jobs, reuse=args.reuse,
                        pack=args.pack)
    status = "SUPPORTED" if verdict["supported"] else "NOT SUPPORTED"
    print(f"\n{verdict['recipe']}: {status}\n  claim: {verdict['claim']}")
    for part in ("treatment", "control"):
        for c in verdict.get(part, {}).get("criteria", []):
            print(f"  {part:<9} {'holds ' if c['holds'] else 'FAILS '} {c['name']}: {c['detail']}")
    print(f"  notes: {verdict['notes']}")
    return 0


def _parse_seeds(text: Optional[str]) -> Optional[list[int]]:
    """``"5"`` -> [0..4]; ``"0,3,7"`` -> [0, 3, 7]; None stays None."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise GroklabError(f"--seeds takes a count or a comma-separated list of integers (got {text!r})") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise GroklabError(f"--seeds count must be at least 1 (got {values[0]})")
        return list(range(values[0]))
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise GroklabError(f"--seeds needs distinct non-negative integers (got {text!r})")
    return values


def _cmd_sweep(args) -> int:
    import time

    import groklab
    from groklab.sweeps import grid_of, sweep

    if args.jobs < 1:
        raise GroklabError(f"--jobs must be at least 1 (got {args.jobs})")
    if args.chunk is not None and args.chunk < 1:
        raise GroklabError(f"--chunk must be at least 1 (got {args.chunk})")
    if args.executor != "ray" and (args.address or args.chunk):
        raise GroklabError("--address and --chunk apply to --executor ray")
    grid = grid_of(args.grid, args.grid_file)
    base = groklab.load_preset(args.preset or groklab.DEFAULT_PRESET).override(*args.overrides)
    out = args.out or f"runs/sweep-{args.preset or groklab.DEFAULT_PRESET}-{time.strftime('%Y%m%d-%H%M%S')}"
    document = sweep(base, grid, out, workers=args.jobs, progress=not args.no_progress, executor=args.executor,
                     address=args.address, chunk=args.chunk, pack=args.pack)
    counts = {s: sum(p["status"] == s for p in document["points"]) for s in ("done", "diverged", "failed")}
    print(f"\nsweep {out}: {len(document['points'])} points: {counts['done']} done, {counts['diverged']} diverged, "
          f"{counts['failed']} failed")
    for p in document["points"]:
        if p["status"] == "failed":
            print(f"  failed {p['name']}: {p['error']}")
    print(f"  list or query them: groklab runs {out}")
    return 0


def _cmd_runs(args) -> int:
    import pandas as pd

    from groklab.store.index import query, runs

    if args.query:
        table = query(args.root, args.query)
    else:
        table = runs(args.root)
        if table.empty:
            print(f"no finished runs under {args.root}")
            return 0
        keep = ["dir", "task.name", "model.name", "seed", "steps", "train_acc", "test_acc", "t_train_acc",
                "t_test_acc", "diverged"]
        table = table[[c for c in keep if c in table.columns]]
    if args.csv:
        print(table.to_csv(index=False), end="")
    else:
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
            print(table.to_string(index=False))
    return 0


def _cmd_plot(args) -> int:
    import groklab
    from groklab.report.sweeps import curves_by_figure, phase_figure
    from groklab.store.index import runs

    table = runs(args.dir)
    if table.empty:
        raise GroklabError(f"no finished runs under {args.dir}")
    if args.kind == "phase":
        if not (args.x and args.y):
            raise GroklabError("plot phase needs --x KEY and --y KEY (grid keys, e.g. model.alpha and model.eps)")
        out = args.out or f"{args.dir}/phase-{args.x}-{args.y}.png"
        phase_figure(table, args.x, args.y, args.value, out)
    else:
        if not args.by:
            raise GroklabError("plot curves needs --by KEY (a grid key, e.g. model.alpha)")
        out = args.out or f"{args.dir}/curves-{args.by}.png"
        metrics = {d: groklab.load(d).metrics for d in table["dir"]}
        curves_by_figure(table, metrics, args.by, args.column, out)
    print(out)
    return 0


def _cmd_show(args) -> int:
    import json

    import groklab

    run = groklab.load(args.dir)
    if args.json:
        print(json.dumps(run.summary, indent=2))
    else:
        _print_summary(run)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``groklab`` command; returns the exit code."""
    try:
        args = _build_parser().parse_args(argv)
        handler = {"run": _cmd_run, "presets": _cmd_presets, "reproduce": _cmd_reproduce, "show": _cmd_show,
                   "sweep": _cmd_sweep, "runs": _cmd_runs, "plot": _cmd_plot,
                   "theory": _cmd_theory}.get(args.command)
        if handler is None:
            _build_parser().print_help()
            return EXIT_BAD_INPUT
        return handler(args)
    except GroklabError as e:
        print(f"groklab: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # the filesystem said no: permissions, read-only, full disk, a file where a folder goes
        where = f": {e.filename}" if e.filename else ""
        print(f"groklab: error: {e.strerror or type(e).__name__}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RunInterrupted as e:
        print(f"\ngroklab: interrupted; saved a checkpoint at step {e.checkpoint_step}. Resume with:\n"
              f"  groklab run --resume {shlex.quote(str(e.run_dir))}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ngroklab: interrupted before training started; nothing to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
