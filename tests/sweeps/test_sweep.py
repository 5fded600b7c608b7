"""groklab sweep: grid parsing, one run directory per point, restart after a kill without
redoing finished points, failures recorded; the runs index and sweep figures."""

import json

import pandas as pd
import pytest

import groklab
from groklab import GroklabError
from groklab.cli import main
from groklab.store.index import query, runs
from groklab.sweeps import read_sweep, sweep
from groklab.sweeps.grid import grid_points, parse_grid, point_name
from tests.conftest import Killed, tiny

BASE = tiny(train={"steps": 30, "eval_every": 10, "checkpoint_every": 10})


def test_grids_parse_lists_and_ranges():
    grid = parse_grid(["model.width=16,32", "seed=0..2"])
    assert grid == {"model.width": [16, 32], "seed": [0, 1, 2]}
    points = grid_points(grid)
    assert len(points) == 6 and points[0] == ("model.width=16", "seed=0")
    assert point_name(points[-1]) == "model.width=32_seed=2"
    for bad in (["seed"], ["seed=3..1"], ["seed=1", "seed=2"], ["seed="]):
        with pytest.raises(GroklabError):
            parse_grid(bad)


def test_a_sweep_makes_one_run_per_point_and_skips_finished_ones(tmp_path):
    grid = {"optim.lr": [0.01, 1e20], "seed": [0, 1]}  # lr 1e20 diverges: a result, not a crash
    doc = sweep(BASE, grid, tmp_path / "s", progress=False)
    status = {p["name"]: p["status"] for p in doc["points"]}
    assert status == {"optim.lr=0.01_seed=0": "done", "optim.lr=0.01_seed=1": "done",
                      "optim.lr=1e+20_seed=0": "diverged", "optim.lr=1e+20_seed=1": "diverged"}
    assert read_sweep(tmp_path / "s") == doc
    stamp = (tmp_path / "s" / "optim.lr=0.01_seed=0" / "summary.json").stat().st_mtime_ns
    again = sweep(BASE, grid, tmp_path / "s", progress=False)
    assert (tmp_path / "s" / "optim.lr=0.01_seed=0" / "summary.json").stat().st_mtime_ns == stamp
    assert [p["status"] for p in again["points"]] == [p["status"] for p in doc["points"]]


