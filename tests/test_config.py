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


# --- task and model variants (registered config classes)

FLAT_TASK = {  # how config.json held a task before variants: every task's keys in one block
    "name": "polynomial", "p": 97, "op": "x+y", "n": 4, "train_frac": 0.3, "d": 40, "n_train": 120, "n_test": 500,
    "target": "quadratic", "degree": 2, "n_directions": 1, "dataset": "digits", "path": None,
}
FLAT_MODEL = {
    "name": "committee", "width": 64, "depth": 1, "activation": "relu", "eps": 0.1, "bias": True,
    "train_readout": False, "parametrization": "standard", "d_model": 128, "n_heads": 4, "d_mlp": 512,
    "n_layers": 1, "layernorm": False, "op_token": True, "init_scale": 1.0, "he_init": False, "alpha": 2.0,
    "centre": None, "init_interp": 0.0,
}


def test_a_flat_config_json_of_before_variants_still_loads():
    config = config_from_dict({"task": FLAT_TASK, "model": FLAT_MODEL, "train": {"loss": "mse"}})
    assert type(config.task).__name__ == "PolynomialTaskConfig" and config.task.d == 40 and config.task.n_train == 120
    assert type(config.model).__name__ == "CommitteeConfig" and config.model.width == 64 and config.model.alpha == 2.0
    assert "p" not in config.model_dump()["task"]  # written back in the variant's own keys
    assert Config.from_json(config.to_json()) == config


def test_a_foreign_key_with_a_value_of_its_own_is_refused_not_dropped():
    with pytest.raises(GroklabError, match="task.p belongs to task.name='modular', not to task.name='polynomial'"):
        config_from_dict({"task": FLAT_TASK | {"p": 113}, "model": FLAT_MODEL, "train": {"loss": "mse"}})


def test_switching_variants_by_override_drops_the_old_keys_and_names_the_right_variant():
    config = Config().override("task.p=113")
    toy = config.override("task.d=30", "task.name=polynomial", "model.name=committee", "train.loss=mse")
    assert toy.task.d == 30 and not hasattr(toy.task, "p")
    with pytest.raises(GroklabError, match="it is a key of task.name='polynomial'"):
        config.override("task.d=30")
    with pytest.raises(GroklabError, match="task.name: unknown task 'nope'; registered: .*modular"):
        config.override("task.name=nope")


def test_validation_reads_what_tasks_give_and_models_take():
    with pytest.raises(GroklabError, match="gives scalar regression targets, which model.name='mlp' does not take; "
                                           "use model.name='committee'"):
        Config().override("task.name=polynomial", "train.loss=mse")
    with pytest.raises(GroklabError, match="gives dense float inputs, which model.name='transformer' does not take"):
        Config().override("task.name=images", "model.name=transformer")
