import pandas as pd
import pytest

import groklab
from groklab.config import TrainConfig
from groklab.training import loop
from groklab.training.loop import Stopping
from tests.conftest import assert_resume_after_kill_matches, tiny


def test_a_tiny_mlp_really_groks(tmp_path):
    # x+y mod 23 from 60% of the table: fits within ~100 steps, generalises ~1000 later.
    config = tiny(
        task={"p": 23, "train_frac": 0.6},
        model={"width": 64, "activation": "quadratic"},
        optim={"name": "adamw", "lr": 0.01, "weight_decay": 1.0},
        train={"steps": 1500, "eval_every": 25, "checkpoint_every": None},
    )
    run = groklab.run(config, out=tmp_path / "run", progress=False)
    s = run.summary
    assert s["train_acc"] == 1.0
    assert s["test_acc"] >= 0.95, s
    assert s["t_test_acc"] >= 4 * s["t_train_acc"]  # generalised well after it fit


def test_run_directory_contract(tmp_path):
    run = groklab.run(tiny(eval={"metrics": ["layer_norms"]}), out=tmp_path / "run", progress=False)
    d = tmp_path / "run"
    for name in ("config.json", "metrics.parquet", "summary.json", "split.parquet", "curves.png"):
        assert (d / name).is_file(), name
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["step_00000020.safetensors", "step_00000040.safetensors"]
    metrics = pd.read_parquet(d / "metrics.parquet")
    assert list(metrics.columns[:6]) == ["step", "train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"]
    assert "norm.W_in" in metrics.columns
    assert metrics["step"].tolist() == [0, 10, 20, 30, 40]
    for key in ("steps", "wall_seconds", "train_loss", "test_loss", "train_acc", "test_acc", "t_train_acc", "t_test_acc",
                "t_train_loss", "t_test_loss", "grok_delay", "grokked"):
        assert key in run.summary, key
    loaded = groklab.load(d)
    assert loaded.config == run.config
    pd.testing.assert_frame_equal(loaded.metrics, metrics)
    split = pd.read_parquet(d / "split.parquet")
    assert len(split) == 121 and split["train"].sum() == round(0.5 * 121)


def test_weight_norm_column_is_the_l2_norm_of_the_parameters(tmp_path):
    run = groklab.run(tiny(train={"steps": 0}), out=tmp_path / "run", progress=False)
    trainer = loop.Trainer.create(run.config, groklab.store.rundir.RunDir(tmp_path / "x"))
    expected = sum(float((p.detach() ** 2).sum()) for p in trainer.model.parameters()) ** 0.5
    assert run.metrics["weight_norm"].iloc[0] == pytest.approx(expected, rel=1e-6)


def test_early_stop_once_test_accuracy_holds(tmp_path):
    config = tiny(
        task={"p": 23, "train_frac": 0.6},
        model={"width": 64, "activation": "quadratic"},
        optim={"lr": 0.01, "weight_decay": 1.0},
        train={"steps": 3000, "eval_every": 25, "checkpoint_every": None, "stop_at_test_acc": 0.9, "stop_patience": 2},
    )
    run = groklab.run(config, out=tmp_path / "run", progress=False)
    assert run.summary["stopped_early"] and run.summary["steps"] < 3000
    assert (run.metrics["test_acc"].iloc[-2:] >= 0.9).all()


def test_early_stop_once_train_and_test_loss_are_below_a_target(tmp_path):
    small = ("task.d=10", "task.n_train=40", "task.n_test=50", "model.width=20", "optim.lr=20", "train.steps=400",
             "train.eval_every=20", "train.checkpoint_every=null", "train.stop_below_loss=0.3", "model.alpha=0.3", "seed=1")
    run = groklab.run(groklab.load_preset("poly").override(*small), out=tmp_path / "run", progress=False)
    losses = run.metrics[["train_loss", "test_loss"]]
    assert run.summary["stopped_early"] and run.summary["steps"] < 400
    assert (losses.iloc[-1] < 0.3).all() and not (losses.iloc[-2] < 0.3).all()  # stops at the first row that meets it


