"""Finite-P/D DMFT of the toy model (groklab.theory.dmft): checked against independent
computations (the exact moment flow of groklab.theory.online, direct GD simulation, Monte Carlo
of the test loss), plus convergence of the fixed-point iteration and one clear error on bad
input. Every case is small: a few seconds each on one core."""

import math
import sys

import numpy as np
import pytest
import torch

import groklab.theory
from groklab.errors import GroklabError
from groklab.theory.online import solve_matrix_flow

dm = sys.modules["groklab.theory.dmft"]  # the module (the package exports the function `dmft`)


def _gd(D, N, p, alpha, eps, *, steps, tau_step, seed, n_test=20000):
    """Full-batch GD on the centred toy model whose step is ``tau_step`` in tau = step / D units
    (learning rate ``eta N / alpha^2`` with ``eta = tau_step D``), written from the model's
    definition (not groklab's trainer). Returns (train, test) losses at every step, (steps+1,),
    and the initial macroscopic state: ``m0 = W beta / D``, ``C0 = W W^T / D``, ``|beta|^2 / D``."""
    g = torch.Generator().manual_seed(seed)
    P = int(round(p * D))
    f64 = torch.float64
    beta = torch.randn(D, generator=g, dtype=f64)
    X = torch.randn(P, D, generator=g, dtype=f64) / math.sqrt(D)
    Xt = torch.randn(n_test, D, generator=g, dtype=f64) / math.sqrt(D)
    W = torch.randn(N, D, generator=g, dtype=f64)
    y, yt = 0.5 * (X @ beta) ** 2, 0.5 * (Xt @ beta) ** 2
    init = dict(m0=(W @ beta).numpy() / D, C0=(W @ W.T).numpy() / D, beta_sq=float(beta @ beta) / D)

    def f(Xs, Ws):
        h = Xs @ Ws.T
        return alpha * (h + 0.5 * eps * h * h).mean(1)

    f0, f0t = f(X, W), f(Xt, W)
    lr = tau_step * D * N / alpha ** 2
    train, test = [], []
    for _ in range(steps + 1):
        h = X @ W.T
        r = f(X, W) - f0 - y
        train.append(float((r ** 2).mean()))
        test.append(float(((f(Xt, W) - f0t - yt) ** 2).mean()))
        grad = (2.0 / P) * ((r[:, None] * (1 + eps * h)) * (alpha / N)).T @ X  # dL/dW, (N, D)
        W = W - lr * grad
    return np.array(train), np.array(test), init


def test_gaussian_test_loss_matches_monte_carlo():
    rng = np.random.default_rng(0)
    N, alpha, eps = 2, 1.3, 0.7
    A = rng.standard_normal((2 * N + 1, 2 * N + 1))
    S = A @ A.T / (2 * N + 1) + 0.1 * np.eye(2 * N + 1)
    v = rng.multivariate_normal(np.zeros(2 * N + 1), S, size=400_000)
    hk, h0, z = v[:, :N], v[:, N:2 * N], v[:, -1]
    phi = lambda h: h + 0.5 * eps * h * h  # noqa: E731
    mc = np.mean(((alpha / N) * (phi(hk) - phi(h0)).sum(1) - 0.5 * z * z) ** 2)
    exact = dm.gaussian_test_loss(S[:N, :N], S[:N, N:2 * N], S[N:2 * N, N:2 * N], S[:N, -1], S[N:2 * N, -1],
                                  alpha=alpha, eps=eps, beta_sq=S[-1, -1])
    assert exact == pytest.approx(mc, rel=0.02)
    # At init (omega(k) = omega(0)) the loss is E[(z^2/2)^2] = 3/4 beta_sq^2.
    C = np.eye(N)
    assert dm.gaussian_test_loss(C, C, C, np.zeros(N), np.zeros(N), alpha=alpha, eps=eps, beta_sq=1.3) \
        == pytest.approx(0.75 * 1.3 ** 2)


