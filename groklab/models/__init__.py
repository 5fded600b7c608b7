"""Models: each registers its config class and its builder, so a new model is one new file.

A model maps the task's inputs (operand pairs ``(B, 2)`` or dense inputs ``(B, d)``) to logits
``(B, n_classes)`` or a regression output and, given a ``cache`` dict, stores its named
activations there (the model protocol, :mod:`groklab.models.protocol`), so metrics never
reach into a model. :func:`build_model` wraps any of them in :class:`Lazy` for laziness.

To add a model: a file with a :class:`~groklab.config.ModelConfig` variant (a ``Literal``
name, its own fields, what it accepts) and a builder decorated with :func:`register_model`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from groklab.config import ModelConfig
from groklab.models.laziness import Lazy, frozen_copy

if TYPE_CHECKING:  # the builder's argument type only; models import nothing from tasks at run time
    from groklab.tasks import TaskData

__all__ = ["MLP", "Transformer", "CommitteeMachine", "Lazy", "frozen_copy", "build_model", "register_model", "MODELS"]

ModelBuilder = Callable[[ModelConfig, "TaskData", torch.Generator], nn.Module]
MODELS: dict[str, ModelBuilder] = {}


def register_model(config: type[ModelConfig]) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator registering ``builder(model_config, task_data, generator) -> nn.Module`` for the
    model whose config class is ``config`` (selectable by ``model.name`` from then on). The
    builder draws its initial weights from ``generator`` and leaves laziness to :func:`build_model`."""
    ModelConfig.register(config)

    def add(builder: ModelBuilder) -> ModelBuilder:
        MODELS[config.model_fields["name"].default] = builder
        return builder

    return add


def build_model(cfg: ModelConfig, data: "TaskData", generator: torch.Generator) -> nn.Module:
    """The network a model config describes for a task's data, initialised from ``generator``
    (on the CPU, so the same seed gives the same weights on any device), wrapped in
    :class:`Lazy` when ``alpha != 1`` or centring is on."""
    net = MODELS[cfg.name](cfg, data, generator)
    if cfg.alpha != 1.0 or cfg.centred:
        return Lazy(net, cfg.alpha, cfg.centred)
    return net


# The built-in models register themselves on import (after register_model exists).
from groklab.models.committee import CommitteeMachine  # noqa: E402
from groklab.models.mlp import MLP  # noqa: E402
from groklab.models.transformer import Transformer  # noqa: E402
