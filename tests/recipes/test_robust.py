import math

import pytest

from groklab.recipes import list_recipes
from groklab.recipes.plots import median_censored, steps_figure
from groklab.recipes.robust import INTERVENTIONS, _config, _median


def test_paper_000_recipes_are_registered():
    names = list_recipes()
    for name in ("robust-fig2", "robust-fig3", "robust-fig4-5", "robust-fig6-7", "robust-fig8", "robust-fig9-10",
                 "robust-fig11-18", "robust-fig15-16", "robust-ranking"):
        assert name in names


def test_censored_median_counts_unreached_runs_as_latest():
    assert median_censored([300, None, 100], 1000) == 300
    assert median_censored([None, None, 100], 1000) is None
    assert median_censored([100, 200], 1000) == 150
    assert _median([None]) == math.inf and _median([5, 7]) == 6


def test_intervention_configs_validate_and_differ():
    configs = {k: _config(100, 0, o, stop=True) for k, (_, o) in INTERVENTIONS.items()}
    assert configs["none"].optim.weight_decay == 0 and configs["wd"].optim.weight_decay == 1.0
    assert configs["perturb"].interventions.perturb.on and configs["abelian"].interventions.abelian.on
    assert configs["mi"].interventions.mi.on and configs["grokfast"].interventions.grokfast.on
    assert all(c.train.stop_at_test_acc == 0.95 and c.train.steps == 100 for c in configs.values())


def test_steps_figure_has_a_table():
    fig = steps_figure({"a": [100, None], "b": [50, 60]}, 200, "t")
    assert fig.axes[1].tables


def test_perturbation_lambdas_follow_the_input_scale_rule():
    from groklab.presets import load_preset
    from groklab.recipes.robust import PERTURB, perturb_lambdas

    assert perturb_lambdas(load_preset("mlp-add")) == (0.1, 0.05)  # one-hot pairs mod 97: RMS sqrt(1/97)
    assert PERTURB == ("interventions.perturb.lambda1=0.1", "interventions.perturb.lambda2=0.05")
    assert perturb_lambdas(load_preset("mlp-add").override("task.p=11")) == (0.3, 0.15)
    lambda1, lambda2 = perturb_lambdas(load_preset("mnist-omnigrok"))  # digits pixels in [0, 1]
    assert 0.3 < lambda1 < 0.7 and lambda2 == lambda1 / 2


def test_images_config_is_digits_when_quick_and_mnist_at_full_size_with_the_env(tmp_path, monkeypatch):
    from groklab.recipes import RecipeContext
    from groklab.recipes.robust import IMAGES_STEPS, _images_config

    monkeypatch.setenv("GROKLAB_MNIST", str(tmp_path))
    quick = _images_config(RecipeContext(tmp_path, quick=True), 1, ("interventions.mi.weight=0.1",))
    assert quick.task.dataset == "digits" and quick.seed == 1 and quick.train.steps == IMAGES_STEPS
    assert quick.interventions.mi.on and quick.model.init_scale == 8.0
    full = _images_config(RecipeContext(tmp_path, quick=False), 0)
    assert full.task.dataset == "mnist" and full.task.path == str(tmp_path) and full.task.n_test == 10000
    monkeypatch.delenv("GROKLAB_MNIST")
    assert _images_config(RecipeContext(tmp_path, quick=False), 0).task.dataset == "digits"


class _FakeRun:
    def __init__(self, config, test_acc):
        import pandas as pd

        self.config = config
        steps = [0, 100, 200]
        self.metrics = pd.DataFrame({"step": steps, "train_acc": [0.1, 0.9, 1.0], "test_acc": test_acc})


def test_images_comparison_check(tmp_path):
    from groklab.recipes import RecipeContext
    from groklab.recipes.robust import images_comparison

    curves = {"baseline": [[0.1, 0.3, 0.40], [0.1, 0.3, 0.50]], "x": [[0.1, 0.5, 0.50], [0.1, 0.35, 0.48]]}

    class Ctx(RecipeContext):
        def run(self, config, label):
            key = "baseline" if "baseline" in label else "x"
            return _FakeRun(config, curves[key][config.seed])

    base, runs, measured, ok, notes = images_comparison(Ctx(tmp_path, quick=True), "x", (), [0, 1])
    assert measured["images.gain_mean"] == pytest.approx(0.04)  # +0.10 and -0.02: below the 0.05 gain
    assert not ok and "positive in 1 of 2" in notes
    assert measured["images.x.step_reaching_baseline_final_per_seed"] == "100, -"
    curves["x"][1][-1] = 0.55  # +0.10 and +0.05
    assert images_comparison(Ctx(tmp_path, quick=True), "x", (), [0, 1])[3]