def test_online_stage_matches_the_exact_moment_flow():
    # The population (infinite-data) dynamics closes exactly on the Gram matrix of the weights
    # and beta at any D, so the DMFT's online stage must reproduce the matrix flow integrated
    # independently by groklab.theory.online, up to Monte Carlo and Euler errors.
    D, N, alpha, eps, eta = 30, 2, 1.0, 0.5, 1.0
    rng = np.random.default_rng(1)
    W0, beta = rng.standard_normal((N, D)), rng.standard_normal(D)
    C0, m0, bsq = W0 @ W0.T / D, W0 @ beta / D, beta @ beta / D
    T, H = 150, 6.0
    tau = np.linspace(0.0, H, T + 1)
    lam = np.diff(tau) * 2 * eta / alpha  # p = 1 (p cancels in the online limit)
    xi = np.random.default_rng(0).standard_normal((30_000, 2 * N + 1))
    Rl, Rz = dm._online_march(lam, m0, xi, alpha=alpha, eps=eps, p=1.0, beta_sq=bsq, C0=C0)
    C, m, _ = dm._weight_side(Rl, Rz, np.zeros((T, N, T, N)), lam, m0, bsq, C0)
    loss = np.array([dm.gaussian_test_loss(C[k, :, k], C[k, :, 0], C[0, :, 0], m[k], m[0], alpha=alpha, eps=eps,
                                           beta_sq=bsq) for k in range(T + 1)])
    flow = solve_matrix_flow(beta, alpha=alpha, eps=eps, eta_eff=eta / alpha ** 2, t_eval=tau * D,
                             wbar0=W0.mean(0), M0=W0.T @ W0 / N)
    assert flow.loss[-1] < 0.5 * flow.loss[0]  # the loss really moves over the window
    np.testing.assert_allclose(loss, flow.loss, rtol=0.03)
    # The overlap m = W beta / D of the flow's weights is not available from the moments, but
    # the scale of the learned quadratic part is: Tr(M - M0) / D = mean_a (C_aa(k) - C_aa(0)).
    M_t = flow.M
    np.testing.assert_allclose(np.trace(M_t - M_t[0], axis1=1, axis2=2) / D,
                               np.array([np.trace(C[k, :, k] - C0) / N for k in range(T + 1)]), atol=0.02)


def test_online_limit_against_direct_simulation():
    # P/D = 2000 is close to infinite data (finite-data corrections are O(p^-1/2)): each seed's simulated train and test loss follow the
    # online stage started from that seed's initial overlaps and Gram matrix, on exactly the
    # simulation's discrete time steps. (The escape from the saddle depends on the initial
    # overlaps, which are O(D^-1/2) and random: conditioning on them is what makes a per-seed
    # prediction possible.)
    D, N, p, alpha, eps, H, T = 24, 2, 2000.0, 1.0, 0.5, 3.0, 72
    tau = np.linspace(0.0, H, T + 1)
    lam = np.diff(tau) * 2 / alpha
    xi = np.random.default_rng(0).standard_normal((20_000, 2 * N + 1))
    for seed in range(2):
        train, test, init = _gd(D, N, p, alpha, eps, steps=T, tau_step=H / T, seed=seed, n_test=4000)
        Rl, Rz = dm._online_march(lam, init["m0"], xi, alpha=alpha, eps=eps, p=1.0, beta_sq=init["beta_sq"],
                                  C0=init["C0"])
        C, m, _ = dm._weight_side(Rl, Rz, np.zeros((T, N, T, N)), lam, init["m0"], init["beta_sq"], init["C0"])
        online = np.array([dm.gaussian_test_loss(C[k, :, k], C[k, :, 0], C[0, :, 0], m[k], m[0], alpha=alpha,
                                                 eps=eps, beta_sq=init["beta_sq"]) for k in range(T + 1)])
        assert test[-1] < 0.6 * test[0]  # something happens
        # Tolerance: the simulated test loss is itself an estimate on 4000 points (a few %).
        np.testing.assert_allclose(test / test[0], online / online[0], atol=0.06)
        np.testing.assert_allclose(train / train[0], online / online[0], atol=0.06)


@pytest.fixture(scope="module")
def small():
    """A small finite-data solution: N = 2, P/D = 2, on the simulation's own time steps (the DMFT
    of a grid is exactly the large-D limit of GD with the grid's step)."""
    return groklab.theory.dmft(alpha=1.0, eps=0.5, N=2, p=2.0, horizon=1.5, steps=15, D_init=None, samples=8000,
                               response_samples=600, tol=1e-3, window=5)


def test_fixed_point_iteration_converges_on_a_small_case(small):
    assert small.converged
    r = small.residuals
    assert r[-1] < 1e-3 < r[0]
    # Each window's residuals shrink (damped contraction), not just the last one by luck.
    assert min(r[:5]) > 10 * r[-1]
    # The same fixed point from different Monte Carlo draws: only Monte Carlo noise apart.
    other = groklab.theory.dmft(alpha=1.0, eps=0.5, N=2, p=2.0, horizon=1.5, steps=15, D_init=None,
                                samples=8000, response_samples=600, tol=1e-3, window=5, seed=1)
    np.testing.assert_allclose(other.test_loss, small.test_loss, rtol=0.06)
    np.testing.assert_allclose(other.train_loss, small.train_loss, rtol=0.06)