def test_the_stop_condition_counts_trailing_rows_when_a_run_resumes():
    train = TrainConfig(stop_below_loss=0.1, stop_at_test_acc=0.5, stop_patience=2)

    def row(train_loss, test_loss, test_acc):
        return {"train_loss": train_loss, "test_loss": test_loss, "test_acc": test_acc}

    good = row(0.05, 0.05, 0.9)
    assert Stopping.after(train, [good, row(0.05, 0.2, 0.9), good]).held == 1  # the test loss broke the run
    assert Stopping.after(train, [row(0.05, 0.05, 0.4), good, good]).stopped_early  # two trailing rows meet both
    assert not Stopping.after(train, [good, row(0.05, 0.05, float("nan"))]).stopped_early  # NaN never meets it
    assert not Stopping.after(TrainConfig(), [good, good]).stopped_early  # no condition, no early stop
    both = TrainConfig(stop_at_test_acc=0.85, stop_at_train_acc=0.99)  # fitted and generalised in one row

    def accs(train_acc, test_acc):
        return {"train_loss": 0.1, "test_loss": 0.1, "train_acc": train_acc, "test_acc": test_acc}

    assert not Stopping.after(both, [accs(0.95, 0.9)]).stopped_early  # generalised before it fitted: go on
    assert not Stopping.after(both, [accs(1.0, 0.5)]).stopped_early  # fitted, not yet generalised
    assert Stopping.after(both, [accs(0.95, 0.9), accs(0.995, 0.88)]).stopped_early
    assert Stopping.after(TrainConfig(stop_at_train_acc=0.99), [accs(1.0, 0.1)]).stopped_early
    converged = TrainConfig(stop_converged_below=1e-3, stop_patience=5)
    assert Stopping.after(converged, [row(1e-4, 0.5, 0.1), row(0.2, 0.5, 0.1)]).stopped_early  # no patience
    stop = Stopping.after(converged, [])
    stop.observe(row(2e-3, 0.5, 0.1), 10)
    assert not stop.at_end(10)
    stop.observe(row(5e-4, 0.5, 0.1), 20)
    assert stop.at_end(20) and stop.outcome(1.0)["stopped_early"]


@pytest.mark.parametrize(
    "sections",
    [
        {},  # full batch AdamW
        {"train": {"batch_size": 16}, "optim": {"name": "adam", "warmup_steps": 7}},  # minibatch order + schedule
        {"optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "model": {"alpha": 2.0}},  # momentum + laziness
        {"model": {"name": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32, "n_layers": 2, "layernorm": True},
         "train": {"batch_size": 20}},
    ],
)
def test_resume_after_a_kill_gives_identical_metrics(tmp_path, monkeypatch, sections):
    assert_resume_after_kill_matches(tmp_path, monkeypatch, tiny(**sections))


def test_resume_can_extend_a_finished_run(tmp_path):
    short = groklab.run(tiny(train={"steps": 20}), out=tmp_path / "a", progress=False)
    longer = groklab.resume(short.dir, progress=False, steps=40)
    full = groklab.run(tiny(train={"steps": 40}), out=tmp_path / "b", progress=False)
    pd.testing.assert_frame_equal(longer.metrics, full.metrics, check_exact=True)


def test_a_live_run_flushes_its_metrics_between_checkpoints(tmp_path, monkeypatch):
    # With no checkpoint before the kill, only the periodic flush can have written the rows.
    from tests.conftest import Killed

    monkeypatch.setattr(loop, "METRICS_FLUSH_SECONDS", 0.0)
    real_step, calls = loop.train_step, {"n": 0}

    def dying_step(*args):
        calls["n"] += 1
        if calls["n"] == 25:
            raise Killed
        return real_step(*args)

    monkeypatch.setattr(loop, "train_step", dying_step)
    with pytest.raises(Killed):
        groklab.run(tiny(train={"checkpoint_every": None}), out=tmp_path / "live", progress=False)
    assert pd.read_parquet(tmp_path / "live" / "metrics.parquet")["step"].tolist() == [0, 10, 20]


def test_chunked_evaluation_matches_one_pass_over_the_set():
    # Against an independent computation: the objective and the argmax over the whole set at once.
    import torch

    from groklab.objective import training_objective

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))
    x, y = torch.randn(203, 6), torch.randint(0, 5, (203,))
    objective = training_objective("cross_entropy", 1.0)
    logits = model(x).detach()
    whole_loss, whole_acc = objective(logits, y), (logits.argmax(-1) == y).float().mean()
    for chunk in (None, 7, 64, 203, 1000):
        loss, acc = loop.evaluate(model, x, y, objective, chunk=chunk)
        assert loss.item() == pytest.approx(whole_loss.item(), rel=1e-6), chunk
        assert acc.item() == whole_acc.item(), chunk  # counts: exact whatever the chunking
