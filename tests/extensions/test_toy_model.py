"""A new model in one file: a config class, a module that follows the model protocol, a builder.

``toy-bilinear``: ``logits = (E[a] * E[b]) @ U`` with embeddings E (n_operands x d) and readout
U. It declares the model protocol (``groklab.models.protocol``), so paper 000's metrics that
read embeddings work on it unchanged; it inherits laziness (``model.alpha``) from build_model.
"""

from typing import Literal, Optional

import pandas as pd
import torch
from pydantic import Field
from torch import nn

import groklab
from groklab.config import ModelConfig
from groklab.models import register_model
from groklab.models.laziness import Lazy


class ToyBilinearConfig(ModelConfig):
    name: Literal["toy-bilinear"] = "toy-bilinear"
    d: int = Field(8, ge=1, description="embedding width")


class ToyBilinear(nn.Module):
    input_kind = "pairs"
    embedding_hook = "hidden"

    def __init__(self, n_operands: int, n_classes: int, d: int, generator: torch.Generator):
        super().__init__()
        self.n_operands = n_operands
        self.E = nn.Parameter(torch.randn(n_operands, d, generator=generator))
        self.U = nn.Parameter(torch.randn(d, n_classes, generator=generator) / d**0.5)

    def forward(self, x: torch.Tensor, cache: Optional[dict] = None) -> torch.Tensor:
        hidden = self.E[x[:, 0]] * self.E[x[:, 1]]  # (B, d)
        logits = hidden @ self.U
        if cache is not None:
            cache.update(hidden=hidden, logits=logits)
        return logits


@register_model(ToyBilinearConfig)
def toy_bilinear(cfg: ToyBilinearConfig, data, generator: torch.Generator) -> nn.Module:
    return ToyBilinear(data.n_operands, data.n_classes, cfg.d, generator)


def test_a_model_added_in_one_file_runs_end_to_end_with_the_metrics(tmp_path):
    config = groklab.load_preset("mlp-add").override(
        "model.name=toy-bilinear", "model.d=12", "task.p=11", "train.steps=20", "train.eval_every=10",
        'eval.metrics=["group_laws", "nn_accuracy"]', "eval.metrics_every=10")
    assert isinstance(config.model, ToyBilinearConfig)
    run = groklab.run(config, out=tmp_path / "run", progress=False)
    assert run.summary["n_params"] == 11 * 12 + 12 * 11
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    # the embedding-reading metrics found the declared hook point; values are finite accuracies
    assert metrics["group_laws.abelian_acc"].between(0, 1).all()
    assert metrics["group_laws.abelian_acc"].iloc[-1] == 1.0  # E[a] * E[b] is symmetric in (a, b) by construction
    assert metrics["nn_accuracy.embedding"].between(0, 1).all()


def test_the_new_model_takes_laziness_from_build_model():
    from groklab.models import build_model
    from groklab.seeding import generator
    from groklab.tasks import build_task

    config = groklab.load_preset("mlp-add").override("model.name=toy-bilinear", "model.alpha=4", "task.p=7")
    model = build_model(config.model, build_task(config.task, 0), generator(0, "init"))
    assert isinstance(model, Lazy) and isinstance(model.net, ToyBilinear)
    assert torch.equal(model(torch.tensor([[1, 2]])), torch.zeros(1, 7))  # centred: zero output at init
