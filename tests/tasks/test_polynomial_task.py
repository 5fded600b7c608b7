"""task.name=polynomial + model.name=committee through the config, the loop and the preset."""

import math

import pytest
import torch

import groklab
from groklab.config import config_from_dict
from groklab.errors import GroklabError
from groklab.tasks import build_task
from groklab.tasks.polynomial import make_single_index_quadratic


def _tiny(**task):
    return config_from_dict({
        "task": {"name": "polynomial", "d": 8, "n_train": 64, "n_test": 256, **task},
        "model": {"name": "committee", "width": 32, "eps": 1.0, "centre": True, "train_readout": False},
        "optim": {"name": "gd", "lr": 16.0},
        "train": {"steps": 300, "loss": "mse", "eval_every": 50, "checkpoint_every": None, "device": "cpu"},
    })


def test_poly_preset_loads():
    cfg = groklab.load_preset("poly")
    assert cfg.task.name == "polynomial" and cfg.model.name == "committee"
    assert cfg.lr == cfg.model.width / cfg.model.alpha ** 2  # lr N / alpha^2


def test_task_matches_the_math_module():
    data = build_task(_tiny().task, seed=3)
    ref = make_single_index_quadratic(8, 64, 256, seed=3)
    assert data.is_regression and data.input_dim == 8 and data.train_x.shape == (64, 8)
    torch.testing.assert_close(data.test_y, ref.y_test)


def test_bad_combinations_fail():
    with pytest.raises(GroklabError, match="committee"):
        _tiny().override("model.name=mlp")
    with pytest.raises(GroklabError, match="mse"):
        _tiny().override("train.loss=cross_entropy")
    with pytest.raises(GroklabError, match="n_directions"):
        _tiny().override("task.target=hermite", "task.n_directions=2")


def test_tiny_polynomial_run_learns(tmp_path):
    run = groklab.run(_tiny(), out=tmp_path / "r", progress=False)
    m = run.metrics
    assert math.isnan(m["test_acc"].iloc[-1])
    assert m["test_loss"].iloc[-1] < 0.2 * m["test_loss"].iloc[0]
    assert (tmp_path / "r" / "curves.png").is_file()


@pytest.mark.parametrize("task", [{"target": "hermite", "degree": 3}, {"n_directions": 2}])
def test_variants_build(task):
    data = build_task(_tiny(**task).task, seed=0)
    assert data.train_y.shape == (64,) and torch.isfinite(data.train_y).all()


def test_cli_runs_the_poly_preset_and_prints_loss_times(tmp_path, capsys):
    from groklab.cli import main

    code = main(["run", "poly", "--set", "train.steps=20", "--set", "train.eval_every=10", "--set", "task.d=8",
                 "--set", "task.n_train=32", "--set", "model.width=16", "--set", "optim.lr=16", "--set", "train.device=cpu",
                 "--out", str(tmp_path / "r"), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "train loss fell 10x at step" in out