def test_finite_data_solution_against_direct_simulation(small):
    # The DMFT of this grid is the D -> infinity limit of GD whose step is the grid's step, so a
    # large-D simulation of that GD must approach it (D = 3200, two seeds). At P/D = 2 train and test losses part:
    # the finite-data part of the theory (self-response, noise) is what this checks.
    sims = [_gd(3200, 2, 2.0, 1.0, 0.5, steps=15, tau_step=0.1, seed=s, n_test=8000)[:2] for s in range(2)]
    # Relative to the initial loss: each seed's |beta|^2 / D scales its losses (the theory's is 1).
    train = np.mean([s[0] / s[0][0] for s in sims], axis=0)
    test = np.mean([s[1] / s[1][0] for s in sims], axis=0)
    th_train, th_test = small.train_loss / small.train_loss[0], small.test_loss / small.test_loss[0]
    assert th_test[-1] - th_train[-1] > 0.2 * th_test[-1]  # a real train/test gap to get right
    # D = 3200: seed-to-seed fluctuations of the train loss are still ~5% at D = 800.
    np.testing.assert_allclose(th_train, train, rtol=0.06)
    np.testing.assert_allclose(th_test, test, rtol=0.06)
    # The online limit (no finite-data terms) misses the gap: the check can fail.
    online = small.online_test_loss / small.online_test_loss[0]
    assert abs(online[-1] - train[-1]) > 0.2 * train[-1]


def test_time_grid():
    t = dm.time_grid(10.0, 50, first=0.01, max_step=0.5)
    d = np.diff(t)
    assert t[0] == 0 and t[-1] == pytest.approx(10.0) and np.all(d > 0)
    assert d[0] == pytest.approx(0.01, rel=0.05) and d.max() <= 0.5 + 1e-12
    assert np.all(np.diff(d) >= -1e-12)  # steps never shrink
    np.testing.assert_allclose(dm.time_grid(2.0, 4), [0, 0.5, 1.0, 1.5, 2.0])
    with pytest.raises(GroklabError, match="cannot reach"):
        dm.time_grid(10.0, 10, first=0.01, max_step=0.5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(alpha=0.0), "alpha must be"),
    (dict(eps=float("nan")), "eps must be"),
    (dict(N=0), "N must be"),
    (dict(steps=1), "steps must be"),
    (dict(damping=1.5), "damping must be"),
    (dict(response_samples=10, samples=5), "cannot exceed"),
    (dict(m0=[0.1, 0.2, 0.3]), "m0 must be"),
    (dict(C0=[[1.0, 2.0], [2.0, 1.0]]), "C0 must be"),
])
def test_bad_input_gives_one_clear_error(kwargs, match):
    args = dict(alpha=1.0, eps=0.5, N=2, p=2.0, horizon=1.0, steps=4, samples=50, response_samples=20)
    args.update(kwargs)
    with pytest.raises(GroklabError, match=match) as e:
        groklab.theory.dmft(**args)
    assert "\n" not in str(e.value)


def test_no_convergence_is_reported_with_the_residuals():
    with pytest.raises(GroklabError, match=r"did not converge in 2 iterations .*residuals"):
        groklab.theory.dmft(alpha=1.0, eps=0.5, N=2, p=2.0, horizon=1.5, steps=15, samples=500,
                            response_samples=100, tol=1e-9, max_iter=2)


