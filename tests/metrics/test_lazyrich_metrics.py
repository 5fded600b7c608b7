"""toy_stats, alignment and laziness as scheduled metrics of a real polynomial run."""

import pytest

import groklab
from groklab.config import config_from_dict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = config_from_dict({
        "task": {"name": "polynomial", "d": 8, "n_train": 48, "n_test": 20000},
        "model": {"name": "committee", "width": 16, "eps": 1.0, "centre": True, "train_readout": False},
        "optim": {"name": "gd", "lr": 8.0},
        "train": {"steps": 200, "loss": "mse", "eval_every": 100, "checkpoint_every": None, "device": "cpu"},
        "eval": {"metrics": ["toy_stats", "laziness", "alignment"]},
    })
    return groklab.run(cfg, out=tmp_path_factory.mktemp("lr") / "r", progress=False)


def test_decomposition_adds_up_to_the_measured_test_loss(run):
    m = run.metrics
    parts = m["toy.loss_scale"] + m["toy.loss_misalign"] + m["toy.loss_linear"]
    # 20k Gaussian test points: Monte Carlo error of the mean of (f - y)^2 is a few percent.
    rel = ((parts - m["test_loss"]).abs() / m["test_loss"]).max()
    assert rel < 0.05, rel
    assert m["toy.loss_total"].sub(parts).abs().max() < 1e-9
    assert m["test_loss"].iloc[-1] < m["test_loss"].iloc[0]  # it learned something, so the check moved


def test_laziness_starts_at_zero_and_grows(run):
    m = run.metrics
    assert m["lazy.param_change"].iloc[0] == pytest.approx(0.0, abs=1e-7)
    assert m["lazy.kernel_change"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert m["lazy.param_change"].iloc[-1] > 0.01
    assert m["lazy.kernel_change"].iloc[1:].min() > 0.01  # the kernel moved (not necessarily monotonically)


def test_alignment_columns_are_cosines(run):
    m = run.metrics
    assert ((m["align.paper"] > 0) & (m["align.paper"] <= 1)).all()
    assert (m["align.cka"].abs() <= 1).all()
