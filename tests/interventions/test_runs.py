"""Interventions inside real (tiny) runs: schedules, what the model sees, exactness, resume."""

import pandas as pd
import pytest
import torch

import groklab
from groklab.interventions.perturb import PerturbConfig
from groklab.interventions import Interventions, Perturb
from groklab.store.rundir import prepare_run_dir
from groklab.training import loop
from tests.conftest import assert_resume_after_kill_matches, tiny

PERTURBED = {"perturb": {"lambda1": 0.6, "lambda2": 0.05}}


def _trainer(config, path):
    return loop.Trainer.create(config, prepare_run_dir(path, False))


def test_sigma_follows_the_latest_evaluated_train_accuracy(tmp_path, monkeypatch):
    used = []
    real = Perturb.transform_batch

    def spy(self, model, x, y):
        used.append(self.sigma)
        return real(self, model, x, y)

    monkeypatch.setattr(Perturb, "transform_batch", spy)
    run = groklab.run(tiny(interventions=PERTURBED, train={"steps": 60}), out=tmp_path / "run", progress=False)
    m = run.metrics
    assert m["train_acc"].iloc[-1] > m["train_acc"].iloc[0]  # so sigma really moves
    expected = [max(0.6 * (1 - acc), 0.05) for acc in m["train_acc"]]
    assert m["perturb.sigma"].tolist() == expected
    # training step t uses the sigma of the evaluation at step 10 * (t // 10)
    assert used == [expected[t // 10] for t in range(60)]
    assert len(set(used)) > 2


def test_the_model_trains_on_one_hot_inputs_plus_sigma_noise(tmp_path):
    config = tiny(interventions=PERTURBED, train={"steps": 30})
    trainer = _trainer(config, tmp_path / "run")
    seen = []
    trainer.model.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach().clone()) if m.training else None)
    trainer.fit(progress=False)
    clean = trainer.model.one_hot(trainer.x["train_x"])  # full batch: every step sees the whole training set
    sigmas = [r["perturb.sigma"] for r in trainer.rows]
    assert len(seen) == 30
    for t, x in enumerate(seen):
        assert x.dtype == torch.float32 and x.shape == clean.shape
        noise = x - clean
        assert float(noise.std()) == pytest.approx(sigmas[t // 10], rel=0.1)
        assert abs(float(noise.mean())) < 0.1 * sigmas[t // 10]
    assert not torch.equal(seen[0], seen[1])  # fresh noise every step


def test_zero_sigma_reproduces_the_unperturbed_run_exactly(tmp_path):
    config = tiny(train={"steps": 40, "checkpoint_every": None})
    plain = groklab.run(config, out=tmp_path / "plain", progress=False)
    trainer = _trainer(config, tmp_path / "zero")
    trainer.interventions = Interventions([Perturb(PerturbConfig(lambda1=0.0, lambda2=0.0), torch.Generator())])
    trainer.fit(progress=False)
    rows = pd.DataFrame(trainer.rows)
    assert (rows.pop("perturb.sigma") == 0).all()
    pd.testing.assert_frame_equal(rows, plain.metrics, check_exact=True)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return groklab.run(tiny(train={"steps": 20}), out=tmp_path_factory.mktemp("base") / "run", progress=False)


@pytest.mark.parametrize(
    "block",
    [
        {"perturb": {"lambda2": 0.2}},
        {"mi": {"weight": 0.5}},
        {"abelian": {"weight": 1.0}},
        {"barlow": {"weight": 1.0}},
        {"grokfast": {"filter": "ema"}},
        {"grokfast": {"filter": "ma", "window": 5}},
    ],
)
def test_each_intervention_changes_the_training_trajectory(tmp_path, base_run, block):
    base = base_run
    other = groklab.run(tiny(train={"steps": 20}, interventions=block), out=tmp_path / "other", progress=False)
    assert base.metrics["step"].tolist() == other.metrics["step"].tolist()
    assert other.metrics["train_loss"].iloc[-1] != base.metrics["train_loss"].iloc[-1]
    assert other.metrics["train_loss"].iloc[0] == base.metrics["train_loss"].iloc[0]  # same init


@pytest.mark.parametrize(
    "sections",
    [
        # noise + EMA filter + subsampled MI on minibatches, with stochastic metrics
        {"interventions": {**PERTURBED, "grokfast": {"filter": "ema"}, "mi": {"weight": 0.1, "max_samples": 8}},
         "train": {"batch_size": 16}, "eval": {"metrics": ["sharpness", "matrix_info"]}},
        # loss terms + a moving-average window that spans the checkpoint
        {"interventions": {"abelian": {"weight": 0.5}, "barlow": {"weight": 0.1, "sigma": 0.3},
                           "grokfast": {"filter": "ma", "window": 12}}},
        # transformer with the swap view
        {"model": {"name": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32},
         "interventions": {"abelian": {"weight": 0.5}, "barlow": {"weight": 0.1, "view": "swap"},
                           "grokfast": {"filter": "ema", "alpha": 0.8}}},
    ],
)
def test_resume_with_interventions_gives_identical_metrics(tmp_path, monkeypatch, sections):
    assert_resume_after_kill_matches(tmp_path, monkeypatch, tiny(**sections))