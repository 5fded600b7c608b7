"""The toy-model recipes added for paper 001 app. 8.4.2 and 15: registered, configs as documented."""

import math
from types import SimpleNamespace

import pandas as pd

from groklab.recipes import list_recipes
from groklab.recipes.lazyrich_toy import _grok_amount, _non_increasing, _toy, _with_optimizer


def test_recipes_are_listed():
    names = list_recipes()
    for name in ("lazyrich-interpolated-init", "lazyrich-optimizers"):
        assert names[name].startswith("[001 app.")


def test_grok_amount_counts_a_test_loss_that_never_falls_as_the_run_length():
    def run(train, test):
        return SimpleNamespace(metrics=pd.DataFrame({"step": [0, 10, 20, 30], "train_loss": train, "test_loss": test}))

    assert _grok_amount(run([1, 0.05, 0.01, 0.01], [1, 1, 0.05, 0.01]), 30) == 10.0
    assert _grok_amount(run([1, 0.05, 0.01, 0.01], [1, 1, 1, 1]), 30) == 20.0
    assert math.isnan(_grok_amount(run([1, 1, 1, 1], [1, 1, 1, 1]), 30))
    assert _non_increasing([3.0, 3.0, 1.0]) and not _non_increasing([1.0, 2.0]) and not _non_increasing([1.0, math.nan])


def test_optimizer_variants_keep_the_early_function_space_speed():
    alpha = 4.0
    base = _toy(10, 20, 30, 0.25, alpha, 0.5, 100, metrics=())
    gd, momentum, adam = (_with_optimizer(base, n, alpha, 0.5, 0.01) for n in ("gd", "momentum", "adam"))
    assert gd.optim.name == "gd" and gd.lr == 0.5 * 20 / alpha**2
    # momentum 0.9: long-run step lr / (1 - 0.9) equals GD's
    assert momentum.optim.momentum == 0.9 and math.isclose(momentum.lr / (1 - 0.9), gd.lr)
    assert adam.optim.name == "adam" and adam.lr == 0.01 / alpha and tuple(adam.optim.betas) == (0.9, 0.999)
