"""Tasks: data that is a deterministic function of (task config, seed)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from groklab.config import TaskConfig
from groklab.seeding import generator
from groklab.tasks.modular import BinaryOpTable, modular_table, permutation_table, split

__all__ = ["TaskData", "build_task", "build_table"]


@dataclass(frozen=True)
class TaskData:
    """A table with its train/test split; ``train_x`` are operand pairs ``(N, 2)``."""

    table: BinaryOpTable
    train_idx: torch.Tensor  # (N_train,)
    test_idx: torch.Tensor  # (N_test,)

    @property
    def train_x(self) -> torch.Tensor:
        return self.table.pairs[self.train_idx]

    @property
    def train_y(self) -> torch.Tensor:
        return self.table.labels[self.train_idx]

    @property
    def test_x(self) -> torch.Tensor:
        return self.table.pairs[self.test_idx]

    @property
    def test_y(self) -> torch.Tensor:
        return self.table.labels[self.test_idx]


def build_table(task: TaskConfig) -> BinaryOpTable:
    """The full operation table a task config describes."""
    if task.name == "permutation":
        return permutation_table(task.n)
    return modular_table(task.p, task.op)


def build_task(task: TaskConfig, seed: int) -> TaskData:
    """The table and its seeded train/test split."""
    table = build_table(task)
    train_idx, test_idx = split(len(table), task.train_frac, generator(seed, "split"))
    return TaskData(table, train_idx, test_idx)
