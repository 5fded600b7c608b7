import json

import pytest

from groklab import GroklabError, list_presets, load_preset
from groklab.config import Config, apply_overrides, config_from_dict, parse_override


def test_every_shipped_preset_loads_and_round_trips():
    presets = list_presets()
    assert {"mlp-add", "gd-mse", "nanda", "power-xdivy"} <= set(presets)
    for name, description in presets.items():
        assert description and "\n" not in description
        config = load_preset(name)
        assert config.name == name
        assert Config.from_json(config.to_json()) == config


def test_overrides_are_typed_and_do_not_mutate_the_original():
    base = load_preset("mlp-add")
    new = apply_overrides(base, ["optim.lr=0.1", "model.alpha=2", "task.op=x/y", "train.batch_size=null", "optim.betas=[0.8,0.9]"])
    assert new.optim.lr == 0.1 and isinstance(new.optim.lr, float)
    assert new.model.alpha == 2.0 and new.model.centred  # centring follows alpha by default
    assert new.task.op == "x/y"
    assert new.optim.betas == (0.8, 0.9)
    assert base.optim.lr == 0.001 and not base.model.centred
    assert new.lr == pytest.approx(0.1 / 4)  # lr divided by alpha^2


def test_parse_override_keeps_non_json_as_string():
    assert parse_override("task.op=x^2+y^2") == ("task.op", "x^2+y^2")
    assert parse_override("train.stop_at_test_acc=0.99") == ("train.stop_at_test_acc", 0.99)
    with pytest.raises(GroklabError, match="key=value"):
        parse_override("optim.lr")


@pytest.mark.parametrize(
    "assignment, message",
    [
        ("optim.lrr=0.1", "unknown config key 'optim.lrr'"),
        ("nonsense=1", "unknown config key 'nonsense'"),
        ("model.width=abc", "model.width"),
        ("model.width=1.5", "model.width"),
        ("task.train_frac=1.0", "strictly between 0 and 1"),
        ("task.train_frac=0", "strictly between 0 and 1"),
        ("task.op=x%y", "unknown operation"),
        ("optim.name=lion", "optim.name"),
        ("optim.lr=-1", "optim.lr"),
    ],
)
def test_bad_overrides_name_the_problem(assignment, message):
    with pytest.raises(GroklabError, match=message) as info:
        apply_overrides(load_preset("mlp-add"), [assignment])
    assert "\n" not in str(info.value)


def test_division_needs_a_prime_modulus():
    with pytest.raises(GroklabError, match="not prime"):
        config_from_dict({"task": {"p": 12, "op": "x/y"}})
    config_from_dict({"task": {"p": 12, "op": "x+y"}})  # fine without inverses


def test_gd_is_full_batch_only():
    with pytest.raises(GroklabError, match="full-batch"):
        config_from_dict({"optim": {"name": "gd"}, "train": {"batch_size": 32}})


def test_unknown_nested_key_in_a_dict_is_rejected():
    with pytest.raises(GroklabError, match="unknown config key 'model.widht'"):
        config_from_dict({"model": {"widht": 3}})


def test_json_is_plain_and_complete():
    data = json.loads(load_preset("nanda").to_json())
    assert set(data) == {"name", "seed", "task", "model", "optim", "train", "eval", "interventions", "linearized"}
    for key in ("p", "op", "train_frac"):
        assert key in data["task"]
