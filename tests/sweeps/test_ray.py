"""The Ray executor against a local Ray instance with 2 workers: the same run directories,
sweep.json and metrics as the local executor; a failing point or a dead worker is recorded,
not raised. Skipped where Ray is not installed (it is the optional extra groklab[ray])."""

import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from groklab import GroklabError  # noqa: E402
from groklab.cli import main  # noqa: E402
from groklab.sweeps import sweep  # noqa: E402
from groklab.sweeps.executor import Job, execute  # noqa: E402
from groklab.sweeps.ray_executor import chunk_size, chunks  # noqa: E402
from tests.conftest import tiny  # noqa: E402

BASE = tiny(train={"steps": 30, "eval_every": 10, "checkpoint_every": 10})


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parents[2])}})  # tests/ importable there
    yield
    ray.shutdown()


def _files(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_chunks_cover_every_job_once_in_order_and_a_missing_ray_is_one_line(tmp_path, monkeypatch, capsys):
    assert chunks(5, 2) == [[0, 1], [2, 3], [4]]
    assert chunk_size(36, 2) == 9 and chunk_size(3, 16) == 1
    with pytest.raises(GroklabError):
        chunks(3, 0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(GroklabError, match=r"pip install 'groklab\[ray\]'"):
        sweep(BASE, {"seed": [0]}, tmp_path / "s", executor="ray")
    assert not (tmp_path / "s").exists()
    assert main(["sweep", "--grid", "seed=0", "--out", str(tmp_path / "s"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("groklab: error:") and "groklab[ray]" in err and "\n" not in err


def test_a_ray_sweep_writes_what_the_local_executor_writes(tmp_path, cluster):
    grid = {"seed": [0, 1, 2]}  # in chunks of 2: two tasks, one of 2 points, one of 1
    local = sweep(BASE, grid, tmp_path / "local", progress=False)
    remote = sweep(BASE, grid, tmp_path / "ray", progress=False, executor="ray", chunk=2)
    assert remote == local == json.loads((tmp_path / "ray" / "sweep.json").read_text())
    assert {p["status"] for p in remote["points"]} == {"done"}
    assert _files(tmp_path / "ray") == _files(tmp_path / "local")
    for p in local["points"]:
        a = pd.read_parquet(tmp_path / "local" / p["dir"] / "metrics.parquet")
        b = pd.read_parquet(tmp_path / "ray" / p["dir"] / "metrics.parquet")
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    # packed: seeds 0 and 1 as one ensemble in one task, seed 2 alone in another
    packed = sweep(BASE, grid, tmp_path / "ray-packed", progress=False, executor="ray", chunk=1, pack=2)
    assert packed == local and _files(tmp_path / "ray-packed") == _files(tmp_path / "local")
    for p in local["points"]:
        a = pd.read_parquet(tmp_path / "local" / p["dir"] / "metrics.parquet")
        b = pd.read_parquet(tmp_path / "ray-packed" / p["dir"] / "metrics.parquet")
        pd.testing.assert_frame_equal(a[["step", "train_loss", "test_acc"]], b[["step", "train_loss", "test_acc"]],
                                      check_exact=False, rtol=1e-4, atol=2e-5)


def jobs_order(jobs):
    return lambda outcome: [j.out for j in jobs].index(outcome.out)


def _dies(config, out):  # a Job runner whose worker process dies, as under the OOM killer
    os._exit(1)


def test_a_failing_point_or_a_dead_worker_is_recorded_not_raised(tmp_path, cluster, capsys):
    failing = tiny(task={"name": "images", "dataset": "mnist", "path": str(tmp_path / "nowhere"), "n_train": 10,
                         "n_test": 10}, train={"steps": 5, "eval_every": 5})
    doc = sweep(failing, {"seed": [0, 1]}, tmp_path / "s", progress=False, executor="ray")
    assert [p["status"] for p in doc["points"]] == ["failed", "failed"]
    assert "nowhere" in doc["points"][0]["error"] and "\n" not in doc["points"][0]["error"]

    # a task registered here (an extension module): the chunk's worker imports its module first
    from tests.extensions.test_toy_task import ToyParityConfig  # noqa: F401

    good = BASE.override("task.name=toy-parity", "task.n=10", "train.steps=10").to_json()
    jobs = [Job(good, str(tmp_path / "a")), Job(good, str(tmp_path / "b"), runner=_dies), Job(good, str(tmp_path / "c"))]
    seen = []
    outcomes = execute(jobs, executor="ray", chunk=3, on_outcome=seen.append)
    assert [o.status for o in outcomes] == ["done", "failed", "failed"]
    assert [o.out for o in outcomes] == [j.out for j in jobs] and sorted(seen, key=jobs_order(jobs)) == outcomes
    assert outcomes[1].error.startswith("Ray task failed:") and "\n" not in outcomes[1].error

    assert main(["sweep", "--grid", "seed=0..1", "--set", "task.p=11", "--set", "train.steps=10", "--set",
                 "train.eval_every=10", "--out", str(tmp_path / "cli"), "--no-progress", "--executor", "ray",
                 "--chunk", "1"]) == 0
    assert "2 points: 2 done" in capsys.readouterr().out
    assert main(["sweep", "--grid", "seed=0", "--chunk", "2"]) == 2
    assert "--executor ray" in capsys.readouterr().err
