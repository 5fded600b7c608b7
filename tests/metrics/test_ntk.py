"""NTK utilities against brute-force computations (per-sample autograd loops, numpy)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from groklab.metrics.ntk import (
    empirical_ntk,
    frobenius_norm_estimate,
    kernel_alignment,
    kernel_alignment_from_kernel,
    kernel_change,
    kernel_regression,
    linearized_model,
    ntk_quadratic_form,
    relative_parameter_change,
)
from groklab.metrics.toy_model import summary_statistics, toy_ntk
from groklab.models.committee import CommitteeMachine, centred_mse_loss
from groklab.tasks.polynomial import make_single_index_quadratic

F64 = torch.float64


@pytest.fixture(autouse=True)
def single_thread():
    # These models are tiny: on a shared 2-core machine intra-op threading only adds
    # synchronisation stalls. Restored afterwards so other test modules are unaffected.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _mlp(seed: int, d_in: int = 5, hidden: int = 12, d_out: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                          nn.Tanh(), nn.Linear(hidden, d_out)).to(F64)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / math.sqrt(p.shape[-1]))
    return model


def _brute_jacobian(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """(P, C, n_params) by one torch.autograd.grad call per sample and output."""
    params = list(model.parameters())
    rows = []
    for a in range(x.shape[0]):
        out = model(x[a:a + 1]).reshape(-1)  # (C,)
        per_out = []
        for c in range(out.numel()):
            grads = torch.autograd.grad(out[c], params, retain_graph=True)
            per_out.append(torch.cat([g.reshape(-1) for g in grads]))
        rows.append(torch.stack(per_out))
    return torch.stack(rows).numpy()


def _numpy_alignment(K: np.ndarray, y: np.ndarray, method: str) -> float:
    """Alignment from the definitions, with an explicit centring matrix."""
    P = y.shape[0]
    C = 1 if y.ndim == 1 else y.shape[1]
    v = y.reshape(-1)
    if method == "centered":
        H = np.kron(np.eye(P) - np.ones((P, P)) / P, np.eye(C))
        K, L = H @ K @ H, H @ np.outer(v, v) @ H
    else:
        L = np.outer(v, v)
    return float((K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L)))


# ----------------------------------------------------------------------------- kernels

@pytest.mark.parametrize("output", [None, 1, "trace", "flatten"])
@pytest.mark.parametrize("chunk_size", [None, 3])
def test_empirical_ntk_matches_autograd_loop(output, chunk_size):
    model = _mlp(0, d_out=1 if output is None else 3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 5, generator=g, dtype=F64)  # (7, 5)
    x2 = torch.randn(4, 5, generator=g, dtype=F64)  # (4, 5)
    J, J2 = _brute_jacobian(model, x), _brute_jacobian(model, x2)  # (P, C, n)
    if output == "trace":
        expect, expect2 = np.einsum("acn,bcn->ab", J, J), np.einsum("acn,bcn->ab", J, J2)
    else:
        if isinstance(output, int):
            J, J2 = J[:, output:output + 1], J2[:, output:output + 1]
        Jf, J2f = J.reshape(-1, J.shape[2]), J2.reshape(-1, J2.shape[2])
        expect, expect2 = Jf @ Jf.T, Jf @ J2f.T
    K = empirical_ntk(model, x, output=output, chunk_size=chunk_size)
    K2 = empirical_ntk(model, x, x2, output=output, chunk_size=chunk_size)
    np.testing.assert_allclose(K.numpy(), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(K2.numpy(), expect2, rtol=1e-12, atol=1e-12)


def test_vector_output_needs_a_selection():
    with pytest.raises(ValueError):
        empirical_ntk(_mlp(0, d_out=3), torch.zeros(2, 5, dtype=F64))


@pytest.mark.parametrize("input_scale", [1.0, 1.0 / math.sqrt(6)])
def test_analytic_toy_ntk_equals_committee_ntk(input_scale):
    D, N, alpha, eps = 6, 11, 1.7, 0.6
    model = CommitteeMachine(D, N, alpha=alpha, eps=eps, input_scale=input_scale, seed=3,
                             dtype=F64)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # move away from init so that wbar and M matter
        model.W.add_(0.7 * torch.randn(N, D, generator=g, dtype=F64) + 0.5)
    x = torch.randn(9, D, generator=g, dtype=F64)  # (9, D)
    x2 = torch.randn(5, D, generator=g, dtype=F64)  # (5, D)
    st = summary_statistics(model.W)
    analytic = toy_ntk(input_scale * x, input_scale * x2, st.wbar, st.M, eps=eps,
                       prefactor=alpha ** 2 / N)
    torch.testing.assert_close(empirical_ntk(model, x, x2), analytic, rtol=1e-11, atol=1e-13)
    # Without the prefactor it is eq. 5 as printed, off by alpha^2 / N.
    printed = toy_ntk(input_scale * x, input_scale * x2, st.wbar, st.M, eps=eps, prefactor=1.0)
    torch.testing.assert_close(printed * alpha ** 2 / N, analytic)


# ----------------------------------------------------------------------------- alignment

ALIGN_CASES = {
    "scalar": dict(d_out=1, output=None),
    "vector-flatten": dict(d_out=3, output="flatten"),
    "vector-column": dict(d_out=3, output=2),
}


def _align_problem(case: str, P: int):
    spec = ALIGN_CASES[case]
    model = _mlp(4, d_out=spec["d_out"])
    g = torch.Generator().manual_seed(5)
    x = torch.randn(P, 5, generator=g, dtype=F64)  # (P, 5)
    y = torch.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.3  # (P,) offset so centring matters
    if spec["output"] == "flatten":
        y = torch.stack([y, torch.cos(x[:, 3]), x[:, 4] ** 2], dim=1)  # (P, 3)
    J = _brute_jacobian(model, x)  # (P, C, n)
    if isinstance(spec["output"], int):
        J = J[:, spec["output"]:spec["output"] + 1]
    Jf = J.reshape(-1, J.shape[2])
    return model, x, y, spec["output"], Jf @ Jf.T


@pytest.mark.parametrize("method", ["paper", "centered"])
@pytest.mark.parametrize("case", list(ALIGN_CASES))
def test_alignment_exact_route_matches_explicit_formula(case, method):
    model, x, y, output, K = _align_problem(case, P=30)
    expect = _numpy_alignment(K, y.numpy(), method)
    got = kernel_alignment(model, x, y, method, exact=True, output=output, chunk_size=8)
    assert got == pytest.approx(expect, rel=1e-10)
    v = y.reshape(-1).numpy()
    assert ntk_quadratic_form(model, x, y, output=output) == pytest.approx(v @ K @ v, rel=1e-11)
    from_k = kernel_alignment_from_kernel(torch.from_numpy(K), y, method)
    assert from_k == pytest.approx(expect, rel=1e-12)


def _sketch_tolerance(K: np.ndarray, n_projections: int, n_sigma: float = 5.0) -> float:
    """Tolerance for the relative error of the projected alignment (= that of |K|_F).

    Gaussian residual probes. Hutch++ with k = n/3 sketch vectors and m = n - 2k probes:
    the residual share R of |K|_F^2 outside the sketch is, in expectation, at most
    min_r (1 + r/(k-r-1)) tail_r (Halko et al. 2011, Thm 10.5), tail_r the share beyond the
    top r eigenvalues; the probe average then has relative sd <= sqrt(2/m) R on |K|_F^2,
    half that on |K|_F. A factor 10 on R covers the fluctuation of R around its mean.
    """
    k = n_projections // 3
    m = n_projections - 2 * k
    e2 = np.sort(np.linalg.eigvalsh(K) ** 2)[::-1]
    tails = 1.0 - np.cumsum(e2) / e2.sum()  # tails[r-1] = share beyond the top r
    R = min([1.0] + [(1 + r / (k - r - 1)) * max(tails[r - 1], 0.0) for r in range(1, k - 1)])
    return n_sigma * 0.5 * math.sqrt(2.0 / m) * min(1.0, 10.0 * R) + 1e-9


def _kernel_for(case, method, P):
    model, x, y, output, K = _align_problem(case, P=P)
    if method == "centered":
        C = 1 if y.ndim == 1 else y.shape[1]
        H = np.kron(np.eye(x.shape[0]) - 1.0 / x.shape[0], np.eye(C))
        K = H @ K @ H
    return model, x, y, output, K


@pytest.mark.parametrize("method", ["paper", "centered"])
@pytest.mark.parametrize("case,n_projections", [("scalar", 30), ("vector-flatten", 90)])
def test_alignment_projected_route_within_estimator_tolerance(case, n_projections, method):
    # The flattened 3-output kernel has a flatter spectrum, so it needs a larger sketch
    # for the same tolerance.
    model, x, y, output, K = _kernel_for(case, method, P=120)
    expect = _numpy_alignment(K, y.numpy(), method)
    tol = _sketch_tolerance(K, n_projections)
    assert tol < 0.1, tol  # the check has teeth
    for seed in range(3):
        got = kernel_alignment(model, x, y, method, exact=False, n_projections=n_projections,
                               probes="gaussian", generator=torch.Generator().manual_seed(seed),
                               output=output)
        assert abs(got / expect - 1.0) < tol, (seed, got, expect, tol)
    # Column probes (the default) carry no spectral bound of this form; their variance is
    # checked on explicit matrices below. Here: within the same tolerance.
    got = kernel_alignment(model, x, y, method, exact=False, n_projections=n_projections,
                           generator=torch.Generator().manual_seed(7), output=output)
    assert abs(got / expect - 1.0) < tol, (got, expect, tol)


@pytest.mark.parametrize("probes", ["coordinate", "gaussian"])
@pytest.mark.parametrize("method", ["paper", "centered"])
def test_matrix_free_products_are_the_explicit_kernel(probes, method):
    """With the same probes, the VJP/JVP route equals the estimator run on the brute K."""
    model, x, y, output, K = _kernel_for("vector-flatten", method, P=40)
    Kt = torch.from_numpy(K)
    fro = frobenius_norm_estimate(lambda Z: Z @ Kt, K.shape[0], n_projections=21,
                                  probes=probes, generator=torch.Generator().manual_seed(3))
    v = y.reshape(-1).numpy()
    if method == "centered":
        v = (y - y.mean(0)).reshape(-1).numpy()
    expect = float(v @ K @ v) / (fro * float(v @ v))
    got = kernel_alignment(model, x, y, method, exact=False, n_projections=21, probes=probes,
                           generator=torch.Generator().manual_seed(3), output=output)
    assert got == pytest.approx(expect, rel=1e-9)


def test_frobenius_estimator_unbiased_and_spread_as_predicted():
    """E[estimate^2] = |A|_F^2 for every probe type; sds match their closed forms."""
    rng = np.random.default_rng(0)
    n = 60
    U = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = (U * (0.6 ** np.arange(n) + 0.05)) @ U.T  # (n, n) PSD: steep top, flat floor
    truth = np.linalg.norm(A) ** 2
    At = torch.from_numpy(A)

    def estimates(n_proj, probes):
        g = torch.Generator().manual_seed(123)
        return np.array([frobenius_norm_estimate(lambda Z: Z @ At, n, n_projections=n_proj,
                                                 probes=probes, generator=g)
                         for _ in range(400)]) ** 2

    runs = {(n_proj, probes): estimates(n_proj, probes)
            for n_proj in (2, 6) for probes in ("gaussian", "coordinate")}
    for key, est in runs.items():
        se = est.std() / math.sqrt(len(est))
        assert abs(est.mean() - truth) < 4 * se + 1e-12 * truth, key
    # Plain Gaussian (no sketch, m = 2): sd of mean z^T A^2 z is sqrt(2 tr(A^4) / m).
    sd_gauss = math.sqrt(2 * np.trace(np.linalg.matrix_power(A, 4)) / 2)
    assert runs[(2, "gaussian")].std() == pytest.approx(sd_gauss, rel=0.2)
    # Plain columns (m = 2 of n, without replacement): (n^2/m)(1 - (m-1)/(n-1)) Var_a c_a.
    col = (A ** 2).sum(0)
    sd_cols = math.sqrt(n ** 2 / 2 * (1 - 1 / (n - 1)) * col.var())
    assert runs[(2, "coordinate")].std() == pytest.approx(sd_cols, rel=0.2)
    # Same number of residual probes (2): the sketch removes the dominant eigenvalues.
    for probes in ("gaussian", "coordinate"):
        assert runs[(6, probes)].std() < 0.7 * runs[(2, probes)].std(), probes
    # All columns sampled (2 probes, no sketch, on a 2 x 2 block): exact.
    B2 = At[:2, :2]
    full = frobenius_norm_estimate(lambda Z: Z @ B2, 2, n_projections=2, probes="coordinate",
                                   generator=torch.Generator().manual_seed(0))
    assert full == pytest.approx(float(torch.linalg.matrix_norm(B2)), rel=1e-14)


def test_centered_cka_matches_numpy_hsic():
    rng = np.random.default_rng(3)
    P = 25
    X = rng.standard_normal((P, 4))
    K = np.exp(-0.5 * ((X[:, None] - X[None]) ** 2).sum(-1)) + 2.0  # offset: centring matters
    y = X[:, 0] ** 2 + 1.5
    H = np.eye(P) - np.ones((P, P)) / P
    L = np.outer(y, y)
    hsic = lambda A, B: np.trace(A @ H @ B @ H)  # noqa: E731  (Gretton et al. 2005, unnormalised)
    expect = hsic(K, L) / math.sqrt(hsic(K, K) * hsic(L, L))
    got = kernel_alignment_from_kernel(torch.from_numpy(K), torch.from_numpy(y), "centered")
    assert got == pytest.approx(expect, rel=1e-12)
    # Centred CKA ignores constant shifts of the labels; the paper form does not.
    Kt, yt = torch.from_numpy(K), torch.from_numpy(y)
    assert kernel_alignment_from_kernel(Kt, yt + 10, "centered") == pytest.approx(got, rel=1e-12)
    paper, paper_shifted = (kernel_alignment_from_kernel(Kt, v, "paper") for v in (yt, yt + 10))
    assert paper_shifted != pytest.approx(paper)


# ----------------------------------------------------------------------------- regression

def test_kernel_regression_equals_parameter_space_least_squares():
    model = CommitteeMachine(4, 5, alpha=1.0, eps=0.5, seed=0, dtype=F64)  # 20 parameters
    data = make_single_index_quadratic(4, 12, 6, seed=1, dtype=F64)
    J = _brute_jacobian(model, data.x_train)[:, 0]  # (12, 20)
    Jt = _brute_jacobian(model, data.x_test)[:, 0]  # (6, 20)
    y = data.y_train.numpy()
    K = empirical_ntk(model, data.x_train)
    Kt = empirical_ntk(model, data.x_test, data.x_train)
    # Minimum-norm interpolation in parameter space (what GD on the linear model reaches).
    theta = np.linalg.pinv(J) @ y
    np.testing.assert_allclose(kernel_regression(K, data.y_train, Kt).numpy(), Jt @ theta,
                               rtol=1e-7, atol=1e-9)
    # Ridge: theta = (J^T J + lam I)^-1 J^T y, pushed through to kernel form.
    lam = 0.3
    theta = np.linalg.solve(J.T @ J + lam * np.eye(J.shape[1]), J.T @ y)
    np.testing.assert_allclose(kernel_regression(K, data.y_train, Kt, ridge=lam).numpy(),
                               Jt @ theta, rtol=1e-10, atol=1e-12)
    # Rank-deficient K (more points than parameters) with ridge 0: pseudo-inverse.
    big = make_single_index_quadratic(4, 40, 6, seed=2, dtype=F64)
    Jb = _brute_jacobian(model, big.x_train)[:, 0]  # (40, 20): K has rank <= 20
    Kb = empirical_ntk(model, big.x_train)
    Kbt = empirical_ntk(model, big.x_test, big.x_train)
    theta = np.linalg.pinv(Jb) @ big.y_train.numpy()
    np.testing.assert_allclose(kernel_regression(Kb, big.y_train, Kbt).numpy(),
                               _brute_jacobian(model, big.x_test)[:, 0] @ theta,
                               rtol=1e-9, atol=1e-10)


# ----------------------------------------------------------------------------- linearisation

def test_linearized_model_at_init_and_first_order_change():
    model = _mlp(7, d_out=2)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(8), dtype=F64)  # (6, 5)
    lin = linearized_model(model)
    torch.testing.assert_close(lin(x), model(x), rtol=0, atol=0)
    assert relative_parameter_change(lin, model) == 0.0

    g = torch.Generator().manual_seed(9)
    direction = {k: torch.randn(p.shape, generator=g, dtype=F64)
                 for k, p in model.named_parameters()}
    h = 1e-5

    def shifted(module, step):
        out = {k: p.detach() + step * direction[k] for k, p in module.named_parameters()}
        return torch.func.functional_call(module, out, (x,))

    with torch.no_grad():
        fd = (shifted(model, h) - shifted(model, -h)) / (2 * h)  # network derivative
        for p, (k, _) in zip(lin.theta, model.named_parameters()):
            p.add_(2.0 * direction[k])
        change = lin(x) - model(x)  # exact J d for the linear model, step 2
    torch.testing.assert_close(change / 2.0, fd, rtol=1e-7, atol=1e-9)
    # Its gradient is J^T at theta_0 regardless of theta: compare with the brute Jacobian.
    lin.zero_grad()
    lin(x)[:, 1].sum().backward()
    grad = torch.cat([p.grad.reshape(-1) for p in lin.theta]).numpy()
    np.testing.assert_allclose(grad, _brute_jacobian(model, x)[:, 1].sum(0), rtol=1e-10, atol=1e-12)


def test_lazy_network_tracks_linearisation_rich_one_departs():
    """Large alpha (lazy): net ~ linearisation; small alpha (rich): it departs (paper 001 §4.1)."""
    data = make_single_index_quadratic(8, 24, 200, seed=0, dtype=F64)
    D, N, eps, steps = 8, 32, 1.0, 200
    report = {}
    for alpha in (32.0, 0.25):
        net = CommitteeMachine(D, N, alpha=alpha, eps=eps, seed=1, dtype=F64)
        lin = linearized_model(net)
        with torch.no_grad():
            f0_train, f0_test = net(data.x_train), net(data.x_test)
        K0 = empirical_ntk(net, data.x_train)
        lr = N / alpha ** 2  # the paper's scaling: early function-space dynamics alpha-free
        opts = [(m, torch.optim.SGD(m.parameters(), lr=lr)) for m in (net, lin)]
        for _ in range(steps):
            for m, opt in opts:
                opt.zero_grad()
                centred_mse_loss(m, f0_train, data.x_train, data.y_train).backward()
                opt.step()
        with torch.no_grad():
            d_net, d_lin = net(data.x_test) - f0_test, lin(data.x_test) - f0_test
            train_loss = float(((lin(data.x_train) - f0_train - data.y_train) ** 2).mean())
        report[alpha] = dict(
            departure=float((d_net - d_lin).norm() / d_lin.norm()),
            param=relative_parameter_change(net, lin.init_params()),
            kernel=kernel_change(empirical_ntk(net, data.x_train), K0),
        )
        assert train_loss < 1e-3 * float((data.y_train ** 2).mean())  # both actually trained
    lazy, rich = report[32.0], report[0.25]
    assert lazy["departure"] < 0.02, report
    assert rich["departure"] > 0.3, report
    assert rich["param"] > 20 * lazy["param"] and rich["kernel"] > 20 * lazy["kernel"], report
