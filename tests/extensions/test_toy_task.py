"""A new task in one file: a config class, a builder, a decorator; nothing in groklab edited.

``toy-parity``: operand pairs (a, b) in range(n)^2 labelled (a + b) mod 2, split by a seeded
fraction. Registering it makes ``task.name='toy-parity'`` and its key ``task.n`` valid
everywhere: config validation, overrides, ``groklab.run`` and the run directory.
"""

from typing import Literal

import torch
from pydantic import Field

import groklab
from groklab.config import TaskConfig
from groklab.seeding import generator
from groklab.tasks import TaskData, register_task
from groklab.tasks.modular import split


class ToyParityConfig(TaskConfig):
    name: Literal["toy-parity"] = "toy-parity"
    n: int = Field(12, ge=2, description="operands 0..n-1")
    train_frac: float = Field(0.5, gt=0, lt=1)


@register_task(ToyParityConfig)
def toy_parity(task: ToyParityConfig, seed: int) -> TaskData:
    a, b = torch.meshgrid(torch.arange(task.n), torch.arange(task.n), indexing="ij")
    pairs = torch.stack([a.ravel(), b.ravel()], 1)  # (n^2, 2)
    labels = (pairs.sum(1) % 2).long()
    train, test = split(len(labels), task.train_frac, generator(seed, "split"))
    return TaskData(pairs[train], labels[train], pairs[test], labels[test], f"(a+b) mod 2 on {task.n}^2 pairs",
                    n_classes=2, n_operands=task.n)


def test_a_task_added_in_one_file_runs_end_to_end(tmp_path):
    config = groklab.load_preset("mlp-add").override(
        "task.name=toy-parity", "task.n=10", "model.width=16", "train.steps=30", "train.eval_every=10")
    assert isinstance(config.task, ToyParityConfig) and config.task.n == 10
    run = groklab.run(config, out=tmp_path / "run", progress=False)
    assert run.summary["task"] == "(a+b) mod 2 on 10^2 pairs"
    assert run.summary["n_train"] + run.summary["n_test"] == 100
    again = groklab.load(tmp_path / "run").config  # config.json round trip keeps the variant
    assert again == config and isinstance(again.task, ToyParityConfig)