def test_cli_theory_commands(capsys, tmp_path):
    from groklab.cli import main

    out = tmp_path / "dmft.json"
    assert main(["theory", "dmft", "--alpha", "1", "--eps", "0.5", "--N", "2", "--p", "2", "--horizon", "0.5",
                 "--steps", "5", "--samples", "300", "--response-samples", "50", "--tol", "1e-2", "--quiet",
                 "--out", str(out)]) == 0
    import json

    data = json.loads(out.read_text())
    assert len(data["test_loss"]) == 6 and data["test_loss"][0] == pytest.approx(0.75)
    assert data["params"]["direct_control"] is False
    assert main(["theory", "dmft", "--alpha", "1", "--eps", "0.5", "--N", "2", "--p", "2", "--horizon", "0.5",
                 "--steps", "5", "--samples", "300", "--response-samples", "50", "--tol", "1e-2", "--quiet",
                 "--direct-control", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["params"]["direct_control"] is True
    assert main(["theory", "online", "--alpha", "1", "--eps", "0.5", "--D", "50", "--points", "3"]) == 0
    assert "loss" in capsys.readouterr().out
    assert main(["theory", "dmft", "--alpha", "0", "--eps", "0.5", "--N", "2", "--p", "2"]) == 2
    assert "alpha must be" in capsys.readouterr().err


def _data_process_case(M=3, N=2, T=5, seed=0):
    """Random draws and order parameters for the data process of a small case."""
    rng = np.random.default_rng(seed)
    omega, z = rng.standard_normal((M, T + 1, N)), rng.standard_normal(M)
    Rth = 0.3 * rng.standard_normal((T + 1, T, N, N))
    lam = 0.2 + 0.1 * rng.random(T)
    return omega, z, Rth, lam


def test_data_responses_are_the_derivatives_of_the_data_process():
    # Forward-mode Jacobian against central finite differences of the forward integration.
    omega, z, Rth, lam = _data_process_case()
    (M, T1, N), T, kw = omega.shape, omega.shape[1] - 1, dict(alpha=0.7, eps=0.9)
    h, Delta, _ = dm._data_forward(omega, z, Rth, lam, self_response=True, **kw)
    G, mean = np.zeros((M, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))
    dm._data_responses(h, Delta, z, Rth, lam, T=T, G=G, mean=mean, **kw)
    step = 1e-6

    def l_of(om, zz):
        return dm._data_forward(om, zz, Rth, lam, self_response=True, **kw)[2][:, :T].reshape(M, T * N)

    dz = (l_of(omega, z + step) - l_of(omega, z - step)) / (2 * step)
    np.testing.assert_allclose(G[:, 0], dz, rtol=1e-6, atol=1e-8)
    for s in range(T):
        for b in range(N):
            up, down = omega.copy(), omega.copy()
            up[:, s, b] += step
            down[:, s, b] -= step
            fd = (l_of(up, z) - l_of(down, z)) / (2 * step)
            np.testing.assert_allclose(G[:, 1 + s * N + b], fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(mean, G.mean(0), rtol=1e-12, atol=1e-15)


def test_data_responses_by_windows_match_one_pass():
    # The solver grows its time window and reuses the earlier times' Jacobian (and feeds them
    # into the new times in one product); that must give what one pass over all times gives.
    omega, z, Rth, lam = _data_process_case(M=4, N=3, T=9, seed=1)
    (M, T1, N), T, kw = omega.shape, omega.shape[1] - 1, dict(alpha=1.3, eps=0.4)
    h, Delta, _ = dm._data_forward(omega, z, Rth, lam, self_response=True, **kw)

    def buffers():
        return np.zeros((M, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))

    G1, mean1 = buffers()
    one = dm._data_responses(h, Delta, z, Rth, lam, T=T, G=G1, mean=mean1, **kw)
    G2, mean2 = buffers()
    start = 0
    for end in (2, 5, 6, T):
        windowed = dm._data_responses(h, Delta, z, Rth, lam[:end], T=end, G=G2, mean=mean2, start=start, **kw)
        start = end
    for a, b in zip(one, windowed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(G1, G2, rtol=1e-12, atol=1e-14)


def test_direct_terms_are_the_history_free_part_of_the_jacobian():
    # Without the weight process's response (R_th = 0) nothing reaches l(k) through the history,
    # so the whole Jacobian is direct: its sample mean must equal _direct_mean's closed forms.
    omega, z, Rth, lam = _data_process_case(M=6, N=3, T=5, seed=2)
    (M, T1, N), T, kw = omega.shape, omega.shape[1] - 1, dict(alpha=0.8, eps=0.6)
    for scale in (0.0, 1.0):
        h, Delta, _ = dm._data_forward(omega, z, scale * Rth, lam, self_response=True, **kw)
        G, mean = np.zeros((M, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))
        dm._data_responses(h, Delta, z, scale * Rth, lam, T=T, G=G, mean=mean, **kw)
        direct = dm._direct_mean(h, Delta, z, T=T, start=0, **kw)
        if scale == 0.0:
            np.testing.assert_allclose(direct, mean, rtol=1e-12, atol=1e-14)
        else:  # with a history only the equal-time blocks stay direct
            assert np.abs(direct - mean).max() > 1e-2
            for k in range(T):
                rows, cols = slice(1 + k * N, 1 + (k + 1) * N), slice(k * N, (k + 1) * N)
                np.testing.assert_allclose(direct[rows, cols], mean[rows, cols], rtol=1e-12, atol=1e-14)


def test_direct_control_variate_by_windows_and_on_the_same_samples():
    omega, z, Rth, lam = _data_process_case(M=8, N=2, T=7, seed=3)
    (M, T1, N), T, kw = omega.shape, omega.shape[1] - 1, dict(alpha=1.1, eps=0.7)
    h, Delta, _ = dm._data_forward(omega, z, Rth, lam, self_response=True, **kw)
    r, full = 3, (h, Delta, z)

    def buffers(m):
        return np.zeros((m, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))

    # Its own samples as the larger set: the correction is zero.
    plain = dm._data_responses(h, Delta, z, Rth, lam, T=T, G=buffers(M)[0], mean=buffers(M)[1], **kw)
    same = dm._data_responses(h, Delta, z, Rth, lam, T=T, G=buffers(M)[0], mean=buffers(M)[1], direct_from=full, **kw)
    for a, b in zip(plain, same):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # A subset: the equal-time responses are then the full set's exactly; and growing the window
    # corrects only the new times, as one pass does.
    G1, mean1 = buffers(r)
    one = dm._data_responses(h[:r], Delta[:r], z[:r], Rth, lam, T=T, G=G1, mean=mean1, direct_from=full, **kw)
    np.testing.assert_allclose(np.einsum("kkab->kab", one[0]), np.einsum("kkab->kab", plain[0]), rtol=1e-12)
    assert np.abs(one[0] - plain[0]).max() > 1e-3  # the history part still comes from the subset
    G2, mean2 = buffers(r)
    start = 0
    for end in (3, 4, T):
        windowed = dm._data_responses(h[:r], Delta[:r], z[:r], Rth, lam[:end], T=end, G=G2, mean=mean2, start=start,
                                      direct_from=full, **kw)
        start = end
    for a, b in zip(one, windowed):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_control_variates_are_wired_through_the_solver():
    kw = dict(alpha=1.0, eps=0.5, N=2, p=2.0, horizon=1.0, steps=8, D_init=None, tol=1e-3, window=4)
    # All samples give the responses: R_l has nothing to correct, and R_z by integration by parts
    # estimates what the Jacobian average does (Monte Carlo apart).
    same = [groklab.theory.dmft(samples=300, response_samples=300, direct_control=c, **kw) for c in (False, True)]
    np.testing.assert_allclose(same[0].test_loss, same[1].test_loss, rtol=0.01)
    # A subset: the direct terms come from all samples, so the solution moves (within noise).
    sub = [groklab.theory.dmft(samples=3000, response_samples=100, direct_control=c, **kw) for c in (False, True)]
    assert not np.allclose(sub[0].test_loss, sub[1].test_loss, rtol=1e-6)
    np.testing.assert_allclose(sub[0].test_loss, sub[1].test_loss, rtol=0.1)
    assert sub[1].params["direct_control"] is True


def test_stein_rz_matches_the_jacobian_average():
    # R_z / p = E[d l / d z] with omega held fixed: the forward-mode Jacobian averages it sample
    # by sample; Gaussian integration by parts gets it from E[l z] and R_l. On many draws the two
    # agree, and dropping the R_l m correction (large overlaps here) breaks the agreement.
    rng = np.random.default_rng(4)
    M, T, N, beta_sq = 40000, 4, 2, 1.3
    A = rng.standard_normal(((T + 1) * N, (T + 1) * N))
    C = (A @ A.T / ((T + 1) * N) + np.eye((T + 1) * N)).reshape(T + 1, N, T + 1, N)
    m = 0.5 * rng.standard_normal((T + 1, N))
    omega, z = dm._gaussian_draws(C, m, rng.standard_normal((M, (T + 1) * N + 1)), beta_sq)
    Rth = 0.3 * rng.standard_normal((T + 1, T, N, N))
    lam, kw = 0.2 + 0.1 * rng.random(T), dict(alpha=0.9, eps=0.5)
    h, Delta, l = dm._data_forward(omega, z, Rth, lam, self_response=True, **kw)
    G, mean = np.zeros((M, T * N + 1, T * N)), np.zeros((T * N + 1, T * N))
    Rl, Rz = dm._data_responses(h, Delta, z, Rth, lam, T=T, G=G, mean=mean, **kw)
    stein = dm._stein_rz(l[:, :T], z, Rl, m[:T], beta_sq)
    spread = G[:, 0].std(0).reshape(T, N) / np.sqrt(M)  # the Jacobian average's own standard error
    tolerance = 5 * spread + 0.02
    assert np.all(np.abs(stein - Rz) < tolerance)
    uncorrected = (l[:, :T] * z[:, None, None]).mean(0) / beta_sq
    assert not np.all(np.abs(uncorrected - Rz) < tolerance)
