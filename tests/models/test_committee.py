"""The committee machine's quadratic-form output against the per-neuron sum it replaces."""

import pytest
import torch

from groklab.models.committee import CommitteeMachine

F64 = torch.float64


def neuron_sum(net: CommitteeMachine, x: torch.Tensor) -> torch.Tensor:
    """alpha/N sum_i v_i phi(s w_i . x), one neuron at a time (the slow path)."""
    out = torch.zeros(x.shape[0], dtype=x.dtype)
    for i in range(net.N):
        h = net.input_scale * (x @ net.W[i])
        out = out + net.v[i] * (h + 0.5 * net.eps * h * h)
    return net.alpha / net.N * out


@pytest.mark.parametrize("readouts", [False, True])
def test_quadratic_form_equals_the_neuron_sum_with_its_gradients(readouts):
    torch.manual_seed(0)
    D, N, B = 5, 40, 60  # (B + N) D < B N: forward takes the quadratic form
    net = CommitteeMachine(D, N, alpha=1.7, eps=0.6, train_readouts=readouts, input_scale=0.4,
                           readout_init="gaussian" if readouts else "ones", seed=2, dtype=F64)
    x, y = torch.randn(B, D, dtype=F64), torch.randn(B, dtype=F64)
    fast = net(x)
    slow = neuron_sum(net, x)
    assert torch.allclose(fast, slow, rtol=1e-12, atol=1e-12)
    # the gradients of a loss through each path (autograd on two different graphs)
    grads = [torch.autograd.grad(((out - y) ** 2).mean(), list(net.parameters()))
             for out in (net(x), neuron_sum(net, x))]
    for g_fast, g_slow in zip(*grads):
        assert torch.allclose(g_fast, g_slow, rtol=1e-10, atol=1e-12)


def test_forward_takes_the_cheaper_path_and_the_cache_keeps_preactivations(monkeypatch):
    net = CommitteeMachine(5, 40, eps=0.5, seed=0, dtype=F64)
    used = []
    original = CommitteeMachine.quadratic_form_output
    monkeypatch.setattr(CommitteeMachine, "quadratic_form_output",
                        lambda self, x: used.append(x.shape[0]) or original(self, x))
    net(torch.randn(60, 5, dtype=F64))  # (60 + 40) * 5 < 60 * 40
    net(torch.randn(3, 5, dtype=F64))  # (3 + 40) * 5 > 3 * 40: the preactivations are cheaper
    cache: dict = {}
    out = net(torch.randn(60, 5, dtype=F64), cache)  # metrics read the hidden preactivations
    assert used == [60]
    assert cache["hidden"].shape == (60, 40) and cache["logits"] is out
