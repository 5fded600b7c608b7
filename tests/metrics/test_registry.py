"""The metric schedule: cost classes, the log-spaced default, the explicit override, and the
Hessian trace shared by ``sharpness`` and ``robustness`` within one evaluation."""

import math

import pytest

import groklab
from groklab.metrics import geometry
from groklab.metrics.registry import (
    METRIC_COSTS,
    compute_metrics,
    due_metrics,
    log_spaced_due,
    metric_due,
    register_metric,
)
from tests.conftest import tiny

PAPER_000 = ["matrix_info", "sharpness", "top_eigenvalue", "input_grad_norm", "robustness", "sparsity_entropy",
             "nn_accuracy", "group_laws"]


def _due_steps(every: int, last: int, per_decade: int) -> list[int]:
    evaluations = sorted(set(range(0, last + 1, every)) | {last})
    return [s for s in evaluations if log_spaced_due(s, every, last, per_decade)]


def test_log_spaced_schedule_of_the_default_preset():
    # mlp-add: evaluations every 20 steps to 3000, 10 per decade: every evaluation up to 100,
    # then the first evaluation past each 10^(k/10) (126 -> 140, 158 -> 160, 200, 251 -> 260, ...).
    assert _due_steps(20, 3000, 10) == [0, 20, 40, 60, 80, 100, 140, 160, 200, 260, 320, 400, 520, 640, 800,
                                        1000, 1260, 1600, 2000, 2520, 3000]  # fmt: skip


@pytest.mark.parametrize("every, last, k", [(20, 3000, 10), (7, 12345, 20), (200, 100_000, 10), (1, 5000, 3)])
def test_log_spaced_schedule_has_one_point_per_bin_and_the_ends(every, last, k):
    due = _due_steps(every, last, k)
    assert due[0] == 0 and due[-1] == last
    inner = [s for s in due if 0 < s < last]
    bins = [math.floor(k * math.log10(s) + 1e-9) for s in inner]
    assert bins == sorted(set(bins))  # at most one point per bin, in order
    reachable = {math.floor(k * math.log10(s) + 1e-9) for s in range(every, last, every)}
    assert set(bins) == reachable  # and every bin that holds an evaluation gets one
    assert len(due) <= k * math.log10(last) + 3  # bins 0 .. floor(k log10 last), step 0 and the last


def test_exact_powers_of_ten_start_their_bin():
    assert log_spaced_due(1000, 20, 3000, 10) and log_spaced_due(100, 20, 3000, 10)
    assert not log_spaced_due(1020, 20, 3000, 10)


def test_cost_classes_pick_the_default_cadence():
    config = tiny(train={"steps": 3000, "eval_every": 20}, eval={"metrics": PAPER_000 + ["layer_norms"]})
    cheap = ("input_grad_norm", "sparsity_entropy", "layer_norms")
    assert {n for n in config.eval.metrics if METRIC_COSTS[n] == "cheap"} == set(cheap)
    assert METRIC_COSTS["sample_mse_acc"] == "cheap"  # regression recipes rely on every evaluation
    assert due_metrics(config, 1020) == cheap
    assert due_metrics(config, 1000) == tuple(config.eval.metrics)
    assert due_metrics(config, 1010) == ()  # not an evaluation step
    last = tiny(train={"steps": 3010, "eval_every": 20}, eval={"metrics": ["sharpness"]})
    assert metric_due("sharpness", 3010, last)  # the last step, though not a multiple of eval_every


def test_explicit_metrics_every_overrides_every_class():
    config = tiny(train={"steps": 3000, "eval_every": 20}, eval={"metrics": PAPER_000, "metrics_every": 40})
    assert due_metrics(config, 1040) == tuple(PAPER_000)
    assert due_metrics(config, 1020) == ()
    assert due_metrics(config, 3000) == tuple(PAPER_000)


def test_a_run_records_each_metric_on_its_schedule(tmp_path):
    config = tiny(train={"steps": 200, "eval_every": 10, "checkpoint_every": None},
                  eval={"metrics": ["layer_norms", "sharpness"], "metrics_per_decade": 2})  # fmt: skip
    m = groklab.run(config, out=tmp_path / "run", progress=False).metrics
    assert m["norm.W_in"].notna().all()
    assert m.loc[m["sharpness"].notna(), "step"].tolist() == [0, 10, 40, 100, 200]  # bins at 10^(k/2)


def test_unknown_cost_class_is_rejected():
    with pytest.raises(ValueError, match="cost"):
        register_metric("x", cost="pricey")


def test_sharpness_and_robustness_share_one_trace_per_evaluation(tmp_path, monkeypatch):
    from groklab.store.rundir import RunDir
    from groklab.training.loop import Trainer

    config = tiny(eval={"metrics": ["sharpness", "robustness"]})
    trainer = Trainer.create(config, RunDir(tmp_path / "ctx"))
    calls = []
    real = geometry.hessian_trace
    monkeypatch.setattr(geometry, "hessian_trace", lambda *a: calls.append(1) or real(*a))
    x = trainer.x

    def context(step):
        return trainer.metric_context(step)

    compute_metrics(config.eval.metrics, context(0))
    assert len(calls) == 1
    compute_metrics(config.eval.metrics, context(10))  # a new evaluation estimates it afresh
    assert len(calls) == 2
