"""A linearised copy of the network trained side by side (paper 001, section 4.1).

    F_lin(theta_lin, x) = F(theta_0, x) + J(theta_0, x) (theta_lin - theta_0)

``F`` is the whole model the loop trains (laziness wrapper included, so alpha and centring
carry over: a centred model has ``F(theta_0) = 0``), ``theta_0`` its parameters at
initialisation and ``J`` their Jacobian there (:class:`~groklab.metrics.ntk.LinearizedModel`,
one ``jvp`` per forward, no Jacobian stored). The companion starts from the same ``theta_0``,
takes one step on every batch the network takes one on (the batch the other interventions'
``transform_batch`` produced), with the run's loss (``train.loss``, ``train.label_scale``) and
an optimiser and warm-up schedule built from the same settings (``build_optimizer``: same
kind, lr with the alpha scaling, weight decay, momentum, betas). Loss terms and gradient
filters of other interventions act on the network only. It never changes the network's
training: a run with the companion has the same network metrics as one without.

Columns added at every evaluation (``F`` the network, ``F_lin`` the companion, both
``(P, C)``, ``C = 1`` for scalar regression):

* ``lin.train_loss``, ``lin.test_loss``, ``lin.train_acc``, ``lin.test_acc``: the companion's
  loss and accuracy, defined exactly as the network's columns;
* ``lin.output_distance``: the RMS distance between the two models' test outputs,
  ``sqrt( (1 / (P_test C)) sum_{a, c} (F(x_a)_c - F_lin(x_a)_c)^2 )`` over the whole test
  set, in output units (logits, or the regression output after alpha and centring);
* ``lin.param_distance``: ``|theta - theta_lin| / |theta_0|`` (l2 over all parameters).

The network's own ``|theta - theta_0| / |theta_0|`` and ``|K_t - K_0|_F / |K_0|_F`` are the
scheduled metric ``laziness`` (``eval.metrics=["laziness"]``).

The train and test sets are the loop's own device tensors (``build_interventions`` passes
them). The companion's parameters, optimiser and schedule go into the
run's checkpoints; ``theta_0`` comes back on resume because the loop rebuilds the model at
its initialisation before loading a checkpoint, so a resumed run is exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from groklab.config import Config
from groklab.interventions.base import Intervention
from groklab.metrics.ntk import LinearizedModel
from groklab.objective import accuracy, training_objective
from groklab.optim import build_optimizer, flatten_optimizer_state, unflatten_optimizer_state

__all__ = ["LinearizedCompanion"]

CHUNK = 16384  # evaluation rows per forward pass, as the loop's evaluate


class LinearizedCompanion(Intervention):
    """Trains :class:`~groklab.metrics.ntk.LinearizedModel` of ``model`` alongside it (module
    docstring). Build it while ``model`` still holds its initial parameters.

    Args:
        config: the run's config (loss, optimiser, schedule).
        model: the network the loop trains; kept by reference and read at each evaluation.
        data: ``{"train_x", "train_y", "test_x", "test_y"}`` on the training device.
    """

    name = "linearized"

    def __init__(self, config: Config, model: nn.Module, data: dict[str, Tensor]):
        self.model = model
        self.lin = LinearizedModel(model)
        self.optimizer, self.schedule = build_optimizer(config, self.lin)
        self.objective = training_objective(config.train.loss, config.train.label_scale)  # the run's loss
        self.data = data
        self.theta0_norm = math.sqrt(sum(float(p.double().pow(2).sum()) for p in self.lin.init_params().values()))

    def transform_batch(self, model, x, y):
        """One optimiser step of the companion on the network's batch; the batch passes unchanged."""
        self.optimizer.zero_grad(set_to_none=True)
        self.objective(self.lin(x), y).backward()
        self.optimizer.step()
        self.schedule.step()
        return x, y

    @torch.no_grad()
    def outputs(self, module: nn.Module, x: Tensor) -> Tensor:
        """``module(x)`` in chunks of ``CHUNK`` rows."""
        return torch.cat([module(x[i : i + CHUNK]) for i in range(0, len(x), CHUNK)])

    @torch.no_grad()
    def on_evaluate(self, row):
        """The ``lin.*`` columns (module docstring) at the current step; ``row`` is not read."""
        d = self.data
        lin_train, lin_test = self.outputs(self.lin, d["train_x"]), self.outputs(self.lin, d["test_x"])
        columns = {  # in the order of the network's own columns
            "lin.train_loss": self.objective(lin_train, d["train_y"]),
            "lin.test_loss": self.objective(lin_test, d["test_y"]),
            "lin.train_acc": accuracy(lin_train, d["train_y"]),
            "lin.test_acc": accuracy(lin_test, d["test_y"]),
        }
        net_test = self.outputs(self.model, d["test_x"]).reshape(lin_test.shape)
        columns["lin.output_distance"] = (net_test - lin_test).double().pow(2).mean().sqrt()
        diff = sum((p.detach().double() - q.detach().double()).pow(2).sum()
                   for p, q in zip(self.model.parameters(), self.lin.theta))
        columns["lin.param_distance"] = diff.sqrt() / self.theta0_norm
        return {k: float(v) for k, v in columns.items()}  # one host sync per column, at evaluations only

    def state(self):
        """``theta_lin``, the optimiser state (the loop's flattened format) and the schedule."""
        opt_tensors, opt_meta = flatten_optimizer_state(self.optimizer.state_dict())
        tensors = {f"theta.{i}": p.detach() for i, p in enumerate(self.lin.theta)}
        tensors.update(opt_tensors)
        return tensors, {"optimizer": opt_meta, "schedule": self.schedule.state_dict()}

    def load_state(self, tensors, meta):
        """Inverse of :meth:`state` (``theta_0`` is already in place: see the module docstring)."""
        with torch.no_grad():
            for i, p in enumerate(self.lin.theta):
                p.copy_(tensors[f"theta.{i}"])
        self.optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta["optimizer"]))
        self.schedule.load_state_dict(meta["schedule"])
