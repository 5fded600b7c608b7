"""lazyrich-modular-mlp (paper 001 fig. 2): the notebook's network and its check on hand-made runs."""

from pathlib import Path

from groklab.recipes import RECIPES, RecipeContext
from groklab.recipes.lazyrich import judge_modular, measure_modular, modular_config
from groklab.recipes.protocol import Arm, results_from_runs
from tests.conftest import tiny
from tests.recipes.fakes import curve, fake_run

STEPS = range(0, 60_001, 500)


def modular_run(t_fit, t_gen, norm_slope=1e-3):
    """Accuracy jumps at ``t_fit`` / ``t_gen`` (None: never); the weight norm moves linearly."""
    train = [1.0 if t_fit is not None and s >= t_fit else 0.1 for s in STEPS]
    test = [1.0 if t_gen is not None and s >= t_gen else 0.04 for s in STEPS]
    return fake_run(curve(STEPS, train_acc=train, test_acc=test, train_loss=1.0, test_loss=1.0,
                          weight_norm=[80 * (1 + norm_slope * s / 1000) for s in STEPS]), config=tiny())


def results(per_arm):
    arms = [Arm(k, k, tiny()) for k in per_arm]
    return results_from_runs(arms, [0, 1, 2], {k: [modular_run(*r) for r in v] for k, v in per_arm.items()},
                             measure_modular)


def test_the_notebooks_network_and_optimiser():
    c = modular_config(1.5, 100_000)
    assert (c.task.p, c.task.train_frac, c.model.width, c.model.activation, c.model.bias) == (23, 0.9, 100, "quadratic", False)
    assert (c.model.parametrization, c.model.centred, c.optim.name, c.optim.weight_decay) == ("mean_field", False, "gd", 0)
    assert c.model.alpha == 2.25 and abs(c.lr - 100 / 2.25 ** 2) < 1e-9  # alpha = s^2, lr 100 / alpha^2


def test_measure_reads_the_norm_when_it_generalises():
    m = measure_modular(modular_run(20_000, 30_000))
    assert m["grok_ratio"] == 1.5 and abs(m["norm_ratio_at_grok"] - 1.03) < 1e-9
    assert measure_modular(modular_run(20_000, None))["norm_ratio_at_grok"] is None


def test_check_passes_on_grokking_with_a_growing_norm():
    res = results({"s-0.5": [(4000, 4500), (4200, 4800), (4100, 4500)],
                   "s-1": [(5000, 20_000), (5500, 21_000), (5200, 19_000)],
                   "s-2": [(20_000, None), (21_000, None), (22_000, 55_000)]})
    criteria = judge_modular(res)
    assert all(criteria), [c.detail for c in criteria]


def test_check_fails_without_a_delay_or_with_a_shrinking_norm():
    late = [(5000, 20_000), (5500, 21_000), (5200, 19_000)]
    small = [(4000, 4500), (4200, 4800), (4100, 4500)]
    # the control's pattern: every arm at the smallest scale generalises as it fits
    flat = judge_modular(results({"s-0.5": small, "s-1": small}))
    assert not flat[0] and not all(flat)
    # a modest delay (ratio 1.3, as the notebook's settings give at s = 1) is not grokking by this check
    modest = judge_modular(results({"s-0.5": small, "s-1": [(20_000, 26_000), (19_000, 25_000), (20_500, 27_000)]}))
    assert not modest[0]
    arms = [Arm(k, k, tiny()) for k in ("s-0.5", "s-1")]
    shrinking = results_from_runs(arms, [0, 1, 2], {
        "s-0.5": [modular_run(*r, norm_slope=-5e-3) for r in small],
        "s-1": [modular_run(*r, norm_slope=-5e-3) for r in late]}, measure_modular)
    assert not judge_modular(shrinking)[1]


def test_control_moves_every_arm_to_the_smallest_scale():
    for quick in (True, False):
        d = RECIPES["lazyrich-modular-mlp"].fn(RecipeContext(Path("/tmp/unused"), quick))
        assert {a.config.override(*d.control.overrides).model.alpha for a in d.arms} == {0.25}
        assert any(a.config.model.alpha != 0.25 for a in d.arms)
