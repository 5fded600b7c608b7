"""Student-teacher regression (Liu et al. 2022, Omnigrok; paper 001 appendix 8.3.1).

A teacher MLP ``5-100-100-5`` with tanh and biases, at PyTorch's default init, labels
standard Gaussian inputs: ``y = teacher(x)`` (float targets ``(N, 5)``, ``n_classes=None``).
The student is a normal groklab model (``model.name=mlp, model.depth=2, model.width=100,
model.activation=tanh``); Omnigrok doubles its initial parameters (``model.init_scale=2``).

``task.n_train`` / ``task.n_test`` Gaussian inputs (Omnigrok: 100 each) come from their own
generators seeded by ``(seed, purpose)``, and so do the teacher's weights, so the teacher
and test set do not move when only ``n_train`` changes.
"""

from __future__ import annotations

import torch

from typing import Literal

from groklab.seeding import generator
from groklab.tasks import SampledTaskConfig, TaskData, register_task

__all__ = ["TEACHER_DIMS", "build_teacher", "teacher_task", "TeacherTaskConfig"]

# (d_in, width, depth, d_out) of the teacher: 5-100-100-5 as in Omnigrok and paper 001.
TEACHER_DIMS = (5, 100, 2, 5)


def build_teacher(seed: int) -> torch.nn.Module:
    """The teacher network of run seed ``seed`` (default init, tanh, biases), frozen."""
    from groklab.models.mlp import MLP  # models depend on nothing in tasks; import late all the same

    d_in, width, depth, d_out = TEACHER_DIMS
    net = MLP(None, d_out, width, activation_name="tanh", d_in=d_in, depth=depth, generator=generator(seed, "teacher"))
    return net.requires_grad_(False)


class TeacherTaskConfig(SampledTaskConfig):
    """``task.name='teacher'``: ``n_train`` / ``n_test`` Gaussian inputs (Omnigrok: 100 each)
    labelled by the teacher network (module docstring)."""

    name: Literal["teacher"] = "teacher"
    inputs = "dense"
    targets = "vectors"


@register_task(TeacherTaskConfig)
def teacher_task(task: TeacherTaskConfig, seed: int) -> TaskData:
    """Gaussian inputs ``(N, 5)`` labelled by the teacher of ``seed``: regression targets ``(N, 5)``."""
    d_in, _, _, d_out = TEACHER_DIMS
    n_train, n_test = task.n_train, task.n_test
    teacher = build_teacher(seed)
    train_x = torch.randn(n_train, d_in, generator=generator(seed, "teacher.train"))  # (n_train, 5)
    test_x = torch.randn(n_test, d_in, generator=generator(seed, "teacher.test"))
    with torch.no_grad():
        train_y, test_y = teacher(train_x), teacher(test_x)  # (N, 5)
    return TaskData(
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        description=f"student-teacher 5-100-100-5 tanh, {n_train} train / {n_test} test Gaussian inputs",
        n_classes=None,
        input_dim=d_in,
        n_outputs=d_out,
    )
