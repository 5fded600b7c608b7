"""Checks of the toy-model statistics against Monte Carlo on the actual network.

The Monte Carlo side never uses the summary statistics: it evaluates CommitteeMachine on
fresh inputs and splits the residual into odd and even parts in x, which for a quadratic
network and target are exactly the linear and quadratic parts.
"""

import math

import numpy as np
import pytest
import torch

from groklab.metrics.toy_model import (
    initial_ntk_eigenvalues,
    loss_decomposition,
    summary_statistics,
    target_matrix,
    top_eigenvector_alignment,
    toy_model_output,
    toy_ntk,
    wbar_alignment,
)
from groklab.models.committee import CommitteeMachine
from groklab.tasks.polynomial import (
    hermite_he,
    make_hermite_task,
    make_multi_index_quadratic,
    make_single_index_quadratic,
    quadratic_target,
    sample_directions,
    sample_inputs,
)

F64 = torch.float64


def _perturbed(model: CommitteeMachine, gen: torch.Generator, bhat: torch.Tensor):
    """A copy of ``model`` moved part of the way towards beta, as in mid-training."""
    moved = CommitteeMachine(model.D, model.N, alpha=model.alpha, eps=model.eps,
                             train_readouts=model.train_readouts,
                             input_scale=model.input_scale, dtype=F64)
    with torch.no_grad():
        moved.W.copy_(model.W + 0.4 * torch.randn(model.N, model.D, generator=gen, dtype=F64)
                      + 0.8 * torch.randn(model.N, 1, generator=gen, dtype=F64) * bhat)
        moved.v.copy_(model.v + (0.3 * torch.randn(model.N, generator=gen, dtype=F64)
                                 if model.train_readouts else 0.0))
    return moved


