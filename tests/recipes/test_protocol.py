"""The evidence protocol: seed samples, censoring, effect-size criteria, control logic, and a
tiny recipe end to end (its control and a cause-removing --set flip the verdict)."""

import json
import math

import pytest

from groklab import GroklabError
from groklab.cli import main
from groklab.recipes import RECIPES, recipe, reproduce
from groklab.recipes.protocol import (Arm, Control, Criterion, Design, Sample, higher, judge_design, lower,
                                      most_seeds, results_from_runs)
from tests.conftest import tiny
from tests.recipes.fakes import fake_run


def sample(*values):
    return Sample(tuple(values), tuple(range(len(values))))


def test_median_counts_censored_runs_as_later_than_all():
    assert sample(300, None, 100).median == 300
    assert math.isinf(sample(None, None, 100).median)
    assert sample(100, 200).median == 150
    assert math.isnan(sample(1.0, math.nan).median)
    assert sample(100, None, 300).half_range == 100  # spread over the seeds that got there
    assert "never" in sample(None, 5).describe()


def test_lower_needs_an_effect_beyond_the_seed_spread():
    assert lower(sample(1000, 1100, 1050), sample(2000, 2100, 2200), "x").holds
    # same medians' gap but seeds overlap widely: the effect (600) is within the spread (750)
    overlapping = lower(sample(500, 1400, 2000), sample(1600, 2000, 2300), "x")
    assert not overlapping.holds and "seed spread 750" in overlapping.detail
    # below 10% of the reference: too small to count even with no spread
    assert not lower(sample(1950, 1950, 1950), sample(2000, 2000, 2000), "x").holds
    # a reference that never gets there: the treatment is beyond it, not merely "faster than the slowest"
    assert lower(sample(1000, 1200, 1100), sample(None, None, 3000), "x").holds
    assert not lower(sample(None, None, None), sample(None, None, None), "x").holds
    # faster in only 1 of 3 paired seeds
    assert not lower(sample(100, 5000, 5000), sample(4000, 4000, 4000), "x").holds


def test_higher_mirrors_lower():
    assert higher(sample(0.9, 0.92, 0.95), sample(0.4, 0.5, 0.45), "acc").holds
    assert not higher(sample(0.4, 0.5, 0.45), sample(0.9, 0.92, 0.95), "acc").holds
    assert not higher(sample(0.50, 0.52), sample(0.49, 0.51), "acc").holds


def test_most_seeds_is_two_thirds():
    assert most_seeds(sample(1, 1, 0), lambda v: v == 1, "n", "w").holds
    assert not most_seeds(sample(1, 0, 0), lambda v: v == 1, "n", "w").holds
    assert not most_seeds(sample(None, None, 1), lambda v: True, "n", "w").holds  # censored never counts


def _design(judge, control=True):
    arms = [Arm("a", "arm a", tiny())]
    return Design(arms, [0, 1], measure=lambda r: {"acc": r.summary["test_acc"]}, judge=judge,
                  control=Control(("optim.lr=1e-9",), "no learning") if control else None, size="tiny", falsifier="x")


def test_supported_needs_the_effect_and_its_absence_in_the_control():
    arms = [Arm("a", "arm a", tiny())]

    def results(acc):
        runs = {"a": [fake_run(summary={"test_acc": acc}), fake_run(summary={"test_acc": acc})]}
        return results_from_runs(arms, [0, 1], runs, lambda r: {"acc": r.summary["test_acc"]})

    def judge(res):
        return [most_seeds(res["a"]["acc"], lambda v: v > 0.5, "learns", "acc > 0.5")]

    design = _design(judge)
    assert judge_design(design, results(0.9), results(0.1))["supported"] is True
    both = judge_design(design, results(0.9), results(0.9))  # the effect shows without its cause
    assert both["supported"] is False and both["control"]["holds"] is True
    assert judge_design(design, results(0.1), results(0.1))["supported"] is False
    not_run = judge_design(design, results(0.9), None)
    assert not_run["supported"] is True and not_run["control"]["ran"] is False
    assert isinstance(judge(results(0.9))[0], Criterion)


@pytest.fixture
def learning_recipe():
    """A tiny claim with a cause: 'AdamW (lr 0.01) fits x+y mod 11', absent at lr 1e-9."""

    @recipe("test-learns", paper="none", claim="A tiny MLP trained with AdamW fits its training set.")
    def learns(ctx):
        return Design(
            arms=[Arm("adamw", "AdamW lr 0.01", tiny(train={"steps": 60, "eval_every": 20, "checkpoint_every": None}))],
            seeds=[0, 1, 2],
            measure=lambda run: {"train_acc": run.summary["train_acc"], "t_train_acc": run.summary["t_train_acc"]},
            judge=lambda res: [most_seeds(res["adamw"]["train_acc"], lambda v: v >= 0.9, "fits", "train acc >= 0.9")],
            control=Control(("optim.lr=1e-9",), "with a learning rate of 1e-9 nothing is learned in 60 steps"),
            size="x+y mod 11, 60 steps",
            falsifier="train acc below 0.9 in most seeds",
        )

    yield "test-learns"
    RECIPES.pop("test-learns")


