"""A diverging run is a result: it stops (or goes on, if asked), is marked in summary.json,
prints a normal summary, draws its curves and exits 0."""

import json

import groklab
from groklab.cli import main
from tests.conftest import tiny

BLOW_UP = {"optim": {"name": "sgd", "lr": 1e20, "weight_decay": 0.0}}  # NaN by step 10


def test_a_diverging_run_stops_and_is_marked(tmp_path, capsys):
    run = groklab.run(tiny(**BLOW_UP, train={"steps": 60, "eval_every": 10, "checkpoint_every": 20}),
                      out=tmp_path / "r", progress=False)
    s = run.summary
    assert s["diverged"] is True and s["diverged_step"] == 10 and s["steps"] == 10
    assert s["train_loss"] is None  # JSON has no NaN
    assert run.curves.stat().st_size > 1000
    # resuming a run that stopped at its divergence changes nothing
    again = groklab.resume(tmp_path / "r", progress=False)
    assert again.summary["steps"] == 10 and again.summary["diverged_step"] == 10


def test_continue_on_divergence_trains_to_the_end(tmp_path):
    run = groklab.run(tiny(**BLOW_UP, train={"steps": 40, "eval_every": 10, "on_divergence": "continue"}),
                      out=tmp_path / "r", progress=False)
    assert run.summary["steps"] == 40 and run.summary["diverged_step"] == 10


def test_a_healthy_run_is_not_marked(tmp_path):
    s = groklab.run(tiny(), out=tmp_path / "r", progress=False).summary
    assert s["diverged"] is False and s["diverged_step"] is None


def test_nan_from_step_zero_exits_0_with_curves(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["run", "--set", "task.p=11", "--set", "train.steps=30", "--set", "model.init_scale=1e20",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "diverged: training loss not finite at step 0" in printed and "Traceback" not in printed
    assert json.loads((out / "summary.json").read_text())["diverged_step"] == 0
    assert (out / "curves.png").stat().st_size > 1000
