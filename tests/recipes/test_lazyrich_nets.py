"""Paper 001's network recipes: their measures and checks on hand-made runs that must pass and
runs that must fail (inverted trends, the control's pattern, censoring), their controls, the
authors' MNIST network, and one real run where removing the cause flips the verdict."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from groklab.errors import GroklabError
from groklab.presets import load_preset
from groklab.recipes import RECIPES, RecipeContext, list_recipes, reproduce
from groklab.recipes.lazyrich_nets import (GROK_RATIO, any_arm, grok_ratio, judge_alpha_sweep, judge_weight_decay,
                                           measure_grok, measure_mse_acc_grok, sweep_figure)
from groklab.recipes.protocol import Arm, results_from_runs
from tests.conftest import tiny
from tests.recipes.fakes import curve, fake_run

NETS = ("lazyrich-mnist-alpha", "lazyrich-transformer-alpha", "lazyrich-teacher-student", "lazyrich-weight-decay",
        "lazyrich-modular-mlp")
STEPS = range(0, 10_001, 50)


def acc_run(t_fit, t_gen, steps=STEPS, config=None):
    """A run whose train accuracy jumps to 1 at ``t_fit`` and test accuracy at ``t_gen`` (None: never)."""
    train = [1.0 if t_fit is not None and s >= t_fit else 0.1 for s in steps]
    test = [1.0 if t_gen is not None and s >= t_gen else 0.05 for s in steps]
    return fake_run(curve(steps, train_acc=train, test_acc=test, train_loss=1.0, test_loss=1.0,
                          weight_norm=[10.0 + s / 1000 for s in steps]), config=config or tiny())


def sweep(times: dict, seeds=(0, 1, 2)):
    """Results of arms ``{key: [(t_fit, t_gen) per seed]}`` measured by :func:`measure_grok`."""
    arms = [Arm(k, k, tiny()) for k in times]
    runs = {k: [acc_run(*t) for t in v] for k, v in times.items()}
    return results_from_runs(arms, list(seeds), runs, measure_grok)


def test_network_recipes_are_listed_with_the_paper():
    names = list_recipes()
    for name in NETS:
        assert name in names and names[name].startswith("[001")


def test_grok_ratio_censors_runs_that_never_generalise():
    assert grok_ratio(100, 400) == 4.0 and grok_ratio(0, 50) == 50.0
    assert grok_ratio(100, None) is None  # fitted, never generalised: beyond every measured ratio
    assert math.isnan(grok_ratio(None, 50)) and math.isnan(grok_ratio(None, None))


def test_measure_grok_reads_the_runs_thresholds_and_columns():
    m = measure_grok(acc_run(200, 1000))
    assert (m["t_train"], m["t_test"], m["grok_ratio"]) == (200, 1000, 5.0)
    assert m["weight_norm_init"] == 10.0 and m["weight_norm_final"] == 20.0
    assert measure_grok(acc_run(200, None))["grok_ratio"] is None
    lenient = acc_run(200, 1000, config=tiny(eval={"train_acc_threshold": 0.05}))  # 0.1 counts as fitted from step 0
    assert measure_grok(lenient)["t_train"] == 0
    steps = range(0, 501, 25)
    mse = fake_run(curve(steps, train_mse_acc=[min(1.0, s / 200) for s in steps],
                         test_mse_acc=[0.6 if s >= 450 else 0.0 for s in steps]), config=tiny())
    got = measure_mse_acc_grok(mse)
    assert (got["t_train"], got["t_test"]) == (200, 450) and got["grok_ratio"] == 450 / 200


def test_sweep_check_passes_on_the_papers_pattern():
    res = sweep({"small": [(500, 300), (500, 400), (450, 350)],  # generalises with fitting
                 "mid": [(800, 6000), (900, 5000), (850, 7000)],  # groks
                 "large": [(2000, None), (2200, None), (2100, None)]})  # fits, never generalises in the run
    criteria = judge_alpha_sweep(res, "small", "large")
    assert all(criteria), [c.detail for c in criteria]
    assert "inf" in criteria[0].detail  # censored is beyond every measured ratio


def test_sweep_check_fails_when_the_trend_is_inverted():
    res = sweep({"small": [(800, 6000), (900, 5000), (850, 7000)],
                 "large": [(500, 300), (500, 400), (450, 350)]})
    grows, vanishes, groks = judge_alpha_sweep(res, "small", "large")
    assert not grows and not vanishes and groks


def test_sweep_check_fails_when_nothing_groks_for_real():
    # "never generalises at large alpha" alone would pass a trend check: some arm must generalise late
    res = sweep({"small": [(500, 300), (500, 400), (450, 350)], "large": [(2000, None)] * 3})
    grows, vanishes, groks = judge_alpha_sweep(res, "small", "large")
    assert grows and vanishes and not groks


def test_sweep_check_fails_on_the_control_pattern_and_within_seed_noise():
    same = [(500, 1500), (500, 1200), (450, 1300)]
    flat = judge_alpha_sweep(sweep({"small": same, "large": same}), "small", "large")
    assert not all(flat) and not flat[0]
    noisy = judge_alpha_sweep(sweep({"small": [(500, 600), (500, 2500), (500, 700)],
                                     "large": [(500, 1200), (500, 1100), (500, 3000)]}), "small", "large")
    assert not noisy[0] and "seed spread" in noisy[0].detail
    never_fits = judge_alpha_sweep(sweep({"small": [(None, None)] * 3, "large": [(2000, None)] * 3}), "small", "large")
    assert not never_fits[0] and "undefined" in never_fits[0].detail


def test_any_arm_is_per_seed():
    res = sweep({"a": [(100, 50), (100, 500), (100, None)], "b": [(100, 150), (100, 150), (None, None)]})
    assert any_arm(res, ["a", "b"], "grok_ratio", lambda v: v >= GROK_RATIO).values == (0.0, 1.0, 0.0)


def wd_results(low, high, lazy):
    times = {"wd-low": low, "wd-high": high, "wd-high-lazy": lazy}
    return sweep(times)


def test_weight_decay_check_passes_and_fails_where_it_should():
    low = [(300, 2000), (320, 2100), (340, 2200)]  # ratio ~6.5
    high = [(500, 1000), (520, 1100), (540, 1000)]  # ratio ~2
    assert all(judge_weight_decay(wd_results(low, high, [(400, 2800), (420, 2600), (400, 3000)])))
    # laziness does not bring the delay back (the lazy arm is the high-wd arm again): fails
    assert not judge_weight_decay(wd_results(low, high, high))[2]
    # inverted: more weight decay lengthens the delay
    assert not judge_weight_decay(wd_results(high, low, low))[1]
    # the low-wd arm never generalises: no grokking to shrink
    assert not judge_weight_decay(wd_results([(300, None)] * 3, high, low))[0]


def _designs():
    for name in NETS:
        for quick in (True, False):
            yield name, quick, RECIPES[name].fn(RecipeContext(Path("/tmp/unused"), quick))


def test_controls_validate_on_every_arm_and_change_something():
    for name, quick, design in _designs():
        assert design.control is not None, name
        changed = [a.config.override(*design.control.overrides) != a.config for a in design.arms]
        assert any(changed), f"{name}: the control is an A/A copy"
        assert quick or len(design.seeds) >= 3, name
        assert design.size and design.falsifier and design.notes


def test_lr_only_controls_keep_each_arms_learning_rate():
    for name in ("lazyrich-transformer-alpha", "lazyrich-weight-decay"):
        design = RECIPES[name].fn(RecipeContext(Path("/tmp/unused"), False))
        for arm in design.arms:
            ctl = arm.config.override(*design.control.overrides)
            assert ctl.lr == arm.config.lr and len({a.config.override(*design.control.overrides).model.alpha
                                                    for a in design.arms}) == 1
        assert len({a.config.lr for a in design.arms}) > 1  # the arms do differ in learning rate


def test_full_sizes_use_the_authors_settings():
    ctx = RecipeContext(Path("/tmp/unused"), False)
    mnist = RECIPES["lazyrich-mnist-alpha"].fn(ctx)
    assert [a.config.model.alpha for a in mnist.arms] == [1e-3, 0.01, 0.05, 0.5]
    assert {a.config.lr for a in mnist.arms} == {1e-3} and mnist.arms[0].config.train.steps == 250_000
    assert mnist.arms[0].config.train.checkpoint_every == 10_000  # CPU-hours: killed runs resume (--reuse)
    train = mnist.arms[0].config.train  # stops once fitted and generalised, the thresholds measure_grok reads
    ev = mnist.arms[0].config.eval
    assert (train.stop_at_train_acc, train.stop_at_test_acc) == (ev.train_acc_threshold, ev.test_acc_threshold)
    tf = RECIPES["lazyrich-transformer-alpha"].fn(ctx)
    assert [a.config.model.alpha for a in tf.arms] == [round(0.05 * i, 2) for i in range(1, 11)]
    c = tf.arms[0].config
    assert (c.task.p, c.task.train_frac, c.model.d_model, c.model.centred, c.optim.weight_decay) == (113, 0.4, 128, True, 1)
    assert math.isclose(c.lr, 6e-6 / 0.05 ** 2) and c.train.steps == 200_000 and c.train.device == "auto"
    ts = RECIPES["lazyrich-teacher-student"].fn(ctx)
    c = ts.arms[0].config
    assert (c.model.init_scale, c.model.centred, c.lr, c.optim.weight_decay, c.task.n_train) == (2.0, False, 3e-4, 0.05, 100)
    assert [a.config.model.alpha for a in ts.arms] == [0.1, 0.25, 0.5, 0.75, 1.0, 3.0]


def test_mnist_lazyrich_preset_is_the_authors_network():
    cfg = load_preset("mnist-lazyrich")
    m = cfg.model
    assert (m.depth, m.width, m.activation, m.bias, m.parametrization, m.he_init, m.init_scale, m.centred) == (
        3, 200, "relu", False, "mean_field", True, 150.0, False)
    assert (cfg.optim.name, cfg.lr, cfg.optim.weight_decay, cfg.train.batch_size, cfg.train.steps) == (
        "adamw", 1e-3, 0.01, 200, 250_000)
    assert load_preset("mnist-omnigrok").model.depth == 2  # Omnigrok's own setting stays a separate preset
    with pytest.raises(GroklabError, match="he_init"):
        cfg.override("model.parametrization=standard")


def test_he_init_mlp_matches_the_notebooks_formula():
    """The notebook's MLP: h = W0 x / sqrt(D); h = W relu(h) / sqrt(N); f = W_out relu(h) / N, with
    W ~ 150 sqrt(2 / fan_in) N(0, 1); computed here with numpy from the model's own weights."""
    from groklab.models.mlp import MLP

    net = MLP(None, 10, 200, "relu", bias=False, parametrization="mean_field", init_scale=150.0,
              generator=torch.Generator().manual_seed(0), d_in=64, depth=3, he_init=True)
    for W, fan_in in ((net.W_in, 64), (net.W_mid[0], 200), (net.W_mid[1], 200), (net.W_out, 200)):
        assert abs(float(W.detach().std()) / (150 * math.sqrt(2 / fan_in)) - 1) < 0.05
    x = torch.rand(7, 64)
    Ws = [w.detach().double().numpy() for w in (net.W_in, net.W_mid[0], net.W_mid[1], net.W_out)]
    h = x.double().numpy() @ Ws[0] / math.sqrt(64)
    for W in Ws[1:3]:
        h = np.maximum(h, 0) @ W / math.sqrt(200)
    f = np.maximum(h, 0) @ Ws[3] / 200
    assert np.allclose(net(x).detach().double().numpy(), f, rtol=1e-4, atol=1e-3)