def test_a_killed_point_resumes_to_the_uninterrupted_metrics(tmp_path, monkeypatch):
    from groklab.training import loop

    grid = {"seed": [0]}
    real, calls = loop.train_step, {"n": 0}

    def dying(*args):
        calls["n"] += 1
        if calls["n"] == 25:  # after the step-20 checkpoint, as a kill -9 would leave it
            raise Killed
        return real(*args)

    monkeypatch.setattr(loop, "train_step", dying)
    with pytest.raises(Killed):
        groklab.run(BASE.override("seed=0"), out=tmp_path / "s" / "seed=0", progress=False)
    monkeypatch.setattr(loop, "train_step", real)
    sweep(BASE, grid, tmp_path / "s", progress=False)
    whole = groklab.run(BASE.override("seed=0"), out=tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(groklab.load(tmp_path / "s" / "seed=0").metrics, whole.metrics, check_exact=True)


def test_packs_group_compatible_fresh_points_in_order_up_to_their_size():
    from groklab.sweeps.executor import Job, pack_jobs

    def job(*overrides, resume=False):
        return Job(BASE.override(*overrides).to_json(), "unused", resume=resume)

    jobs = [job("seed=0"), job("seed=1", "optim.lr=0.1"), job("model.width=16"), job("seed=2"),
            job("seed=3", resume=True), job("seed=4", "model.alpha=2"), job("seed=5"),
            job("interventions.abelian.weight=1"), job("seed=6", "model.alpha=3")]
    # width changes shapes, a resumed point continues alone, interventions are not batched, alpha != 1
    # adds the laziness wrapper (its own group), a full pack starts a new one
    assert pack_jobs(jobs, 3) == [[0, 1, 3], [2], [4], [5, 8], [6], [7]]
    assert pack_jobs(jobs, 1) == [[i] for i in range(len(jobs))]


def test_packs_are_spread_over_the_workers():
    from groklab.sweeps.executor import Job, pack_jobs

    jobs = [Job(BASE.override(f"seed={s}").to_json(), "unused") for s in range(10)]
    assert pack_jobs(jobs, 16) == [list(range(10))]  # one process: one ensemble
    assert pack_jobs(jobs, 16, workers=2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]  # not one pack and an idle worker
    assert pack_jobs(jobs, 16, workers=3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert pack_jobs(jobs, 2, workers=2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]  # the size still caps


def test_packs_hold_only_as_many_members_as_fit_the_memory_budget(monkeypatch):
    from groklab.sweeps.executor import Job, pack_jobs
    from groklab.training.ensemble import member_bytes

    jobs = [Job(BASE.override(f"seed={s}").to_json(), "unused") for s in range(5)]
    monkeypatch.setenv("GROKLAB_PACK_MEMORY", str(2.5 * member_bytes(BASE) / 2**30))
    assert pack_jobs(jobs, 4) == [[0, 1], [2, 3], [4]]
    monkeypatch.setenv("GROKLAB_PACK_MEMORY", "lots")
    with pytest.raises(GroklabError, match="GROKLAB_PACK_MEMORY"):
        pack_jobs(jobs, 4)


def test_a_member_s_memory_estimate_counts_the_activations_its_step_saves():
    from groklab.training.ensemble import member_bytes

    # D > N, so the committee computes its (P, N) preactivations (not the quadratic form)
    toy = groklab.load_preset("poly").override("task.d=100", "model.width=50", "task.n_test=10")
    small, large = (member_bytes(toy.override(f"task.n_train={P}")) for P in (100, 1100))
    # 1000 more training points: their (1000, 100) inputs and targets, held twice (the trainer's and
    # the stacked full batch), and at least their (1000, 50) preactivations saved for backward
    assert large - small >= 2 * 1000 * (100 + 1) * 4 + 1000 * 50 * 4


def test_a_packed_sweep_writes_what_an_unpacked_one_writes(tmp_path, capsys):
    grid = {"optim.lr": [0.01, 1e20], "seed": [0, 1]}  # lr 1e20 diverges inside the pack; the others go on
    alone = sweep(BASE, grid, tmp_path / "alone", progress=False)
    packed = sweep(BASE, grid, tmp_path / "packed", progress=False, pack=3)  # packs of 3 and 1
    assert [(p["name"], p["status"]) for p in packed["points"]] == [(p["name"], p["status"]) for p in alone["points"]]
    for p in alone["points"]:
        a, b = (sorted(q.relative_to(d) for q in d.rglob("*")) for d in (tmp_path / "alone" / p["dir"],
                                                                         tmp_path / "packed" / p["dir"]))
        assert a == b, p["name"]
        if p["status"] == "done":
            columns = ["step", "train_loss", "test_acc"]
            pd.testing.assert_frame_equal(groklab.load(tmp_path / "packed" / p["dir"]).metrics[columns],
                                          groklab.load(tmp_path / "alone" / p["dir"]).metrics[columns],
                                          check_exact=False, rtol=1e-4, atol=2e-5)
    assert main(["sweep", "--grid", "seed=0", "--out", str(tmp_path / "bad"), "--pack", "0"]) == 2
    assert "pack" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    base = tiny(task={"name": "images", "dataset": "mnist", "path": str(tmp_path / "nowhere"), "n_train": 10,
                      "n_test": 10}, train={"steps": 5, "eval_every": 5})
    doc = sweep(base, {"seed": [0, 1]}, tmp_path / "s", progress=False)
    assert [p["status"] for p in doc["points"]] == ["failed", "failed"]
    assert "nowhere" in doc["points"][0]["error"] and "\n" not in doc["points"][0]["error"]


def test_a_point_holding_another_run_is_refused_before_anything_runs(tmp_path):
    groklab.run(BASE.override("seed=5"), out=tmp_path / "s" / "seed=0", progress=False)
    with pytest.raises(GroklabError, match="another config"):
        sweep(BASE, {"seed": [0, 1]}, tmp_path / "s", progress=False)
    assert not (tmp_path / "s" / "seed=1").exists()


def test_the_runs_index_answers_sql_over_configs_summaries_and_metrics(tmp_path):
    sweep(BASE, {"model.width": [16, 32], "seed": [0, 1]}, tmp_path / "s", progress=False)
    table = runs(tmp_path)
    assert len(table) == 4 and {"dir", "model.width", "seed", "t_train_acc", "test_acc"} <= set(table.columns)
    per_width = query(tmp_path, 'SELECT "model.width" AS w, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1')
    assert per_width["w"].tolist() == [16, 32] and per_width["n"].tolist() == [2, 2]
    rows = query(tmp_path, "SELECT count(*) AS n, max(step) AS last FROM metrics")
    assert rows["n"].iloc[0] == 4 * 4 and rows["last"].iloc[0] == 30
    with pytest.raises(GroklabError, match="query failed"):
        query(tmp_path, "SELECT nope FROM runs")


def test_the_censored_median_counts_never_as_later_than_every_step(tmp_path):
    import duckdb

    from groklab.store.index import CENSORED_MEDIAN

    con = duckdb.connect()
    con.execute(CENSORED_MEDIAN)

    def median(values):
        listing = ", ".join(f"({'NULL' if v is None else v})" for v in values)
        return con.execute(f"SELECT censored_median(t) FROM (VALUES {listing}) AS v(t)").fetchone()[0]

    assert median([300, None, 100]) == 300  # plain median would skip the censored run: 200
    assert median([300, None, None]) is None  # the middle run never got there
    assert median([400, 100, None, 200]) == 200  # lower median of 100, 200, 400, never
    assert median([5, 1, 3]) == 3
    sweep(BASE, {"seed": [0, 1]}, tmp_path / "s", progress=False)  # available in query()
    assert query(tmp_path, "SELECT censored_median(steps) AS m FROM runs")["m"].tolist() == [30]


def test_sweep_runs_and_plot_commands(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", "--grid", "model.width=16,32", "--grid", "seed=0..1", "--set", "task.p=11",
                 "--set", "train.steps=20", "--set", "train.eval_every=10", "--out", str(out), "--no-progress",
                 "--jobs", "2", "--pack", "2"]) == 0  # two packs of two seeds, one per worker
    assert "4 points: 4 done" in capsys.readouterr().out
    assert main(["runs", str(out), "--query", 'SELECT "model.width" FROM runs', "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "model.width"
    assert main(["plot", "phase", str(out), "--x", "model.width", "--y", "seed", "--value", "t_test_acc"]) == 0
    assert (out / "phase-model.width-seed.png").stat().st_size > 1000  # every cell censored: drawn as 'never'
    assert main(["plot", "curves", str(out), "--by", "model.width"]) == 0
    assert (out / "curves-model.width.png").stat().st_size > 1000
    capsys.readouterr()
    for argv in (["plot", "phase", str(out), "--x", "nope", "--y", "seed"], ["sweep", "--grid", "seed=2..1"],
                 ["runs", str(tmp_path / "missing")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("groklab: error:") and "\n" not in err
    assert json.loads((out / "sweep.json").read_text())["grid"] == {"model.width": [16, 32], "seed": [0, 1]}


def test_a_regression_sweep_plots_its_loss_delay_and_refuses_an_accuracy_column(tmp_path, capsys):
    out = tmp_path / "poly"
    small = ["task.d=10", "task.n_train=40", "task.n_test=50", "model.width=20", "optim.lr=20", "train.steps=200",
             "train.eval_every=20", "train.checkpoint_every=null", "eval.metrics=[]"]
    assert main(["sweep", "poly", "--grid", "model.alpha=0.5,1", "--grid", "seed=0..1", *(a for s in small
                 for a in ("--set", s)), "--out", str(out), "--no-progress", "--pack", "2"]) == 0
    capsys.readouterr()
    table = runs(out)
    assert set(table["grok_measure"]) == {"loss"}  # no accuracy: grokking times come from the losses
    assert main(["plot", "phase", str(out), "--x", "model.alpha", "--y", "seed"]) == 0  # grok_delay by default
    assert main(["plot", "curves", str(out), "--by", "model.alpha"]) == 2  # test_acc: all NaN for regression
    err = capsys.readouterr().err.strip()
    assert "no finite value" in err and "test_loss" in err and "\n" not in err
