"""Shared fixtures: tiny configs that train in a second or two on one CPU core."""

import pytest
import torch

from groklab.config import config_from_dict

torch.set_num_threads(1)  # tests are many small ops; threads only add overhead on 2 cores


def tiny(**sections) -> "Config":  # noqa: F821
    """A tiny MLP on x+y mod 11 with overrides per section, e.g. tiny(train={"steps": 50})."""
    base = {
        "name": "tiny",
        "seed": 0,
        "task": {"p": 11, "op": "x+y", "train_frac": 0.5},
        "model": {"name": "mlp", "width": 32, "activation": "relu"},
        "optim": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
        "train": {"steps": 40, "eval_every": 10, "checkpoint_every": 20},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return config_from_dict(base)


@pytest.fixture
def tiny_config():
    return tiny