CASES = {
    # name: (input_scale, n_directions, centred, train_readouts)
    "paper-plain": ("paper", 1, False, False),
    "paper-centred": ("paper", 1, True, False),
    "readouts-centred": ("paper", 1, True, True),
    "multi-index-centred": ("paper", 3, True, False),
    "unit-variant-centred": ("unit", 1, True, False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_decomposition_terms_match_monte_carlo(case):
    input_scale, K, centred, readouts = CASES[case]
    D, N, alpha, eps, n = 6, 7, 1.3, 0.7, 500_000
    gen = torch.Generator().manual_seed(11)
    dirs = sample_directions(K, D, generator=gen, dtype=F64)  # (K, D)
    s = 1.0 if input_scale == "paper" else 1.0 / math.sqrt(D)
    model0 = CommitteeMachine(D, N, alpha=alpha, eps=eps, train_readouts=readouts,
                              readout_init="gaussian" if readouts else "ones",
                              input_scale=s, seed=5, dtype=F64)
    model = _perturbed(model0, gen, dirs[0] / dirs[0].norm())

    x = sample_inputs(n, D, generator=gen, input_scale=input_scale, dtype=F64)  # (n, D)
    y = quadratic_target(x, dirs, input_scale=input_scale)  # (n,)
    with torch.no_grad():
        def pred(z):
            return model(z) - model0(z) if centred else model(z)
        p_plus, p_minus = pred(x), pred(-x)  # (n,)
    odd = 0.5 * (p_plus - p_minus)  # linear part of the residual
    even = 0.5 * (p_plus + p_minus) - y  # quadratic part of the residual
    sq = (p_plus - y) ** 2
    mc_linear, mc_scale, mc_mis, mc_total = (odd ** 2).mean(), even.mean() ** 2, \
        even.var(unbiased=False), sq.mean()
    se_linear = (odd ** 2).std() / math.sqrt(n)
    se_scale = 2 * even.mean().abs() * even.std() / math.sqrt(n)
    se_mis = ((even - even.mean()) ** 2).std() / math.sqrt(n)
    se_total = sq.std() / math.sqrt(n)

    st = summary_statistics(model.W, model.v)
    st0 = summary_statistics(model0.W, model0.v)
    T = target_matrix(dirs, weight=1.0 if input_scale == "paper" else 2.0)
    terms = loss_decomposition(st.wbar, st.M, dirs[0] if (K == 1 and input_scale == "paper") else T,
                               alpha=alpha, eps=eps,
                               wbar0=st0.wbar if centred else None,
                               M0=st0.M if centred else None)
    for name, got, mc, se in [("linear", terms.linear, mc_linear, se_linear),
                              ("scale", terms.scale, mc_scale, se_scale),
                              ("misalignment", terms.misalignment, mc_mis, se_mis),
                              ("total", terms.total, mc_total, se_total)]:
        tol = 5 * float(se) + 1e-12
        # The check must be able to fail: tolerance far below the size of the term.
        assert tol < 0.1 * float(mc) or float(mc) < 1e-3, (name, tol, float(mc))
        assert abs(float(got) - float(mc)) < tol, (case, name, float(got), float(mc), tol)


def test_decomposition_zero_at_optimum_and_formula_values():
    D, alpha, eps = 5, 2.0, 0.25
    beta = torch.arange(1.0, D + 1, dtype=F64)
    M_opt = torch.outer(beta, beta) / (alpha * eps)
    zero = loss_decomposition(torch.zeros(D, dtype=F64), M_opt, beta, alpha=alpha, eps=eps)
    assert float(zero.total) == pytest.approx(0.0, abs=1e-24)
    # At the untrained centred predictor only the target itself is left:
    # scale = (|beta|^2 / D)^2 / 4, misalignment = |beta|^4 / (2 D^2).
    B = float(beta @ beta)
    init = loss_decomposition(torch.zeros(D, dtype=F64), torch.eye(D, dtype=F64), beta,
                              alpha=alpha, eps=eps, wbar0=torch.zeros(D, dtype=F64),
                              M0=torch.eye(D, dtype=F64))
    assert float(init.scale) == pytest.approx(0.25 * (B / D) ** 2, rel=1e-14)
    assert float(init.misalignment) == pytest.approx(B ** 2 / (2 * D ** 2), rel=1e-14)
    assert float(init.linear) == 0.0


@pytest.mark.parametrize("readouts", [False, True])
@pytest.mark.parametrize("input_scale", [1.0, 0.5])
def test_summary_statistics_reconstruct_network(readouts, input_scale):
    D, N, alpha, eps = 9, 13, 0.8, 1.7
    model = CommitteeMachine(D, N, alpha=alpha, eps=eps, train_readouts=readouts,
                             readout_init="gaussian" if readouts else "ones",
                             input_scale=input_scale, seed=2, dtype=F64)
    x = torch.randn(50, D, generator=torch.Generator().manual_seed(3), dtype=F64)  # (50, D)
    st = summary_statistics(model.W, model.v)
    # Independent: the explicit per-neuron sum.
    h = input_scale * x @ model.W.detach().T  # (50, N)
    direct = alpha / N * ((h + eps / 2 * h ** 2) * model.v.detach()).sum(1)
    rebuilt = toy_model_output(input_scale * x, st.wbar, st.M, alpha=alpha, eps=eps)
    torch.testing.assert_close(rebuilt, direct, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model(x).detach(), direct, rtol=1e-12, atol=1e-12)
    trace = (model.v.detach()[:, None] * model.W.detach() ** 2).sum() / N  # sum_i v_i |w_i|^2 / N
    assert float(st.trace) == pytest.approx(float(trace))


def test_alignment_statistics_known_values():
    D = 7
    gen = torch.Generator().manual_seed(0)
    beta = torch.randn(D, generator=gen, dtype=F64)
    bhat = beta / beta.norm()
    M = torch.eye(D, dtype=F64) + 3.0 * torch.outer(bhat, bhat)
    assert top_eigenvector_alignment(M, beta) == pytest.approx(1.0, abs=1e-12)
    # Negative spike: largest |eigenvalue| is still along beta.
    assert top_eigenvector_alignment(-3.0 * torch.outer(bhat, bhat), beta) == pytest.approx(1.0)
    orth = torch.randn(D, generator=gen, dtype=F64)
    orth = orth - (orth @ bhat) * bhat
    assert top_eigenvector_alignment(torch.outer(orth, orth), beta) == pytest.approx(0.0, abs=1e-12)
    assert wbar_alignment(2.5 * beta, beta) == pytest.approx(1.0)
    assert wbar_alignment(-beta, beta) == pytest.approx(-1.0)
    assert wbar_alignment(orth, beta) == pytest.approx(0.0, abs=1e-12)


def test_initial_ntk_eigenvalues_monte_carlo():
    """Mercer eigenvalues by Monte Carlo of E_x'[K0(x, x') phi(x')] = lambda phi(x)."""
    D, eps, n = 6, 0.7, 1_000_000
    gen = torch.Generator().manual_seed(4)
    xp = sample_inputs(n, D, generator=gen, dtype=F64)  # (n, D) integration points
    x = sample_inputs(3, D, generator=gen, dtype=F64)  # (3, D) evaluation points
    K0 = toy_ntk(x, xp, torch.zeros(D, dtype=F64), torch.eye(D, dtype=F64), eps=eps,
                 prefactor=1.0)  # (3, n)
    spec = initial_ntk_eigenvalues(D, eps)
    r2 = lambda z: (z ** 2).sum(1)  # noqa: E731
    funcs = {
        "linear": (lambda z: z[:, 0], spec.linear),
        "cross": (lambda z: z[:, 0] * z[:, 1], spec.quadratic),
        "traceless": (lambda z: z[:, 2] ** 2 - r2(z) / D, spec.quadratic),
        "isotropic": (r2, spec.isotropic),
    }
    for name, (phi, lam) in funcs.items():
        samples = K0 * phi(xp)[None, :]  # (3, n)
        mc = samples.mean(1)
        se = samples.std(1) / math.sqrt(n)
        expected = lam * phi(x)
        assert torch.all((mc - expected).abs() < 5 * se), (name, mc, expected, se)
    # The printed 2 eps / D^2 would be rejected by the same test.
    assert abs(2 * eps / D ** 2 - spec.quadratic) > 0.2 * spec.quadratic
    assert spec.multiplicities == (D, D * (D + 1) // 2 - 1, 1)


# ----------------------------------------------------------------------------- task data
# (kept here because the decomposition above relies on these conventions)

def test_tasks_are_deterministic_nested_and_scaled():
    a = make_single_index_quadratic(20, 100, 50, seed=3)
    b = make_single_index_quadratic(20, 300, 50, seed=3)
    assert torch.equal(a.beta, b.beta) and torch.equal(a.x_test, b.x_test)
    assert torch.equal(a.x_train, b.x_train[:100])
    torch.testing.assert_close(a.y_train, 0.5 * (a.x_train @ a.beta) ** 2)
    c = make_single_index_quadratic(20, 100, 50, seed=4)
    assert not torch.equal(a.x_train, c.x_train)
    multi = make_multi_index_quadratic(20, 100, 50, n_directions=1, seed=3)
    assert torch.equal(multi.y_train, a.y_train)
    big = make_single_index_quadratic(50, 20000, 1, seed=0, dtype=F64)
    # x ~ N(0, I/D): E|x|^2 = 1 with sd sqrt(2/D)/sqrt(P).
    mean_sq_norm = float((big.x_train ** 2).sum(1).mean())
    assert mean_sq_norm == pytest.approx(1.0, abs=5 * math.sqrt(2 / 50 / 20000))
    unit = make_single_index_quadratic(50, 20000, 1, seed=0, input_scale="unit", dtype=F64)
    torch.testing.assert_close(unit.x_train, big.x_train * math.sqrt(50))
    torch.testing.assert_close(unit.y_train, 2 * big.y_train)


def test_hermite_matches_numpy_and_is_orthonormal():
    z = torch.linspace(-3, 3, 41, dtype=F64)
    for k in range(7):
        coef = np.zeros(k + 1)
        coef[k] = 1.0
        ref = np.polynomial.hermite_e.hermeval(z.numpy(), coef)
        np.testing.assert_allclose(hermite_he(k, z).numpy(), ref, rtol=1e-12, atol=1e-12)
    n = 400_000
    for k in (3, 4):
        task = make_hermite_task(8, n, 1, degree=k, seed=k, dtype=F64)
        y = task.y_train
        se2 = (y ** 2).std() / math.sqrt(n)
        assert abs(float((y ** 2).mean()) - 1.0) < 5 * float(se2)
        assert abs(float(y.mean())) < 5 / math.sqrt(n)
