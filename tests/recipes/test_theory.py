"""Recipe ``theory-vs-simulation``: its design, and its judge on hand-made curves that must pass
and must fail (no training, no DMFT solve: the theory curves are made by hand or stubbed)."""

import math

import numpy as np
import pytest

from groklab.recipes import RECIPES, list_recipes
from groklab.recipes import theory as th
from groklab.recipes.protocol import results_from_runs
from tests.recipes.fakes import fake_run

TAU = np.linspace(0.0, 10.0, 101)


def _curve(t_half: float, floor: float = 0.02) -> np.ndarray:
    """A test curve relative to its start: 1 at tau 0, falling smoothly around ``t_half``."""
    return floor + (1 - floor) / (1 + np.exp(2.0 * (TAU - t_half))) * (1 + np.exp(-2.0 * t_half))


def _comp(gap: float = 0.0, t_half: float = 4.0, stretch: float = 1.0, train_gap: float = 0.0, seeds: int = 3):
    """compare_arm on hand-made seeds: the theory curve, and simulations equal to it times
    (1 + gap) (so the relative gap is ``gap``), optionally with time stretched by ``stretch``."""
    theory = dict(tau=TAU, test=_curve(t_half), train=_curve(t_half / 3))
    sims = []
    for k in range(seeds):
        wiggle = 1 + 0.2 * gap * (k - (seeds - 1) / 2)  # seeds differ, the average keeps the gap
        sims.append(dict(tau=TAU, test=np.interp(TAU / stretch, TAU, theory["test"]) * (1 + gap * wiggle),
                         train=theory["train"] * (1 + train_gap)))
    return th.compare_arm(sims, [theory] * seeds)


def _names(criteria, holding: bool):
    return sorted(c.name for c in criteria if bool(c.holds) == holding)


def test_recipe_is_listed_and_designs_validate():
    assert "theory-vs-simulation" in list_recipes()
    assert "theory-vs-simulation" in RECIPES
    for quick in (True, False):
        d = th.make_design(quick)
        keys = [a.key for a in d.arms]
        dims = th.DIMS_QUICK if quick else th.DIMS_FULL
        assert len(keys) == len(set(keys)) == len(th.SETTINGS) * len(dims) + 1
        for arm in d.arms:
            c = arm.config
            D, P = c.task.d, c.task.n_train
            assert c.model.width == th.N and c.model.centre
            assert c.lr == pytest.approx(th.ETA * th.N / c.model.alpha ** 2)  # lr eta N / alpha^2
            assert P == (th.ONLINE_P if arm.key == "online" else th.P_OVER_D) * D
        d.control.check_applies([a.config for a in d.arms])
        assert len(d.seeds) >= 2


def test_gap_and_grokking_time_helpers():
    tau = np.array([0.0, 1.0, 2.0, 3.0])
    assert th.first_below(tau, np.array([1.0, 0.5, 0.06, 0.01])) == pytest.approx(1.0 + 0.4 / 0.44)
    assert th.first_below(tau, np.array([1.0, 0.5, 0.2, 0.11])) is None
    gap, where = th.curve_gap(tau, np.array([1.0, 0.55, 0.2, 0.1]), tau, np.array([1.0, 0.5, 0.25, 0.1]))
    assert gap == pytest.approx(0.2) and where == 2.0
    # Simulated times beyond the theory's horizon are not compared.
    assert th.curve_gap(np.array([0.0, 5.0]), np.array([1.0, 9.0]), tau, np.ones(4))[0] == 0.0


def test_compare_arm_measures_the_gap_of_the_seed_averages():
    c = _comp(gap=0.05)
    assert c["test_gap"] == pytest.approx(0.05, rel=1e-6)
    assert c["t_grok_gap"] is not None and c["t_grok_gap"] < 0.02
    stretched = _comp(stretch=1.3)
    assert stretched["t_grok_gap"] == pytest.approx(0.3 / 1.3, rel=0.05)  # the simulation groks 1.3x later
    assert stretched["test_gap"] > 0.3