def test_a_recipe_end_to_end_with_its_control(tmp_path, learning_recipe):
    verdict = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False)
    assert verdict == json.loads((tmp_path / "rep" / "verdict.json").read_text())
    assert verdict["supported"] is True
    assert verdict["treatment"]["holds"] is True and verdict["control"]["holds"] is False
    assert verdict["control"]["ran"] is True and verdict["seeds"] == [0, 1, 2]
    assert len(verdict["per_seed"]["adamw"]["train_acc"]) == 3
    assert verdict["measured"]["adamw.train_acc.median"] >= 0.9
    assert verdict["commit"] and "would have been false if" in verdict["notes"]
    for s in (0, 1, 2):
        assert (tmp_path / "rep" / f"adamw-seed{s}" / "metrics.parquet").is_file()
        assert (tmp_path / "rep" / "control" / f"adamw-seed{s}" / "metrics.parquet").is_file()
    assert (tmp_path / "rep" / "test-learns.png").stat().st_size > 1000


def test_an_override_that_removes_the_cause_flips_the_verdict(tmp_path, learning_recipe, capsys):
    code = main(["reproduce", learning_recipe, "--quick", "--no-progress", "--out", str(tmp_path / "rep"),
                 "--set", "optim.lr=1e-9", "--seeds", "2"])
    assert code == 0
    verdict = json.loads((tmp_path / "rep" / "verdict.json").read_text())
    assert verdict["supported"] is False and verdict["overrides"] == ["optim.lr=1e-9"] and verdict["seeds"] == [0, 1]
    assert verdict["size"].endswith("; the values above overridden by --set optim.lr=1e-9")  # the size names what changed it
    assert "FAILS" in capsys.readouterr().out


def test_bad_seeds_and_jobs_are_one_line_errors(capsys, learning_recipe):
    for args in (["--seeds", "0"], ["--seeds", "a,b"], ["--seeds", "1,1"], ["--jobs", "0"]):
        assert main(["reproduce", learning_recipe, *args]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("groklab: error:") and "\n" not in err


def test_parallel_workers_give_the_same_verdict(tmp_path, learning_recipe):
    one = reproduce(learning_recipe, out=tmp_path / "one", quick=True, progress=False, seeds=[0, 1])
    two = reproduce(learning_recipe, out=tmp_path / "two", quick=True, progress=False, seeds=[0, 1], jobs=2)
    assert one["per_seed"] == two["per_seed"] and one["supported"] == two["supported"]


def test_reuse_reads_finished_runs_instead_of_retraining(tmp_path, learning_recipe):
    first = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False, seeds=[0])
    summary = tmp_path / "rep" / "adamw-seed0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    again = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False, seeds=[0], reuse=True)
    assert summary.stat().st_mtime_ns == stamp and again["per_seed"] == first["per_seed"]
    # a changed config is retrained, not read
    other = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False, seeds=[0], reuse=True,
                      overrides=["train.steps=40"])
    assert summary.stat().st_mtime_ns != stamp and other["overrides"] == ["train.steps=40"]


def test_reuse_resumes_a_killed_run_from_its_checkpoint(tmp_path, learning_recipe):
    """A reproduction killed mid-run (checkpoints, no summary) continues that run with ``reuse``
    and reaches the uninterrupted numbers."""
    sets = ["train.checkpoint_every=20"]
    first = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False, seeds=[0], overrides=sets)
    run = tmp_path / "rep" / "adamw-seed0"
    (run / "summary.json").unlink()  # as if killed between the step-40 checkpoint and the end
    (run / "checkpoints" / "step_00000060.safetensors").unlink()
    kept = run / "checkpoints" / "step_00000040.safetensors"
    stamp = kept.stat().st_mtime_ns
    again = reproduce(learning_recipe, out=tmp_path / "rep", quick=True, progress=False, seeds=[0], overrides=sets,
                      reuse=True)
    assert (run / "summary.json").is_file() and kept.stat().st_mtime_ns == stamp  # continued, not retrained
    assert again["per_seed"] == first["per_seed"] and again["reused_runs"] == 1  # the control run was complete


def test_a_control_on_some_arms_runs_and_judges_only_those(tmp_path):
    short = tiny(train={"steps": 40, "eval_every": 20, "checkpoint_every": None})

    @recipe("test-subset", paper="none", claim="Tiny MLPs at two learning rates fit their training set.")
    def subset(ctx):
        return Design(
            arms=[Arm("fast", "lr 0.01", short), Arm("slow", "lr 0.003", short.override("optim.lr=0.003"))],
            seeds=[0],
            measure=lambda run: {"train_acc": run.summary["train_acc"]},
            judge=lambda res: [most_seeds(res[a.key]["train_acc"], lambda v: v >= 0.0, f"{a.key} ran", "ran")
                               for a in res.arms],
            control=Control(("optim.lr=1e-9",), "nothing is learned", arms=("slow",)),
            size="x+y mod 11, 40 steps", falsifier="never",
        )

    try:
        verdict = reproduce("test-subset", out=tmp_path / "rep", quick=True, progress=False)
        assert [c["name"] for c in verdict["control"]["criteria"]] == ["slow ran"]  # judged on its one arm
        assert set(verdict["control_measured"]) == {f"slow.train_acc.{s}" for s in ("median", "low", "high")}
        assert sorted(p.name for p in (tmp_path / "rep" / "control").iterdir()) == ["slow-seed0"]
        assert "on 1 of the 2 arms" in verdict["notes"]
        with pytest.raises(GroklabError, match="does not have: nope"):
            Control(("optim.lr=1e-9",), "x", arms=("nope",)).arms_of([Arm("fast", "lr 0.01", short)])
    finally:
        RECIPES.pop("test-subset")
