"""ntk_regression: kernel regression with the initial NTK, against an explicit float64 Jacobian and a
numpy minimum-norm least-squares fit in parameter space (an independent route to the same answer)."""

import numpy as np
import pytest
import torch
from torch.func import functional_call

import groklab
from groklab.config import config_from_dict
from groklab.training.baselines import ntk_regression_baseline
from groklab.models import build_model
from groklab.seeding import generator
from groklab.tasks import build_task
from tests.conftest import tiny


def _explicit(config):
    """Train/test predictions of the min-norm linearised fit: theta - theta_0 = pinv(J) (Y - F_0)."""
    data = build_task(config.task, config.seed)
    model = build_model(config.model, data, generator(config.seed, "init")).double()
    names = [k for k, _ in model.named_parameters()]
    theta_0 = tuple(p.detach().clone() for _, p in model.named_parameters())

    def as_input(x):
        return x.double() if x.is_floating_point() else x

    def jacobian(x):  # (P * C, n_params), sample-major rows
        jac = torch.autograd.functional.jacobian(
            lambda *p: functional_call(model, dict(zip(names, p)), (as_input(x),)).reshape(-1), theta_0)
        return torch.cat([j.reshape(j.shape[0], -1) for j in jac], 1).numpy()

    with torch.no_grad():
        f0_tr, f0_te = model(as_input(data.train_x)).numpy(), model(as_input(data.test_x)).numpy()
    scale = config.train.label_scale
    if data.train_y.is_floating_point():
        target = data.train_y.double().numpy() * scale
    else:
        target = np.eye(f0_tr.shape[1])[data.train_y.numpy()] * scale
    delta = np.linalg.pinv(jacobian(data.train_x)) @ (target - f0_tr).reshape(-1)
    pred_tr = f0_tr + (jacobian(data.train_x) @ delta).reshape(f0_tr.shape)
    pred_te = f0_te + (jacobian(data.test_x) @ delta).reshape(f0_te.shape)
    return data, pred_tr, pred_te, scale


def test_committee_uncentred_matches_parameter_space_least_squares():
    config = config_from_dict({
        "task": {"name": "polynomial", "d": 5, "n_train": 12, "n_test": 40},
        "model": {"name": "committee", "width": 6, "eps": 0.7, "centre": False, "train_readout": True},
        "optim": {"name": "gd", "lr": 1.0}, "train": {"loss": "mse"},
    })
    data, pred_tr, pred_te, _ = _explicit(config)  # 36 parameters > 12 points: interpolates
    got = ntk_regression_baseline(config)
    y_te = data.test_y.double().numpy()
    assert got["ntk_kr.test_mse"] == pytest.approx(float(((pred_te - y_te) ** 2).mean()), rel=1e-8)
    assert got["ntk_kr.train_mse"] < 1e-20 and float(((pred_tr - data.train_y.double().numpy()) ** 2).mean()) < 1e-20
    assert np.isnan(got["ntk_kr.test_acc"])


def test_centred_mlp_classification_uses_the_full_multi_output_kernel():
    config = tiny(task={"p": 5, "train_frac": 0.6}, model={"width": 16, "alpha": 2.0},
                  train={"loss": "mse", "label_scale": 3.0})
    data, _, pred_te, scale = _explicit(config)  # 15 points x 5 outputs = 75 kernel rows
    got = ntk_regression_baseline(config)
    target = np.eye(5)[data.test_y.numpy()] * scale
    assert got["ntk_kr.test_mse"] == pytest.approx(float(((pred_te - target) ** 2).mean()), rel=1e-8)
    assert got["ntk_kr.test_acc"] == pytest.approx(float((pred_te.argmax(1) == data.test_y.numpy()).mean()))
    assert got["ntk_kr.train_mse"] < 1e-12


def test_registered_metric_is_a_constant_column_of_the_run(tmp_path):
    config = tiny(task={"p": 5, "train_frac": 0.6}, train={"steps": 20, "loss": "mse", "checkpoint_every": None},
                  eval={"metrics": ["ntk_regression"]})
    m = groklab.run(config, out=tmp_path / "run", progress=False).metrics
    expected = ntk_regression_baseline(config)
    for column, value in expected.items():
        assert m[column].tolist() == [pytest.approx(value)] * len(m)


def test_too_large_a_kernel_is_refused():
    with pytest.raises(ValueError, match="kernel rows"):
        ntk_regression_baseline(tiny(task={"p": 97}))
