"""Paper 000's recipes: every judge on hand-made runs that must pass and runs that must fail
(inverted comparisons, the control's pattern), the controls' overrides against every arm, and
the settings rules."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from groklab.recipes import RECIPES, RecipeContext, list_recipes
from groklab.recipes import robust as rb
from groklab.recipes.protocol import Arm, Control, Design, judge_design, results_from_runs
from groklab.metrics.robustness import MATRIX_INFO_SWEEP, sweep_column
from tests.recipes.fakes import fake_run

NAMES = ("robust-fig1", "robust-fig2", "robust-fig3", "robust-fig4-5", "robust-fig6-7", "robust-fig8",
         "robust-fig9-10", "robust-fig11-18", "robust-fig15-16", "robust-ranking")
STEPS = list(range(0, 4001, 100))


def config(wd=1.0):
    return SimpleNamespace(optim=SimpleNamespace(weight_decay=wd))


def modular(t_fit=400, t_test=2200, wd=1.0, **columns):
    """A hand-made mlp-add-like run evaluated every 100 steps: train acc reaches 1 at ``t_fit``,
    test acc sits at 0.01, is 0.6 for the 200 steps before ``t_test`` (None: never groks) and 0.97
    from it. ``columns``: name -> function of step (None = not computed at that step)."""
    table = {"step": STEPS,
             "train_acc": [1.0 if s >= t_fit else 0.5 * s / t_fit for s in STEPS],
             "test_acc": [0.01 if t_test is None or s < t_test - 200 else (0.6 if s < t_test else 0.97) for s in STEPS],
             "train_loss": [1.0 if s < t_fit else 0.01 for s in STEPS],
             "test_loss": [5.0 if t_test is None or s < t_test else 0.1 for s in STEPS]}
    for name, fn in columns.items():
        table[name] = [float("nan") if fn(s) is None else fn(s) for s in STEPS]
    return fake_run(table, config=config(wd))


def results(measure, **arms):
    """Results of ``measure`` over hand-made runs: ``arm key -> [run per seed]``."""
    n = len(next(iter(arms.values())))
    arm_list = [Arm(k, k, None) for k in arms]
    return results_from_runs(arm_list, list(range(n)), arms, measure)


def holds(judge, res):
    return [c.holds for c in judge(res)]


def test_paper_000_recipes_are_registered():
    names = list_recipes()
    assert all(name in names for name in NAMES)


# ----------------------------------------------------------------------------- designs and controls
@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_every_design_validates_and_its_control_changes_every_arm(tmp_path, name, quick):
    design = RECIPES[name].fn(RecipeContext(tmp_path, quick=quick))
    assert isinstance(design, Design) and design.notes and design.falsifier and design.size
    seeds = design.seeds
    timing = name in ("robust-fig3", "robust-fig9-10", "robust-ranking")
    assert len(seeds) >= (3 if quick else 5) or not timing
    assert len(seeds) >= 3
    if design.control is None:
        assert name in ("robust-fig11-18", "robust-ranking")  # the paper names no setting without the effect
        return
    design.control.check_applies([arm.config for arm in design.arms])  # every override has an arm to act on
    for arm in design.arms:
        controlled = design.control.apply(arm.config)  # validates
        assert controlled != arm.config, f"{name}: control leaves arm {arm.key} unchanged (an A/A copy)"


def test_controls_remove_the_named_cause(tmp_path):
    ctx = RecipeContext(tmp_path, quick=True)
    for name in ("robust-fig1", "robust-fig2", "robust-fig4-5", "robust-fig6-7", "robust-fig15-16"):
        assert RECIPES[name].fn(ctx).control.overrides == ("optim.weight_decay=0",)
    fig3 = RECIPES["robust-fig3"].fn(ctx)
    by_key = {a.key: fig3.control.apply(a.config) for a in fig3.arms}
    assert by_key["wd"].task.train_frac == 0.9 and by_key["images"].model.init_scale == 1.0
    fig9 = RECIPES["robust-fig9-10"].fn(ctx)
    assert all(fig9.control.apply(a.config).interventions.perturb.on for a in fig9.arms)


def test_importing_the_recipes_builds_no_task():
    code = ("import groklab.tasks as t\n"
            "def boom(*a, **k): raise SystemExit('a task was built at import')\n"
            "t.build_task = boom\n"
            "import groklab.recipes.robust\n"
            "from groklab.recipes import _load_all; _load_all()\n")  # every recipe module
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_perturbation_lambdas_follow_the_input_scale_rule():
    from groklab.presets import load_preset

    assert rb.perturb_lambdas(load_preset("mlp-add")) == (0.1, 0.05)  # one-hot pairs mod 97: RMS sqrt(1/97)
    assert rb.mlp_add_perturb() == ("interventions.perturb.lambda1=0.1", "interventions.perturb.lambda2=0.05")
    assert rb.mlp_add_perturb(0.5) == ("interventions.perturb.lambda1=0.05", "interventions.perturb.lambda2=0.025")
    assert rb.perturb_lambdas(load_preset("mlp-add").override("task.p=11")) == (0.3, 0.15)
    lambda1, lambda2 = rb.perturb_lambdas(load_preset("mnist-omnigrok"))  # digits pixels in [0, 1]
    assert 0.3 < lambda1 < 0.7 and lambda2 == lambda1 / 2


def test_images_config_is_digits_when_quick_and_mnist_at_full_size_with_the_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GROKLAB_MNIST", str(tmp_path))
    quick = rb.images_config(True, ("interventions.mi.weight=0.1",))
    assert quick.task.dataset == "digits" and quick.train.steps == rb.IMAGES_STEPS
    assert quick.interventions.mi.on and quick.model.init_scale == 8.0
    full = rb.images_config(False)
    assert full.task.dataset == "mnist" and full.task.path == str(tmp_path) and full.task.n_test == 10000
    monkeypatch.delenv("GROKLAB_MNIST")
    assert rb.images_config(False).task.dataset == "digits"


def test_ranking_arms_at_full_size_have_two_strengths_per_intervention(tmp_path):
    quick = RECIPES["robust-ranking"].fn(RecipeContext(tmp_path, quick=True))
    full = RECIPES["robust-ranking"].fn(RecipeContext(tmp_path, quick=False))
    assert [a.key for a in quick.arms] == ["wd", "abelian", "perturb"]
    families = {}
    for a in full.arms:
        families.setdefault(rb.family(a.key), []).append(a.key)
    assert all(len(families[f]) == 2 for f in ("abelian", "perturb", "mi", "grokfast"))
    assert len({a.config for a in full.arms}) == len(full.arms)


# ----------------------------------------------------------------------------- fig. 1
def test_norm_peak_judge():
    norm = lambda s: 100 + s / 20 if s < 1600 else 180 - (s - 1600) / 10  # noqa: E731  peaks at 1600, falls after
    good = results(rb.measure_norm_peak, wd=[modular(weight_norm=norm) for _ in range(3)])
    assert all(holds(rb.judge_norm_peak, good))
    rising = results(rb.measure_norm_peak, wd=[modular(weight_norm=lambda s: 100 + s) for _ in range(3)])
    assert holds(rb.judge_norm_peak, rising) == [True, False]
    early = results(rb.measure_norm_peak, wd=[modular(t_test=600, weight_norm=norm) for _ in range(3)])
    assert not all(holds(rb.judge_norm_peak, early))  # no delay: not grokking


# ----------------------------------------------------------------------------- fig. 2
def falling(start=100.0, peak_at=300, rate=1e-3):
    """Rises to ``start`` at ``peak_at``, then decays exponentially."""
    return lambda s: start * s / peak_at if s < peak_at else start * 2.718 ** (-rate * (s - peak_at))


def test_sharpness_judge_passes_on_a_fall_and_fails_on_a_rise():
    good = results(rb.measure_sharpness, wd=[modular(sharpness=falling()) for _ in range(3)])
    assert all(holds(rb.judge_sharpness, good))
    rising = results(rb.measure_sharpness, wd=[modular(sharpness=lambda s: 10 + s) for _ in range(3)])
    assert holds(rb.judge_sharpness, rising) == [True, False, False]
    # falls by 30% only, but steadily: keeps decreasing, not enough
    slight = results(rb.measure_sharpness, wd=[modular(sharpness=lambda s: 100 - 0.01 * s) for _ in range(3)])
    assert holds(rb.judge_sharpness, slight) == [True, False, True]
    no_grok = results(rb.measure_sharpness, wd=[modular(t_test=None, sharpness=falling()) for _ in range(3)])
    assert holds(rb.judge_sharpness, no_grok)[0] is False  # weight decay but no grokking: premise fails


def test_sharpness_falling_without_weight_decay_makes_the_verdict_unsupported():
    design = Design([Arm("wd", "wd", None)], [0, 1, 2], rb.measure_sharpness, rb.judge_sharpness,
                    Control(rb.NO_DECAY, "x"), "s", "f")
    treated = results(rb.measure_sharpness, wd=[modular(sharpness=falling()) for _ in range(3)])
    control = results(rb.measure_sharpness, wd=[modular(t_test=None, wd=0.0, sharpness=falling()) for _ in range(3)])
    assert all(holds(rb.judge_sharpness, control))  # the premise asks nothing of the no-decay control
    assert judge_design(design, treated, control)["supported"] is False
    flat = results(rb.measure_sharpness, wd=[modular(t_test=None, wd=0.0, sharpness=lambda s: 50.0 + s / 100)
                                             for _ in range(3)])
    assert judge_design(design, treated, flat)["supported"] is True


# ----------------------------------------------------------------------------- figs. 6-7
def mid(drop=0.5, peak_at=200, t_fit=400):
    """Rises to 1 at ``peak_at``, falls linearly to ``1 - drop`` at ``t_fit``, then stays."""
    def f(s):
        if s <= peak_at:
            return s / peak_at
        return 1 - drop * min(s - peak_at, t_fit - peak_at) / (t_fit - peak_at)
    return f


def test_mid_ed_judge():
    good = results(rb.measure_mid_ed, wd=[modular(**{"matrix_info.mid": mid(), "matrix_info.ed": mid(0.3)})
                                          for _ in range(3)])
    assert all(holds(rb.judge_mid_ed, good))
    rising = lambda s: s  # noqa: E731
    bad = results(rb.measure_mid_ed, wd=[modular(**{"matrix_info.mid": rising, "matrix_info.ed": mid()})
                                         for _ in range(3)])
    assert holds(rb.judge_mid_ed, bad) == [True, False, True]
    small = results(rb.measure_mid_ed, wd=[modular(**{"matrix_info.mid": mid(0.1), "matrix_info.ed": mid(0.1)})
                                           for _ in range(3)])
    assert holds(rb.judge_mid_ed, small) == [True, False, False]


def test_mid_ed_drop_without_generalisation_makes_the_verdict_unsupported():
    design = Design([Arm("wd", "wd", None)], [0, 1, 2], rb.measure_mid_ed, rb.judge_mid_ed,
                    Control(rb.NO_DECAY, "x"), "s", "f")
    cols = {"matrix_info.mid": mid(), "matrix_info.ed": mid()}
    treated = results(rb.measure_mid_ed, wd=[modular(**cols) for _ in range(3)])
    same_drop = results(rb.measure_mid_ed, wd=[modular(t_test=None, wd=0.0, **cols) for _ in range(3)])
    verdict = judge_design(design, treated, same_drop)
    assert verdict["treatment"]["holds"] is True and verdict["control"]["holds"] is True
    assert verdict["supported"] is False
    no_drop = results(rb.measure_mid_ed, wd=[modular(t_test=None, wd=0.0, **{"matrix_info.mid": lambda s: 1 + s,
                                                                             "matrix_info.ed": lambda s: 1 + s})
                                             for _ in range(3)])
    assert judge_design(design, treated, no_drop)["supported"] is True


# ----------------------------------------------------------------------------- figs. 4-5
def step_at(at, size=1.0):
    """0 before ``at``, ``size`` from it: one jump, in the interval ending at ``at``."""
    return lambda s: size * (s >= at)


def jumps(at_pe, at_pmi, **kw):
    cols = {}
    for sigma in MATRIX_INFO_SWEEP:
        cols[sweep_column("pe", sigma)] = step_at(at_pe)
        cols[sweep_column("pmi", sigma)] = step_at(at_pmi)
    return modular(**cols, **kw)


def test_jump_judge_needs_the_largest_change_inside_the_grokking_window():
    # test acc: 0.01 until 2000, 0.6 at 2000-2100, 0.97 from 2200: window [1900, 2200]
    good = results(rb.measure_jumps, wd=[jumps(2100, 2000) for _ in range(3)])
    assert all(holds(rb.judge_jumps, good))
    at_fit = results(rb.measure_jumps, wd=[jumps(300, 2100) for _ in range(3)])
    assert holds(rb.judge_jumps, at_fit) == [False, True]
    after = results(rb.measure_jumps, wd=[jumps(2100, 3000) for _ in range(3)])
    assert holds(rb.judge_jumps, after) == [True, False]
    one_seed = results(rb.measure_jumps, wd=[jumps(2100, 2100), jumps(300, 300), jumps(300, 300)])
    assert holds(rb.judge_jumps, one_seed) == [False, False]
    m = rb.measure_jumps(jumps(2100, 300))
    assert m["pe_0.1.jump_rel"] == pytest.approx((2100 - 400) / (2200 - 400)) and m["pmi_0.1.jump_step"] == 300


def test_jump_judge_fails_where_nothing_groks():
    control = results(rb.measure_jumps, wd=[jumps(2100, 2100, t_test=None, wd=0.0) for _ in range(3)])
    assert holds(rb.judge_jumps, control) == [False, False]
    assert rb.measure_jumps(jumps(2100, 2100, t_test=None))["pe_0.1.post_fit_jump_step"] == 2100


# ----------------------------------------------------------------------------- figs. 9-10
def abelian_run(t_test, agree=0.05):
    return modular(t_test=t_test, **{"heldout_laws.wrong_pair_agree": lambda s: agree,
                                     "heldout_laws.abelian_acc": lambda s: 0.1})


def test_abelian_judge():
    good = results(rb.measure_abelian, wd=[abelian_run(t) for t in (2200, 2400, 2300)],
                   abelian=[abelian_run(t, 0.6) for t in (900, 1000, 1100)])
    assert all(holds(rb.judge_abelian, good))
    inverted = results(rb.measure_abelian, wd=[abelian_run(t) for t in (900, 1000, 1100)],
                       abelian=[abelian_run(t) for t in (2200, 2400, 2300)])
    assert holds(rb.judge_abelian, inverted) == [True, False]
    # the control's pattern: perturbed training agrees before grokking
    agreeing = results(rb.measure_abelian, wd=[abelian_run(t, 0.6) for t in (2200, 2400, 2300)],
                       abelian=[abelian_run(t, 0.6) for t in (900, 1000, 1100)])
    assert holds(rb.judge_abelian, agreeing) == [False, True]
    never = results(rb.measure_abelian, wd=[abelian_run(None) for _ in range(3)],
                    abelian=[abelian_run(t) for t in (900, 1000, 1100)])
    assert holds(rb.judge_abelian, never)[1] is True  # faster than never: censored, not "the slowest"
    overlap = results(rb.measure_abelian, wd=[abelian_run(t) for t in (2200, 1500, 2300)],
                      abelian=[abelian_run(t) for t in (2000, 1100, 2400)])
    assert holds(rb.judge_abelian, overlap)[1] is False  # within the seed spread


def test_abelian_measure_reads_the_point_before_the_transition():
    run = modular(t_test=2200, **{"heldout_laws.wrong_pair_agree": lambda s: s / 10000,
                                  "heldout_laws.abelian_acc": lambda s: 0.1})
    m = rb.measure_abelian(run)
    assert m["wrong_pair_agree"] == pytest.approx(0.19) and m["test_acc_then"] == 0.01  # step 1900


# ----------------------------------------------------------------------------- figs. 11, 18
def representation(t_test, logit, embed):
    return modular(t_test=t_test, **{"heldout_laws.logit_dist_rel": lambda s: logit,
                                     "heldout_laws.embed_dist_rel": lambda s: embed})


def test_representation_judge_is_two_sided_and_needs_an_effect():
    lower = results(rb.measure_representation, wd=[representation(2200, 0.6 + d, 0.5 + d) for d in (0, .01, .02)],
                    perturb=[representation(1800, 0.3 + d, 0.2 + d) for d in (0, .01, .02)])
    assert all(holds(rb.judge_representation, lower))
    higher = results(rb.measure_representation, wd=[representation(2200, 0.3 + d, 0.2 + d) for d in (0, .01, .02)],
                     perturb=[representation(1800, 0.6 + d, 0.5 + d) for d in (0, .01, .02)])
    assert all(holds(rb.judge_representation, higher))
    same = results(rb.measure_representation, wd=[representation(2200, v, v) for v in (0.3, 0.5, 0.4)],
                   perturb=[representation(1800, v, v) for v in (0.45, 0.35, 0.4)])
    assert holds(rb.judge_representation, same) == [False, False]
    never = results(rb.measure_representation, wd=[representation(2200, 0.6, 0.5) for _ in range(3)],
                    perturb=[representation(None, 0.3, 0.2) for _ in range(3)])
    assert holds(rb.judge_representation, never) == [False, False]  # no grokking: no stage to compare at


# ----------------------------------------------------------------------------- figs. 15-16
def laws_run(before=0.05, after=0.98, t_test=2200, wd=1.0):
    def law(s):
        return after if (t_test is not None and s >= t_test) else before
    cols = {f"heldout_laws.{k}": law for k, _ in rb.LAWS}
    cols.update({"heldout_laws.doubling_loss": lambda s: 1.0, "heldout_laws.zero_identity_loss": lambda s: 1.0})
    return modular(t_test=t_test, wd=wd, **cols)


def test_group_laws_judge():
    assert all(holds(rb.judge_laws, results(rb.measure_laws, wd=[laws_run() for _ in range(3)])))
    memorised = results(rb.measure_laws, wd=[laws_run(before=0.8) for _ in range(3)])  # holds before grokking
    assert not any(holds(rb.judge_laws, memorised))
    never = results(rb.measure_laws, wd=[laws_run(t_test=None, wd=0.0) for _ in range(3)])  # the control's pattern
    assert not any(holds(rb.judge_laws, never))
    partial = results(rb.measure_laws, wd=[laws_run(after=0.7) for _ in range(3)])
    assert not any(holds(rb.judge_laws, partial))


# ----------------------------------------------------------------------------- figs. 3 and 8
def steps_run(t_test):
    return fake_run(summary={"t_test_acc": t_test, "t_train_acc": 300, "test_acc": 0.95, "train_acc": 1.0})


def image_run(final, train=1.0):
    return fake_run(summary={"t_test_acc": None, "t_train_acc": 2000, "test_acc": final, "train_acc": train})


def test_perturbed_training_judge():
    def res(wd, perturb, images, images_perturb):
        return results(rb.measure_steps, wd=[steps_run(t) for t in wd], perturb=[steps_run(t) for t in perturb],
                       images=[image_run(v) for v in images],
                       **{"images-perturb": [image_run(v) for v in images_perturb]})

    assert all(holds(rb.judge_perturbed, res((2200, 2300, 2400), (1700, 1800, 1900), (.44, .46, .45), (.8, .85, .9))))
    inverted = res((1700, 1800, 1900), (2200, 2300, 2400), (.8, .85, .9), (.44, .46, .45))
    assert holds(rb.judge_perturbed, inverted) == [False, False]
    # the control's pattern: both generalise as they fit (no delay to shorten), images at their ceiling
    no_delay = res((300, 320, 310), (340, 300, 330), (.97, .975, .97), (.972, .97, .968))
    assert holds(rb.judge_perturbed, no_delay) == [False, False]
    never = res((None, None, None), (1700, 1800, None), (.44, .46, .45), (.8, .85, .9))
    assert holds(rb.judge_perturbed, never) == [True, True]


def test_mi_judge():
    def res(base, mi):
        return results(rb.measure_steps, images=[image_run(v) for v in base], mi=[image_run(v) for v in mi])

    assert holds(rb.judge_mi, res((.44, .46, .45), (.6, .62, .58))) == [True]
    assert holds(rb.judge_mi, res((.6, .62, .58), (.44, .46, .45))) == [False]  # inverted
    assert holds(rb.judge_mi, res((.44, .46, .45), (.48, .47, .49))) == [False]  # +0.03: under 10%
    assert holds(rb.judge_mi, res((.97, .975, .97), (.972, .97, .968))) == [False]  # the control's ceiling


# ----------------------------------------------------------------------------- ranking
def test_ranking_judge_uses_the_best_strength_of_each_intervention():
    def res(**arms):
        return results(rb.measure_steps, **{k: [steps_run(t) for t in v] for k, v in arms.items()})

    good = res(wd=(2200, 2300, 2400), abelian=(1500, 1600, 1550), perturb=(900, 1000, 950))
    assert all(holds(rb.judge_ranking, good))
    swapped = res(wd=(2200, 2300, 2400), abelian=(900, 1000, 950), perturb=(1500, 1600, 1550))
    assert holds(rb.judge_ranking, swapped) == [False, True]
    two = res(wd=(2200, 2300, 2400), abelian=(None, None, None), **{"abelian-0.3": (1500, 1600, 1550)},
              perturb=(1800, 1900, 1700), **{"perturb-half": (900, 1000, 950)})
    assert rb.best_of(two, "abelian") == "abelian-0.3" and rb.best_of(two, "perturb") == "perturb-half"
    assert all(holds(rb.judge_ranking, two))
    slow = res(wd=(2200, 2300, 2400), abelian=(2100, 2250, 2300), perturb=(900, 1000, 950))
    assert holds(rb.judge_ranking, slow) == [True, False]  # abelian within 10% / the spread of standard


def test_control_legends_name_what_the_control_changed():
    from groklab.presets import load_preset

    base = load_preset("mlp-add")
    assert rb.config_changes(base, base.override("optim.weight_decay=0")) == "optim.weight_decay=0.0"
    assert rb.config_changes(base, base.override("seed=3")) == "no change"
    arms = [Arm("wd", "AdamW", base)]
    ours = results_from_runs(arms, [0], {"wd": [modular()]}, rb.measure_steps)
    theirs = results_from_runs(arms, [0], {"wd": [modular(t_test=None)]}, rb.measure_steps)
    ours.runs["wd"][0].config, theirs.runs["wd"][0].config = base, base.override("optim.weight_decay=0")
    fig = rb.bands(ours, theirs, ["test_acc"], "t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["AdamW", "AdamW (control: optim.weight_decay=0.0)"]
