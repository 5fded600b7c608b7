"""The network recipes of paper 001 are registered, and their grokking-ratio check is right."""

import math

from groklab.presets import load_preset
from groklab.recipes import list_recipes
from groklab.recipes.lazyrich_nets import _increasing, _ratio


def test_network_recipes_are_listed():
    names = list_recipes()
    for name in ("lazyrich-mnist-alpha", "lazyrich-transformer-alpha", "lazyrich-teacher-student",
                 "lazyrich-weight-decay"):
        assert name in names and names[name].startswith("[001")


def test_grok_ratio_and_trend():
    assert _ratio(100, 400) == 4.0 and _ratio(100, None) == math.inf and math.isnan(_ratio(None, 50))
    assert _increasing([1.0, 2.0, math.inf]) and _increasing([1.0, 1.0, 3.0])
    assert not _increasing([2.0, 1.0, 3.0]) and not _increasing([1.0, 1.0]) and not _increasing([1.0, math.nan, 2.0])


def test_mnist_omnigrok_preset_is_omnigrok_on_digits():
    cfg = load_preset("mnist-omnigrok")
    assert (cfg.task.name, cfg.task.dataset, cfg.task.n_train) == ("images", "digits", 1000)
    assert (cfg.model.depth, cfg.model.width, cfg.model.init_scale, cfg.train.loss) == (2, 200, 8.0, "mse")
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.train.batch_size) == ("adamw", 1e-3, 0.01, 200)
