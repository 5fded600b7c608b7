"""Tasks: data that is a deterministic function of (task config, seed).

Every task becomes a :class:`TaskData`: train/test inputs and targets plus what a model
needs to know about their shape. Binary-operation tasks give operand pairs ``(N, 2)`` and
class labels; dense tasks give float inputs ``(N, d)``; regression tasks give float
targets and ``n_classes=None``. New tasks register a builder with :func:`register_task`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from pydantic import Field

from groklab.config import TaskConfig
from groklab.seeding import generator
from groklab.tasks.modular import BinaryOpTable, ModularTaskConfig, PermutationTaskConfig, TableTaskConfig, split

__all__ = ["TaskData", "build_task", "build_table", "register_task", "TASKS", "SampledTaskConfig"]


@dataclass(frozen=True)
class TaskData:
    """Train and test sets of one task.

    ``n_operands`` is set for binary-operation tasks (inputs are operand pairs ``(N, 2)``,
    long) and ``input_dim`` for dense tasks (inputs ``(N, input_dim)``, float).
    ``n_classes`` is the number of output classes, or None for regression, whose targets are
    float ``(N,)`` or ``(N, n_outputs)``. ``table`` and the split indices are kept for
    binary-operation tasks so the split can be saved. ``target_directions`` (polynomial task:
    the ``(K, D)`` directions ``beta_k`` of the target) lets a model start near the solution
    (``model.init_interp``).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    description: str
    n_classes: Optional[int] = None
    n_operands: Optional[int] = None
    input_dim: Optional[int] = None
    n_outputs: int = 1
    table: Optional[BinaryOpTable] = None
    train_idx: Optional[torch.Tensor] = None
    test_idx: Optional[torch.Tensor] = None
    target_directions: Optional[torch.Tensor] = None

    @property
    def is_regression(self) -> bool:
        """True when the targets are numbers (no classes), so there is no accuracy."""
        return self.n_classes is None

    @property
    def output_dim(self) -> int:
        """Width of the model's output: classes, or regression outputs."""
        return self.n_outputs if self.n_classes is None else self.n_classes


TaskBuilder = Callable[[TaskConfig, int], TaskData]
TASKS: dict[str, TaskBuilder] = {}


def register_task(config: type[TaskConfig]) -> Callable[[TaskBuilder], TaskBuilder]:
    """Decorator registering ``builder(task_config, seed) -> TaskData`` for the task whose config
    class is ``config`` (a :class:`~groklab.config.TaskConfig` variant with a ``Literal`` name,
    selectable by ``task.name`` from then on)."""
    TaskConfig.register(config)

    def add(builder: TaskBuilder) -> TaskBuilder:
        TASKS[config.model_fields["name"].default] = builder
        return builder

    return add


class SampledTaskConfig(TaskConfig):
    """A task that draws ``n_train`` training and ``n_test`` test examples."""

    n_train: int = Field(550, ge=1, description="training examples")
    n_test: int = Field(1000, ge=1, description="test examples")


def build_table(task: TaskConfig) -> Optional[BinaryOpTable]:
    """The full operation table of a binary-operation task, or None for other tasks."""
    return task.table() if isinstance(task, TableTaskConfig) else None


def _binary_op_task(task: TableTaskConfig, seed: int) -> TaskData:
    table = task.table()
    train_idx, test_idx = split(len(table), task.train_frac, generator(seed, "split"))
    return TaskData(
        train_x=table.pairs[train_idx],
        train_y=table.labels[train_idx],
        test_x=table.pairs[test_idx],
        test_y=table.labels[test_idx],
        description=table.description,
        n_classes=table.n_classes,
        n_operands=table.n_operands,
        table=table,
        train_idx=train_idx,
        test_idx=test_idx,
    )


register_task(ModularTaskConfig)(_binary_op_task)
register_task(PermutationTaskConfig)(_binary_op_task)


def build_task(task: TaskConfig, seed: int) -> TaskData:
    """The train/test data a task config describes, seeded by ``seed``."""
    return TASKS[task.name](task, seed)


from groklab.tasks import polynomial as _polynomial  # noqa: E402,F401  (registers task.name='polynomial')
from groklab.tasks import images as _images  # noqa: E402,F401  (registers task.name='images')
from groklab.tasks import teacher as _teacher  # noqa: E402,F401  (registers task.name='teacher')
