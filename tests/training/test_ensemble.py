"""Ensembles: every member's run directory matches the same config trained alone."""

import pandas as pd
import pytest

import groklab
from groklab.errors import GroklabError
from groklab.experiment import run_ensemble
from tests.conftest import tiny

CORE = ["train_loss", "test_loss", "train_acc", "test_acc", "weight_norm"]


def _members_match_solo(tmp_path, configs, atol=2e-5):
    members = run_ensemble(configs, [tmp_path / f"member{k}" for k in range(len(configs))], progress=False)
    for k, (member, config) in enumerate(zip(members, configs)):
        solo = groklab.run(config, out=tmp_path / f"solo{k}", progress=False)
        assert list(member.metrics.columns) == list(solo.metrics.columns)
        assert list(member.metrics["step"]) == list(solo.metrics["step"])
        pd.testing.assert_frame_equal(member.metrics[CORE], solo.metrics[CORE], check_exact=False, rtol=1e-4, atol=atol)
        for key in ("t_train_acc", "t_test_acc", "steps", "stopped_early", "diverged"):
            assert member.summary[key] == solo.summary[key], key
        # the same files, so every reader of run directories works unchanged
        assert sorted(p.name for p in member.dir.iterdir()) == sorted(p.name for p in solo.dir.iterdir())
        assert sorted(p.name for p in (member.dir / "checkpoints").iterdir()) == \
            sorted(p.name for p in (solo.dir / "checkpoints").iterdir())
    return members


@pytest.mark.parametrize("optim", [
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
    {"name": "adam", "lr": 0.01, "weight_decay": 0.01, "warmup_steps": 5},
    {"name": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 0.001},
    {"name": "gd", "lr": 0.5},
])
def test_mlp_members_match_solo_runs_for_every_optimiser(tmp_path, optim):
    batch = None if optim["name"] == "gd" else 16
    base = tiny(optim=optim, train={"steps": 40, "eval_every": 10, "checkpoint_every": 20, "batch_size": batch})
    configs = [base.override("seed=0"), base.override("seed=1", f"optim.lr={optim['lr'] / 2}"),
               base.override("seed=2", "optim.weight_decay=0.05", "model.init_scale=0.5")]
    _members_match_solo(tmp_path, configs)


def test_committee_members_with_their_own_alpha_and_eps_match_solo_runs(tmp_path):
    small = ("task.d=10", "task.n_train=40", "task.n_test=50", "model.width=20", "optim.lr=20", "train.steps=60",
             "train.eval_every=20", "train.checkpoint_every=null", 'eval.metrics=["toy_stats"]', "eval.metrics_every=20")
    base = groklab.load_preset("poly").override(*small)
    configs = [base.override(f"seed={s}", f"model.alpha={a}", f"model.eps={e}")
               for s, a, e in ((0, 1.0, 0.5), (1, 3.0, 0.5), (1, 2.0, 0.1))]
    members = _members_match_solo(tmp_path, configs)
    assert members[1].metrics["toy.trace_M"].notna().all()  # scheduled metrics ran on the member's own model


def test_mse_on_class_labels_members_match_solo_runs(tmp_path):
    # the modular MLP of paper 001 (lazyrich-modular-mlp): MSE against one-hot labels, mean-field
    # output, alpha not centred; F.one_hot read the labels' values and failed under vmap
    base = groklab.load_preset("gd-mse").override(
        "task.p=11", "model.width=20", "model.parametrization=mean_field", "model.centre=false", "train.steps=40",
        "train.eval_every=10", "train.checkpoint_every=null")
    _members_match_solo(tmp_path, [base.override("seed=0", "model.alpha=0.25"), base.override("seed=1", "model.alpha=2.25")])


