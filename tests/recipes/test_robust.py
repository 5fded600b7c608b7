import math

from groklab.recipes import list_recipes
from groklab.recipes.plots import median_censored, steps_figure
from groklab.recipes.robust import INTERVENTIONS, _config, _median


def test_paper_000_recipes_are_registered():
    names = list_recipes()
    for name in ("robust-fig2", "robust-fig3", "robust-fig4-5", "robust-fig6-7", "robust-fig9-10",
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