def test_judge_passes_when_theory_and_simulation_agree():
    by_setting = {"a": {100: _comp(0.09), 200: _comp(0.06), 400: _comp(0.03)},
                  "b": {100: _comp(0.2, t_half=20.0), 400: _comp(0.05, t_half=20.0)}}  # never generalises
    crits = th.judge_comparisons(by_setting, online=_comp(0.04))
    assert all(crits), [c for c in crits if not c]
    assert len(crits) == 3 * 2 + 1
    detail = " ".join(c.detail for c in crits)
    assert "D=100: test gap 9.0%" in detail and "3.0%" in detail  # every D's gap is stated


@pytest.mark.parametrize("case, failing", [
    ({"a": {100: _comp(0.2), 400: _comp(0.15)}}, ["a: DMFT within 10% of the simulated test loss at D=400"]),
    ({"a": {100: _comp(0.03), 400: _comp(0.05)}}, ["a: the test gap shrinks as D grows"]),
    ({"a": {100: _comp(0.5, stretch=1.25), 400: _comp(0.0, stretch=1.25)}},
     ["a: DMFT within 10% of the simulated test loss at D=400",
      "a: grokking time (test <= 0.1x, tau) within 10% at D=400"]),
])
def test_judge_fails_where_it_should(case, failing):
    crits = th.judge_comparisons(case)
    assert _names(crits, False) == sorted(failing)


def test_judge_fails_when_only_one_side_generalises():
    theory = dict(tau=TAU, test=_curve(4.0), train=_curve(1.0))
    stuck = dict(tau=TAU, test=np.maximum(_curve(4.0), 0.15), train=_curve(1.0))  # never below 0.1
    comp = th.compare_arm([stuck] * 2, [theory] * 2)
    crits = th.judge_comparisons({"a": {100: comp, 400: comp}})
    grok = next(c for c in crits if "grokking time" in c.name)
    assert not grok and "only one generalises" in grok.detail


def test_a_failed_solve_fails_its_criteria_and_says_why():
    ok = _comp(0.01)
    failed = th.compare_arm([dict(tau=TAU, test=_curve(4.0), train=_curve(1.0))], [dict(failed="did not converge")])
    crits = th.judge_comparisons({"a": {100: ok, 400: failed}, "b": {100: _comp(0.05), 400: ok}}, online=failed)
    assert _names(crits, False) == ["a: the DMFT was solved for every seed", "online limit: the DMFT was solved for every seed"]
    assert "did not converge" in crits[0].detail


def test_judge_fails_when_the_online_limit_is_off():
    crits = th.judge_comparisons({"a": {100: _comp(0.05), 400: _comp(0.01)}}, online=_comp(0.3))
    assert _names(crits, False) == ["online limit within 10% of simulations at P/D = 64"]


def test_measure_and_judge_on_runs_with_a_stubbed_theory(monkeypatch):
    # The design's own measure and judge, on hand-made runs: a run that follows the theory passes;
    # the control's change (a faster simulation, judged against the arms' theory) fails.
    curve = dict(tau=TAU, train=_curve(1.0), test=_curve(4.0), online=_curve(3.0))
    monkeypatch.setattr(th, "solve_for", lambda setting, p, state, quick: curve)
    monkeypatch.setattr(th, "initial_state", lambda config: {})
    design = th.make_design(quick=True)

    def run_for(arm, speed):
        D = arm.config.task.d
        tau = TAU[TAU <= 6.0] if arm.key == "online" else TAU
        test = np.interp(tau * speed, TAU, curve["online" if arm.key == "online" else "test"])
        train = np.interp(tau * speed, TAU, curve["online" if arm.key == "online" else "train"])
        return fake_run({"step": list(np.round(tau * D)), "train_loss": list(0.7 * train),
                         "test_loss": list(0.75 * test)}, config=arm.config)

    for speed, expect in ((1.0, True), (2.0, False)):
        runs = {a.key: [run_for(a, speed)] * 2 for a in design.arms}
        results = results_from_runs(design.arms, design.seeds, runs, design.measure)
        crits = design.judge(results)
        if expect:
            # Identical curves everywhere: the gaps are 0 and cannot shrink with D, so only the
            # "shrinks" criteria fail; every other criterion holds.
            assert all(c for c in crits if "shrinks" not in c.name)
            assert results["rich-D400"]["test_gap"].median < 0.02
        else:
            assert not any(c for c in crits if "within" in c.name and "test loss" in c.name)
            assert results["rich-D400"]["test_gap"].median > 0.5
        assert math.isfinite(results["online"]["test_gap"].median)
