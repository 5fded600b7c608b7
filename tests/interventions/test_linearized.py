"""The linearised companion (``linearized.enabled``) inside real tiny runs: it is the first-order
Taylor expansion of the network at init, trains without touching the network, tracks a lazy
network and loses a rich one, converges to kernel regression, and resumes exactly."""

import pandas as pd
import pytest
import torch
from torch.func import functional_call

import groklab
from groklab.config import config_from_dict
from groklab.interventions import LinearizedCompanion
from groklab.models import build_model
from groklab.seeding import generator
from groklab.store.rundir import prepare_run_dir
from groklab.tasks import build_task
from groklab.training import loop
from groklab.training.baselines import ntk_regression_baseline
from tests.conftest import assert_resume_after_kill_matches, tiny

LIN = {"enabled": True}


def _toy(alpha=1.0, steps=40, **overrides):
    base = {
        "task": {"name": "polynomial", "d": 6, "n_train": 15, "n_test": 200},
        "model": {"name": "committee", "width": 20, "eps": 1.0, "centre": True, "train_readout": False, "alpha": alpha},
        "optim": {"name": "gd", "lr": 10.0},
        "train": {"steps": steps, "loss": "mse", "eval_every": 10, "checkpoint_every": 20, "device": "cpu"},
        "linearized": LIN,
    }
    for section, values in overrides.items():
        base[section] = {**base.get(section, {}), **values}
    return config_from_dict(base)


def _trained_companion(config, tmp_path):
    trainer = loop.Trainer.create(config, prepare_run_dir(tmp_path / "run", False))
    trainer.fit(progress=False)
    (companion,) = [it for it in trainer.interventions if isinstance(it, LinearizedCompanion)]
    return trainer, companion


@pytest.mark.parametrize("config", [
    _toy(alpha=2.0, steps=30),
    tiny(model={"alpha": 2.0, "width": 8}, train={"steps": 30, "loss": "mse"}, linearized=LIN),
], ids=["committee", "mlp-lazy"])
def test_companion_is_the_taylor_expansion_at_init(tmp_path, config):
    """Its output equals f(theta_0) + J(theta_0) (theta_lin - theta_0), with J an explicit float64
    Jacobian (torch.autograd.functional.jacobian, reverse mode) of the model rebuilt from the seed."""
    _, companion = _trained_companion(config, tmp_path)
    data = build_task(config.task, config.seed)
    model_0 = build_model(config.model, data, generator(config.seed, "init")).double()
    names = [k for k, _ in model_0.named_parameters()]
    theta_0 = [p.detach().clone() for _, p in model_0.named_parameters()]
    x = data.test_x[:7]
    x64 = x.double() if x.is_floating_point() else x

    def f(*params):
        return functional_call(model_0, dict(zip(names, params)), (x64,))

    jac = torch.autograd.functional.jacobian(f, tuple(theta_0))  # per parameter: (*out, *shape)
    delta = [p.detach().double() - q for p, q in zip(companion.lin.theta, theta_0)]
    assert sum(float(d.abs().sum()) for d in delta) > 0  # it trained
    out_shape = f(*theta_0).shape
    expected = f(*theta_0) + sum(
        (j.reshape(*out_shape, -1) @ d.reshape(-1)) for j, d in zip(jac, delta)
    )
    with torch.no_grad():
        got = companion.lin(x).double()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # ... and the network itself has left it (it is not linear in its weights)
    with torch.no_grad():
        assert float((companion.model(x).double() - got).abs().max()) > 1e-4


def test_network_columns_do_not_change_with_the_companion(tmp_path):
    config = tiny(train={"steps": 30, "checkpoint_every": None})
    plain = groklab.run(config, out=tmp_path / "plain", progress=False).metrics
    both = groklab.run(config.override("linearized.enabled=true"), out=tmp_path / "lin", progress=False).metrics
    pd.testing.assert_frame_equal(both[plain.columns], plain, check_exact=True)
    lin_cols = ["lin.train_loss", "lin.test_loss", "lin.train_acc", "lin.test_acc", "lin.output_distance",
                "lin.param_distance"]
    assert list(both.columns[len(plain.columns):]) == lin_cols
    first = both.iloc[0]  # step 0: the same function, the same numbers
    assert first["lin.output_distance"] == 0.0 and first["lin.param_distance"] == 0.0
    assert first["lin.test_loss"] == pytest.approx(first["test_loss"], rel=1e-6)


def test_companion_tracks_a_lazy_network_and_a_rich_one_leaves_it(tmp_path):
    """Large alpha: network ~ its linearisation all run long; small alpha: they part (paper 001 sec. 4.1).
    Distances are relative to the RMS test target; lr = 10 / alpha^2 (optim.alpha_lr_scaling)."""
    rel = {}
    for alpha in (16.0, 0.25):
        run = groklab.run(_toy(alpha=alpha, steps=200, train={"eval_every": 50, "checkpoint_every": None}),
                          out=tmp_path / f"a{alpha}", progress=False)
        m = run.metrics
        y_rms = float(torch.sqrt((build_task(run.config.task, 0).test_y ** 2).mean()))
        assert m["train_loss"].iloc[-1] < 0.05 * m["train_loss"].iloc[0]  # both fitted
        rel[alpha] = (m["lin.output_distance"].iloc[-1] / y_rms, m["lin.param_distance"].iloc[-1])
    assert rel[16.0][0] < 0.02 and rel[0.25][0] > 10 * rel[16.0][0], rel
    assert rel[0.25][1] > 20 * rel[16.0][1], rel


def test_companion_trained_long_reaches_initial_ntk_kernel_regression(tmp_path):
    """GD without weight decay on the linearised model converges to ridgeless kernel regression with
    the initial NTK: two independent routes (training vs. a pseudo-inverse) to the same test loss."""
    config = _toy(alpha=4.0, steps=400, optim={"lr": 25.0}, train={"eval_every": 200, "checkpoint_every": None})
    m = groklab.run(config, out=tmp_path / "long", progress=False).metrics
    kr = ntk_regression_baseline(config)
    assert kr["ntk_kr.train_mse"] < 1e-10 and m["lin.train_loss"].iloc[-1] < 1e-8
    assert m["lin.test_loss"].iloc[-1] == pytest.approx(kr["ntk_kr.test_mse"], rel=1e-3)
    assert m["test_loss"].iloc[-1] != pytest.approx(kr["ntk_kr.test_mse"], rel=1e-3)  # the network is not linear


@pytest.mark.parametrize("config", [
    tiny(model={"alpha": 2.0}, linearized=LIN),  # AdamW with weight decay, centred MLP
    _toy(optim={"name": "sgd", "momentum": 0.9, "lr": 2.0, "warmup_steps": 5}),
    tiny(model={"name": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32}, train={"batch_size": 16},
         linearized=LIN),
], ids=["mlp-adamw", "committee-momentum", "transformer-minibatch"])
def test_resume_after_kill_is_exact(tmp_path, monkeypatch, config):
    assert_resume_after_kill_matches(tmp_path, monkeypatch, config)
