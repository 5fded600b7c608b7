"""Shared fixtures: tiny configs that train in a second or two on one CPU core."""

import pandas as pd
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
        if isinstance(values, dict) and values.get("name", base.get(section, {}).get("name")) != base.get(section, {}).get("name"):
            base[section] = dict(values)  # another task or model: the tiny MLP's own keys do not apply to it
        elif isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    return config_from_dict(base)


@pytest.fixture
def tiny_config():
    return tiny


class Killed(Exception):
    """Raised by a patched train_step to simulate a run killed mid-way."""


def assert_resume_after_kill_matches(tmp_path, monkeypatch, config, kill_at_call: int = 27):
    """Run ``config`` uninterrupted; run it again killed at the ``kill_at_call``-th training
    step (after the step-20 checkpoint of a tiny config); resume; the metrics must be equal."""
    import groklab
    from groklab.training import loop

    full = groklab.run(config, out=tmp_path / "full", progress=False)
    real_step, calls = loop.train_step, {"n": 0}

    def dying_step(*args):
        calls["n"] += 1
        if calls["n"] == kill_at_call:
            raise Killed
        return real_step(*args)

    monkeypatch.setattr(loop, "train_step", dying_step)
    with pytest.raises(Killed):
        groklab.run(config, out=tmp_path / "killed", progress=False)
    monkeypatch.setattr(loop, "train_step", real_step)
    assert not (tmp_path / "killed" / "summary.json").exists()

    resumed = groklab.resume(tmp_path / "killed", progress=False)
    pd.testing.assert_frame_equal(resumed.metrics, full.metrics, check_exact=True)
    assert resumed.summary["steps"] == full.summary["steps"]