def test_members_that_stop_early_leave_and_the_others_still_match_solo_runs(tmp_path):
    # alpha 0.3 and 0.5 reach the loss target at different steps; alpha 0.7 does not, so
    # it trains on alone after the others have been dropped from the stacked state
    small = ("task.d=10", "task.n_train=40", "task.n_test=50", "model.width=20", "optim.lr=20", "train.steps=400",
             "train.eval_every=20", "train.checkpoint_every=null", "train.stop_below_loss=0.3")
    base = groklab.load_preset("poly").override(*small)
    configs = [base.override(f"seed={s}", f"model.alpha={a}") for s, a in ((1, 0.3), (1, 0.5), (1, 0.7))]
    members = _members_match_solo(tmp_path, configs)
    steps = [m.summary["steps"] for m in members]
    assert steps[0] < 400 and steps[1] < 400 and steps[0] != steps[1] and steps[2] == 400, steps
    assert [m.summary["stopped_early"] for m in members] == [True, True, False]


def test_adamw_members_keep_their_own_optimiser_state_after_another_member_leaves(tmp_path):
    # lr 0.03 converges (train loss < 0.1) at step 30; the others train on from the compacted Adam state
    base = tiny(optim={"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
                train={"steps": 60, "eval_every": 10, "checkpoint_every": 20, "stop_converged_below": 0.1})
    configs = [base.override("optim.lr=0.03"), base.override("seed=1"), base.override("optim.lr=0.003")]
    members = _members_match_solo(tmp_path, configs)
    assert [m.summary["steps"] for m in members] == [30, 60, 60]


def test_transformer_members_match_solo_runs(tmp_path):
    base = tiny(model={"name": "transformer", "d_model": 16, "n_heads": 2, "d_mlp": 32},
                optim={"name": "adamw", "lr": 3e-3, "weight_decay": 1.0}, train={"steps": 30, "eval_every": 10})
    _members_match_solo(tmp_path, [base.override("seed=0"), base.override("seed=3")])


def test_a_live_ensemble_flushes_its_members_metrics_between_checkpoints(tmp_path, monkeypatch):
    # With no checkpoint before the kill, only the periodic flush can have written the rows.
    from groklab.training import ensemble, loop
    from tests.conftest import Killed

    monkeypatch.setattr(loop, "METRICS_FLUSH_SECONDS", 0.0)
    real_step, calls = ensemble.Ensemble.step, {"n": 0}

    def dying_step(self):
        calls["n"] += 1
        if calls["n"] == 25:
            raise Killed
        return real_step(self)

    monkeypatch.setattr(ensemble.Ensemble, "step", dying_step)
    base = tiny(train={"checkpoint_every": None})
    with pytest.raises(Killed):
        run_ensemble([base, base.override("seed=1")], [tmp_path / "a", tmp_path / "b"], progress=False)
    for member in ("a", "b"):
        assert pd.read_parquet(tmp_path / member / "metrics.parquet")["step"].tolist() == [0, 10, 20]


def test_a_member_that_diverges_stops_and_the_others_go_on(tmp_path):
    base = tiny(optim={"name": "sgd", "lr": 0.5}, train={"steps": 40, "eval_every": 10, "batch_size": 16})
    configs = [base, base.override("seed=1", "optim.lr=1e30")]
    members = run_ensemble(configs, [tmp_path / "a", tmp_path / "b"], progress=False)
    assert not members[0].summary["diverged"] and members[0].summary["steps"] == 40
    assert members[1].summary["diverged"] and members[1].summary["steps"] < 40
    solo = groklab.run(configs[1], out=tmp_path / "solo", progress=False)
    assert solo.summary["diverged_step"] == members[1].summary["diverged_step"]


def test_configs_that_differ_in_shape_are_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(GroklabError, match="differ only in"):
        run_ensemble([tiny(), tiny(model={"width": 64})], [tmp_path / "a", tmp_path / "b"], progress=False)
    with pytest.raises(GroklabError, match="differ only in"):  # the MLP's eps is no buffer, unlike the committee's
        run_ensemble([tiny(model={"activation": "poly"}), tiny(model={"activation": "poly", "eps": 0.1})],
                     [tmp_path / "a", tmp_path / "b"], progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(GroklabError, match="interventions are not batched"):
        run_ensemble([tiny(interventions={"abelian": {"weight": 1.0}})] * 2, [tmp_path / "c", tmp_path / "d"],
                     progress=False)