def test_sweep_figure_draws_every_seed_and_the_control(tmp_path):
    res = sweep({"small": [(500, 300), (500, 400), (450, 350)], "large": [(2000, None), (None, None), (2100, 9000)]})
    fig = sweep_figure(res, res, ["train_acc", "test_acc"], "t", {"small": 0.1, "large": 1.0})
    assert len(fig.axes) == 3 and fig.axes[-1].get_xscale() == "log"
    fig.savefig(tmp_path / "f.png")


@pytest.mark.slow
def test_teacher_student_flips_when_its_cause_is_removed(tmp_path):
    """Real runs (about a minute): the quick sweep at one seed is supported; at the control's
    small initial scale, set for every run, the same check fails."""
    treated = reproduce("lazyrich-teacher-student", out=tmp_path / "a", quick=True, progress=False, seeds=[1])
    assert treated["treatment"]["holds"], treated["treatment"]
    small = reproduce("lazyrich-teacher-student", out=tmp_path / "b", quick=True, progress=False, seeds=[1],
                      overrides=["model.init_scale=0.5"])
    assert small["treatment"]["holds"] is False and small["supported"] is False


def test_mnist_csv_rows_become_idx_files_the_images_task_reads(tmp_path):
    import gzip

    from groklab.recipes.lazyrich_nets import mnist_idx_from_csv
    from groklab.tasks.images import load_mnist

    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 256, (30, 784)), (np.arange(30) % 10)[:, None]], 1)
    with gzip.open(tmp_path / "m.csv.gz", "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    tr_x, tr_y, te_x, te_y = load_mnist(mnist_idx_from_csv(tmp_path / "m.csv.gz", tmp_path / "idx", n_test=12))
    assert tr_x.shape == (18, 28, 28) and te_x.shape == (12, 28, 28)
    both = np.concatenate([tr_x, te_x]).reshape(30, 784)
    order = np.lexsort(both.T)
    assert (both[order] == rows[:, :784][np.lexsort(rows[:, :784].T)]).all()  # every image once, pixels intact
    assert sorted(np.concatenate([tr_y, te_y]).tolist()) == sorted(rows[:, 784].tolist())


def test_weight_decay_verdict_fails_when_the_lr_only_control_recovers_the_delay_too():
    from groklab.recipes.protocol import judge_design

    design = RECIPES["lazyrich-weight-decay"].fn(RecipeContext(Path("/tmp/unused"), True))
    low = [(300, 2000), (320, 2100), (340, 2200)]
    high = [(500, 1000), (520, 1100), (540, 1000)]
    treated = wd_results(low, high, [(400, 2800), (420, 2600), (400, 3000)])
    same_with_lr_alone = wd_results(low, high, [(900, 5000), (950, 5200), (900, None)])
    no_recovery_with_lr_alone = wd_results(low, high, [(900, 1800), (950, 1900), (900, 1800)])
    assert judge_design(design, treated, same_with_lr_alone)["supported"] is False
    assert judge_design(design, treated, no_recovery_with_lr_alone)["supported"] is True
