"""A new intervention in one file: its config block and its hooks, registered together.

``toy_l2``: adds ``weight * sum_p |p|^2`` to the training loss (an explicit L2 penalty). Its
block ``interventions.toy_l2`` exists as soon as the file is imported: ``--set`` reaches it,
``config.json`` stores it, the loop runs it.
"""

import pytest
from pydantic import Field

import groklab
from groklab.config import InterventionConfig
from groklab.errors import GroklabError
from groklab.interventions import Intervention, register_intervention


class ToyL2Config(InterventionConfig):
    weight: float = Field(0.0, ge=0)

    @property
    def on(self) -> bool:
        return self.weight > 0


@register_intervention(ToyL2Config, order=2.5)  # among the loss terms
class ToyL2(Intervention):
    name = "toy_l2"

    def __init__(self, block: ToyL2Config):
        self.weight = block.weight

    def extra_loss(self, model, x, y, logits):
        return self.weight * sum(p.pow(2).sum() for p in model.parameters())


def test_an_intervention_added_in_one_file_changes_training(tmp_path):
    base = groklab.load_preset("mlp-add").override(
        "task.p=11", "model.width=32", "optim.weight_decay=0", "train.steps=60", "train.eval_every=20")
    plain = groklab.run(base, out=tmp_path / "plain", progress=False)
    penalised = groklab.run(base.override("interventions.toy_l2.weight=0.05"), out=tmp_path / "l2", progress=False)
    assert penalised.config.interventions.toy_l2.weight == 0.05
    assert groklab.load(tmp_path / "l2").config == penalised.config  # stored in config.json, read back
    assert penalised.summary["weight_norm"] < 0.9 * plain.summary["weight_norm"]


def test_its_block_is_validated_like_the_built_in_ones():
    with pytest.raises(GroklabError, match="interventions.toy_l2.weight"):
        groklab.load_preset("mlp-add").override("interventions.toy_l2.weight=-1")
