"""model.init_interp: the committee's init interpolated toward the analytic solution (paper 001 app. 8.4.2)."""

import pytest
import torch

from groklab.config import config_from_dict
from groklab.errors import GroklabError
from groklab.models import build_model
from groklab.models.committee import CommitteeMachine, solution_weights
from groklab.seeding import generator
from groklab.tasks import build_task


def _config(**model):
    return config_from_dict({
        "task": {"name": "polynomial", "d": 7, "n_train": 20, "n_test": 50, "n_directions": 2},
        "model": {"name": "committee", "width": 9, "eps": 0.3, "alpha": 2.0, "centre": False, **model},
        "optim": {"name": "gd"}, "train": {"loss": "mse"},
    })


@pytest.mark.parametrize("N, K", [(2, 1), (9, 2), (12, 3)])
def test_solution_weights_compute_the_target_exactly(N, K):
    """Independent check: the network's output equals 0.5 sum_k (beta_k . x)^2 computed directly."""
    g = torch.Generator().manual_seed(N)
    B = torch.randn(K, 6, generator=g, dtype=torch.float64)  # (K, D)
    x = torch.randn(30, 6, generator=g, dtype=torch.float64) / 6 ** 0.5  # (30, D)
    alpha, eps = 1.7, 0.4
    net = CommitteeMachine(6, N, alpha=alpha, eps=eps, dtype=torch.float64)
    with torch.no_grad():
        net.W.copy_(solution_weights(B, N, alpha=alpha, eps=eps))
        torch.testing.assert_close(net(x), 0.5 * ((x @ B.T) ** 2).sum(1), rtol=1e-12, atol=1e-12)
    assert float(net.W.detach().mean(0).abs().max()) < 1e-12  # wbar = 0: no power in linear modes


def test_build_model_interpolates_between_random_and_the_solution():
    data = build_task(_config().task, 0)
    W_rand = build_model(_config().model, data, generator(0, "init")).net.W.detach()
    W_star = solution_weights(data.target_directions, 9, alpha=2.0, eps=0.3).float()
    for t in (0.25, 1.0):
        W = build_model(_config(init_interp=t).model, data, generator(0, "init")).net.W.detach()
        torch.testing.assert_close(W, (1 - t) * W_rand + t * W_star)
    solved = build_model(_config(init_interp=1.0).model, data, generator(0, "init"))  # alpha x net, not centred
    with torch.no_grad():
        loss = float(((solved(data.test_x) - data.test_y) ** 2).mean())
    assert loss < 1e-10 * float((data.test_y ** 2).mean())


@pytest.mark.parametrize("sections, message", [
    ({"model": {"name": "mlp", "init_interp": 0.5}, "task": {}, "train": {}}, "committee"),
    ({"task": {"name": "polynomial", "target": "hermite", "degree": 3}, "model": {"name": "committee",
      "init_interp": 0.5}, "train": {"loss": "mse"}}, "quadratic"),
    ({"task": {"name": "polynomial"}, "model": {"name": "committee", "init_interp": 0.5, "eps": 0.0},
      "train": {"loss": "mse"}}, "eps > 0"),
])
def test_init_interp_is_rejected_where_no_solution_is_known(sections, message):
    with pytest.raises(GroklabError, match=message):
        config_from_dict(sections)
