"""Tests for groklab.metrics.geometry against finite differences and hand-computed values."""

import math

import numpy as np
import pytest
import torch

from groklab.metrics import geometry as geo

F64 = torch.float64


def _tiny_mlp():
    """A 3-4-2 tanh MLP with MSE loss 1/(2n) sum |f - y|^2 on 8 points (24 parameters)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g, dtype=F64)  # (n, d_in)
    y = torch.randn(8, 2, generator=g, dtype=F64)  # (n, k)
    params = {
        "w1": torch.randn(3, 4, generator=g, dtype=F64),
        "b1": 0.1 * torch.randn(4, generator=g, dtype=F64),
        "w2": torch.randn(4, 2, generator=g, dtype=F64),
    }

    def loss_fn(p):
        out = torch.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]  # (n, k)
        return 0.5 * ((out - y) ** 2).sum(dim=1).mean()

    return loss_fn, params


def _fd_hessian(loss_fn, params, h=1e-5):
    """Central differences of the (first-order autograd) gradient, one coordinate at a time."""
    names = list(params)
    flat = torch.cat([params[k].reshape(-1) for k in names])  # (P,)

    def grad_at(theta):
        pieces, start = {}, 0
        for k in names:
            n = params[k].numel()
            pieces[k] = theta[start : start + n].reshape(params[k].shape).requires_grad_(True)
            start += n
        grads = torch.autograd.grad(loss_fn(pieces), [pieces[k] for k in names])
        return torch.cat([gr.reshape(-1) for gr in grads])

    cols = []
    for i in range(flat.numel()):
        e = torch.zeros_like(flat)
        e[i] = h
        cols.append((grad_at(flat + e) - grad_at(flat - e)) / (2 * h))
    return torch.stack(cols, dim=1)  # (P, P)


# --------------------------------------------------------------------------------- Hessian


def test_exact_hessian_matches_finite_differences():
    loss_fn, params = _tiny_mlp()
    exact = geo.exact_hessian(loss_fn, params)
    fd = _fd_hessian(loss_fn, params)
    assert exact.shape == (24, 24)
    np.testing.assert_allclose(exact.numpy(), fd.numpy(), atol=1e-8)
    assert geo.exact_hessian_trace(loss_fn, params) == pytest.approx(
        float(torch.trace(fd)), rel=1e-8
    )


def test_hessian_of_parameter_entering_linearly_is_zero():
    # loss = (w . x)^2 + 3 b: Hessian is [[2 x x^T, 0], [0, 0]] and the bias gradient has no
    # graph, which the HVP code must tolerate.
    x = torch.tensor([1.0, -2.0, 0.5], dtype=F64)

    def loss_fn(p):
        w, b = p
        return (w @ x) ** 2 + 3 * b.sum()

    params = [torch.tensor([0.3, 0.1, -0.2], dtype=F64), torch.tensor([1.0], dtype=F64)]
    expected = torch.zeros(4, 4, dtype=F64)
    expected[:3, :3] = 2 * torch.outer(x, x)
    np.testing.assert_allclose(geo.exact_hessian(loss_fn, params).numpy(), expected.numpy())
    assert geo.exact_hessian_trace(loss_fn, params) == pytest.approx(2 * float(x @ x))


def test_hutchinson_trace_within_a_few_percent():
    loss_fn, params = _tiny_mlp()
    exact = geo.exact_hessian(loss_fn, params)
    trace = float(torch.trace(exact))
    n_probes = 3000
    # Rademacher variance per probe: 2 sum_{i != j} H_ij^2.
    off_diag_sq = float((exact**2).sum() - (torch.diagonal(exact) ** 2).sum())
    std_error = math.sqrt(2 * off_diag_sq / n_probes)
    estimate = geo.hessian_trace(loss_fn, params, n_probes, torch.Generator().manual_seed(1))
    assert abs(estimate - trace) < 4 * std_error
    assert estimate == pytest.approx(trace, rel=0.04)


def test_hutchinson_exact_for_diagonal_hessian():
    # Rademacher probes have v_i^2 = 1, so a diagonal Hessian gives the trace with no noise.
    d = torch.tensor([1.0, 2.0, -0.5, 4.0], dtype=F64)
    estimate = geo.hessian_trace(
        lambda p: 0.5 * (d * p[0] ** 2).sum(), [torch.ones(4, dtype=F64)], 3,
        torch.Generator().manual_seed(0),
    )
    assert estimate == pytest.approx(6.5, abs=1e-12)


def test_top_eigenvalue_matches_eigvalsh():
    loss_fn, params = _tiny_mlp()
    expected = float(torch.linalg.eigvalsh(geo.exact_hessian(loss_fn, params))[-1])
    got = geo.top_hessian_eigenvalue(
        loss_fn, params, iters=2000, generator=torch.Generator().manual_seed(2), tol=1e-13
    )
    assert got == pytest.approx(expected, rel=1e-6)


def test_top_eigenvalue_is_algebraic_not_magnitude():
    # Hessian with eigenvalues (-5, 3, 1, 0.5): power iteration alone would return -5.
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=F64))
    a = q @ torch.diag(torch.tensor([-5.0, 3.0, 1.0, 0.5], dtype=F64)) @ q.T

    def loss_fn(p):
        return 0.5 * p[0] @ a @ p[0]

    got = geo.top_hessian_eigenvalue(
        loss_fn, [torch.zeros(4, dtype=F64)], iters=500, generator=g, tol=1e-14
    )
    assert got == pytest.approx(3.0, rel=1e-6)


# ---------------------------------------------------------------------- input robustness


def test_input_gradient_norm_matches_finite_differences():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(3, 2, generator=g, dtype=F64)
    x = torch.randn(5, 3, generator=g, dtype=F64)
    target = torch.randn(5, 2, generator=g, dtype=F64)

    def per_sample_loss(inp):
        return ((torch.tanh(inp @ w) - target) ** 2).sum(dim=1)  # (n,)

    h, norms = 1e-6, []
    for i in range(5):
        grad = []
        for j in range(3):
            e = torch.zeros_like(x)
            e[i, j] = h
            grad.append(float(per_sample_loss(x + e)[i] - per_sample_loss(x - e)[i]) / (2 * h))
        norms.append(np.linalg.norm(grad))
    assert geo.input_gradient_norm(per_sample_loss, x) == pytest.approx(np.mean(norms), rel=1e-7)


def test_input_gradient_norm_rejects_batch_mean_loss():
    with pytest.raises(ValueError):
        geo.input_gradient_norm(lambda t: (t**2).mean(), torch.ones(3, 2))


def test_robustness_radius_hand_values():
    # sqrt(100 / 4 * 4 * 0.04) = 2, + L = 2.5, 1 / (2 * 2.5) = 0.2
    assert geo.robustness_radius(100, 4.0, 4.0, 0.04, 0.5) == pytest.approx(0.2)
    # Grouping: sqrt(9 / 1 * 4 * 1) = 6 -> 1/12 (sqrt over n/min|x|^2 alone would give 1/24).
    assert geo.robustness_radius(9, 1.0, 4.0, 1.0, 0.0) == pytest.approx(1 / 12)
    # Flat minimum: 1 / (2 * 0.25) = 2 is capped at 1.
    assert geo.robustness_radius(10, 1.0, 3.0, 0.0, 0.25) == 1.0
    assert geo.robustness_radius(10, 1.0, 3.0, 0.0, 0.0) == 1.0
    with pytest.raises(ValueError):
        geo.robustness_radius(10, 0.0, 1.0, 1.0, 1.0)


# ------------------------------------------------------------------ norms and distributions


def test_weight_norms():
    named = {
        "fc1.weight": torch.tensor([[3.0, 0.0]]),
        "fc1.bias": torch.tensor([4.0]),
        "fc2.weight": torch.tensor([[0.0, 0.0, 0.0]]),
        "scale": torch.tensor([12.0]),
    }
    assert float(geo.weight_norm(named)) == pytest.approx(13.0)  # sqrt(9+16+144)
    assert float(geo.weight_norm(list(named.values()))) == pytest.approx(13.0)
    by_layer = geo.weight_norms_by_layer(named.items())
    assert by_layer == pytest.approx({"fc1": 5.0, "fc2": 0.0, "scale": 12.0})
    assert list(by_layer) == ["fc1", "fc2", "scale"]


def test_weight_norm_is_differentiable():
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    geo.weight_norm([w]).backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.6, 0.8])


def test_sparsity():
    one_hot = torch.tensor([0.0, 0.0, 5.0, 0.0])
    flat = torch.tensor([1.0, -1.0, 1.0, -1.0])
    assert float(geo.sparsity(one_hot)) == pytest.approx(1.0)
    assert float(geo.sparsity(flat)) == pytest.approx(2.0)  # sqrt(4)
    assert float(geo.sparsity(flat, normalize=True)) == pytest.approx(1.0)
    rows = torch.stack([one_hot, flat, torch.zeros(4)])  # (3, 4)
    assert float(geo.sparsity(rows, dim=-1)) == pytest.approx((1.0 + 2.0 + 0.0) / 3)
    # columns of [[1, 1], [0, 1]]: ratios 1 and sqrt(2)
    cols = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    assert float(geo.sparsity(cols, dim=0)) == pytest.approx((1 + math.sqrt(2)) / 2)


def test_softmax_entropy():
    uniform = torch.zeros(3, 5)
    assert float(geo.softmax_entropy(uniform)) == pytest.approx(math.log(5))
    two_way = torch.tensor([[0.0, math.log(3.0)]])  # p = (1/4, 3/4)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(geo.softmax_entropy(two_way)) == pytest.approx(expected)
    assert float(geo.softmax_entropy(two_way, order=2.0)) == pytest.approx(-math.log(10 / 16))
    confident = torch.tensor([[200.0, 0.0, 0.0]])
    assert float(geo.softmax_entropy(confident)) == pytest.approx(0.0, abs=1e-9)


def test_parameter_entropy():
    params = [torch.tensor([1.0, -1.0]), torch.tensor([[2.0], [0.0]])]
    # |theta| / sum = (1/4, 1/4, 1/2, 0): H = 1.5 log 2
    assert float(geo.parameter_entropy(params)) == pytest.approx(1.5 * math.log(2))
    assert float(geo.parameter_entropy(params, order=2.0)) == pytest.approx(-math.log(3 / 8))


def test_nearest_neighbour_accuracy():
    ref = torch.tensor([[1.0, 0.0], [0.0, 5.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 2])
    # Query 1 points towards (0, 5) (cosine: class 1) but lies closest to (1, 0) (euclidean:
    # class 0); the other queries agree under both metrics.
    queries = torch.tensor([[2.0, 0.1], [1.0, 1.5], [-0.5, -0.1], [0.1, 3.0]])
    cosine_truth = torch.tensor([0, 1, 2, 1])
    euclidean_truth = torch.tensor([0, 0, 2, 1])
    for truth, cos_acc, euc_acc in [(cosine_truth, 1.0, 0.75), (euclidean_truth, 0.75, 1.0)]:
        assert geo.nearest_neighbour_accuracy(ref, labels, queries, truth) == cos_acc
        assert (
            geo.nearest_neighbour_accuracy(
                ref, labels, queries, truth, metric="euclidean", chunk_size=3
            )
            == euc_acc
        )
