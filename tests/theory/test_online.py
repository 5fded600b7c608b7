"""Infinite-data flows of the toy model: consistency with each other and with autograd."""

import numpy as np
import pytest
import torch

from groklab.metrics.toy_model import loss_decomposition, summary_statistics
from groklab.theory.online import (
    matrix_flow_derivatives,
    population_gradient,
    solve_matrix_flow,
    solve_two_scalar_flow,
    two_scalar_derivatives,
    two_scalar_fixed_point,
)

F64 = torch.float64


def _beta(D: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(D)


def test_two_scalar_flow_matches_full_matrix_flow():
    D, alpha, eps, eta_eff = 6, 2.0, 0.3, 0.5
    beta = _beta(D, 0)
    B = float(beta @ beta)
    t = np.linspace(0.0, 3000.0, 31)
    full = solve_matrix_flow(beta, alpha=alpha, eps=eps, eta_eff=eta_eff, t_eval=t)
    scal = solve_two_scalar_flow(D=D, B=B, alpha=alpha, eps=eps, eta_eff=eta_eff, t_eval=t)
    # The loss actually moves over the window (otherwise agreement would be trivial).
    assert scal.loss[-1] < 1e-3 * scal.loss[0]
    np.testing.assert_allclose(full.loss, scal.loss, rtol=1e-7, atol=1e-12 * scal.loss[0])
    bhat = beta / np.linalg.norm(beta)
    rebuilt = scal.a[:, None, None] * np.eye(D) + scal.b[:, None, None] * np.outer(bhat, bhat)
    np.testing.assert_allclose(full.M, rebuilt, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(full.wbar, 0.0, atol=1e-14)
    # b must actually grow to its O(B / (alpha eps)) value along the way.
    assert scal.b[-1] == pytest.approx(B / (alpha * eps), rel=1e-3)


def test_fixed_point_of_two_scalar_flow():
    D, alpha, eps, eta_eff = 10, 1.5, 0.4, 0.5
    B = 9.3
    a_star, b_star = two_scalar_fixed_point(B=B, alpha=alpha, eps=eps)
    assert (a_star, b_star) == (1.0, B / (alpha * eps))
    da, db = two_scalar_derivatives(a_star, b_star, D=D, B=B, alpha=alpha, eps=eps,
                                    eta_eff=eta_eff)
    assert abs(da) < 1e-15 and abs(db) < 1e-15
    # Off the fixed point the flow is not stationary...
    assert abs(two_scalar_derivatives(1.0, 0.5 * b_star, D=D, B=B, alpha=alpha, eps=eps,
                                      eta_eff=eta_eff)[1]) > 1e-4
    # ...and integrating from (1, 0) converges to it with vanishing loss.
    sol = solve_two_scalar_flow(D=D, B=B, alpha=alpha, eps=eps, eta_eff=eta_eff,
                                t_eval=np.array([0.0, 2e4]))
    assert sol.a[-1] == pytest.approx(a_star, abs=1e-8)
    assert sol.b[-1] == pytest.approx(b_star, rel=1e-8)
    assert sol.loss[-1] < 1e-14 * sol.loss[0]


def test_population_gradient_matches_autograd_of_the_loss():
    """dL/dw_i = (1/N)(g + 2 G w_i), with L the closed-form population loss of W."""
    D, N, alpha, eps = 5, 8, 1.3, 0.7
    g_ = torch.Generator().manual_seed(0)
    W0 = torch.randn(N, D, generator=g_, dtype=F64)
    W = (W0 + 0.5 * torch.randn(N, D, generator=g_, dtype=F64)).requires_grad_()
    beta = torch.randn(D, generator=g_, dtype=F64)
    st0 = summary_statistics(W0)

    wbar, M = W.mean(0), W.T @ W / N  # differentiable moments
    loss = loss_decomposition(wbar, M, beta, alpha=alpha, eps=eps, wbar0=st0.wbar,
                              M0=st0.M).total
    (grad,) = torch.autograd.grad(loss, W)  # (N, D)

    g, G = population_gradient(wbar.detach().numpy(), M.detach().numpy(), beta.numpy(),
                               alpha=alpha, eps=eps, wbar_ref=st0.wbar.numpy(), M_ref=st0.M.numpy())
    predicted = (g[None, :] + 2.0 * W.detach().numpy() @ G) / N  # (N, D), G symmetric
    np.testing.assert_allclose(predicted, grad.numpy(), rtol=1e-11, atol=1e-14)


def test_matrix_flow_matches_small_step_gradient_descent_at_finite_width():
    """Plain GD on the N weight vectors (autograd on the population loss) follows the flow."""
    D, N, alpha, eps = 4, 6, 1.5, 0.5
    eta, steps = 0.02 * N, 400  # eta_eff = eta / N = 0.02: small steps, flow time 8
    g_ = torch.Generator().manual_seed(2)
    W = torch.randn(N, D, generator=g_, dtype=F64)
    beta = torch.randn(D, generator=g_, dtype=F64) * 1.5
    st0 = summary_statistics(W)
    W = W.clone().requires_grad_()
    for _ in range(steps):
        loss = loss_decomposition(W.mean(0), W.T @ W / N, beta, alpha=alpha, eps=eps,
                                  wbar0=st0.wbar, M0=st0.M).total
        (grad,) = torch.autograd.grad(loss, W)
        with torch.no_grad():
            W -= eta * grad
    st = summary_statistics(W)
    flow = solve_matrix_flow(beta.numpy(), alpha=alpha, eps=eps, eta_eff=eta / N,
                             t_eval=np.array([0.0, steps * 1.0]), wbar0=st0.wbar.numpy(),
                             M0=st0.M.numpy())
    # GD differs from the flow by O(eta_eff) per unit time; the change itself is O(1).
    moved = np.linalg.norm(flow.M[-1] - st0.M.numpy())
    assert moved > 0.1
    assert np.linalg.norm(flow.M[-1] - st.M.numpy()) < 0.05 * moved
    assert np.linalg.norm(flow.wbar[-1] - st.wbar.numpy()) < 0.05 * np.linalg.norm(
        flow.wbar[-1] - st0.wbar.numpy()) + 1e-12
    # Away from init the derivative function equals the GD step of the moments divided by
    # eta / N, up to O(eta) (here eta = 1e-7).
    tiny = 1e-7
    loss = loss_decomposition(W.mean(0), W.T @ W / N, beta, alpha=alpha, eps=eps,
                              wbar0=st0.wbar, M0=st0.M).total
    (grad,) = torch.autograd.grad(loss, W)
    st1 = summary_statistics(W.detach() - tiny * grad)
    dw, dM = matrix_flow_derivatives(st.wbar.numpy(), st.M.numpy(), beta.numpy(), alpha=alpha,
                                     eps=eps, eta_eff=1.0, wbar_ref=st0.wbar.numpy(),
                                     M_ref=st0.M.numpy())
    np.testing.assert_allclose((st1.wbar - st.wbar).numpy() / (tiny / N), dw, rtol=1e-5,
                               atol=1e-6 * np.abs(dw).max())
    np.testing.assert_allclose((st1.M - st.M).numpy() / (tiny / N), dM, rtol=1e-5,
                               atol=1e-6 * np.abs(dM).max())


def test_non_centred_flow_starts_from_the_init_loss():
    D, alpha, eps = 5, 1.0, 0.5
    beta = _beta(D, 3)
    sol = solve_matrix_flow(beta, alpha=alpha, eps=eps, eta_eff=0.5, t_eval=np.array([0.0, 10.0]),
                            centred=False)
    # Plain predictor at the wide-net init: f = (alpha eps / 2) |x|^2, so A = T - alpha eps I.
    T = np.outer(beta, beta)
    A = T - alpha * eps * np.eye(D)
    expect = 0.25 * (np.trace(A) / D) ** 2 + (A * A).sum() / (2 * D ** 2)
    assert sol.loss[0] == pytest.approx(expect, rel=1e-13)
    assert sol.loss[-1] < sol.loss[0]
