"""Tests for groklab.metrics.matrix_info against independent numpy / closed-form values."""

import math

import numpy as np
import pytest
import torch

from groklab.metrics import matrix_info as mi


def _features(n, d, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=dtype)  # (n, d)


def _numpy_entropy(gram_np, order):
    """Brute force: eigendecomposition of R/n in numpy, formula of paper Def. 2.1."""
    n = gram_np.shape[0]
    lam = np.clip(np.linalg.eigvalsh(gram_np / n), 0.0, None)
    lam = lam[lam > 1e-14]
    if order == 1:
        return float(-(lam * np.log(lam)).sum())
    return float(np.log((lam**order).sum()) / (1 - order))


def _numpy_gram(x):
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    z = x / np.linalg.norm(x, axis=1, keepdims=True)
    return z @ z.T


def _one_hot(labels, k):
    return torch.nn.functional.one_hot(torch.tensor(labels), k).double()  # (n, k)


# ---------------------------------------------------------------------------------- gram


def test_gram_unit_diagonal_and_cosines():
    x = _features(6, 4, 0)
    r = mi.gram(x)
    assert r.shape == (6, 6)
    np.testing.assert_allclose(r.numpy(), _numpy_gram(x.numpy()), atol=1e-12)
    np.testing.assert_allclose(torch.diagonal(r).numpy(), np.ones(6), atol=1e-12)


def test_gram_zero_row_is_safe_in_value_and_gradient():
    x = _features(4, 3, 1)
    x[2] = 0.0
    x.requires_grad_(True)
    r = mi.gram(x)
    assert torch.isfinite(r).all()
    assert torch.all(r[2] == 0) and torch.all(r[:, 2] == 0)
    r.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().max() < 100  # F.normalize would give ~1e12 here


# ------------------------------------------------------------------------------ entropy


@pytest.mark.parametrize("order", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("n,d", [(12, 4), (5, 9)])
def test_entropy_three_routes_agree(order, n, d):
    x = _features(n, d, 2)
    brute = _numpy_entropy(_numpy_gram(x.numpy()), order)
    via_features = float(mi.renyi_entropy(x, order))  # covariance route when d < n
    via_gram = float(mi.renyi_entropy_from_gram(mi.gram(x), order))  # n x n route
    assert via_features == pytest.approx(brute, rel=1e-10)
    assert via_gram == pytest.approx(brute, rel=1e-10)


def test_order_two_is_frobenius_norm():
    # H_2 = -log tr((R/n)^2) = -log(|R|_F^2 / n^2): no eigendecomposition needed.
    x = _features(10, 3, 3)
    r = _numpy_gram(x.numpy())
    expected = -math.log((r**2).sum() / 10**2)
    assert float(mi.renyi_entropy(x, 2.0)) == pytest.approx(expected, rel=1e-12)


def test_one_hot_features_give_shannon_entropy_of_labels():
    # R/n is block diagonal with eigenvalues n_c / n.
    x = _one_hot([0, 0, 0, 1, 2, 2], 3)
    p = np.array([3, 1, 2]) / 6
    assert float(mi.renyi_entropy(x)) == pytest.approx(float(-(p * np.log(p)).sum()), abs=1e-12)
    assert float(mi.renyi_entropy(x, 2.0)) == pytest.approx(-math.log((p**2).sum()), abs=1e-12)


def test_entropy_extremes():
    n = 7
    same = torch.ones(n, 3, dtype=torch.float64)
    assert float(mi.renyi_entropy(same)) == pytest.approx(0.0, abs=1e-12)
    orthogonal = torch.eye(n, dtype=torch.float64)
    assert float(mi.renyi_entropy(orthogonal)) == pytest.approx(math.log(n), abs=1e-12)
    assert float(mi.renyi_entropy(orthogonal, 3.0)) == pytest.approx(math.log(n), abs=1e-12)


def test_entropy_accepts_float32_and_returns_float32():
    x64 = _features(40, 5, 4)
    h32 = mi.renyi_entropy(x64.float())
    assert h32.dtype == torch.float32
    assert float(h32) == pytest.approx(float(mi.renyi_entropy(x64)), rel=1e-6)


def test_invalid_inputs_rejected():
    with pytest.raises(ValueError):
        mi.renyi_entropy(_features(4, 2, 0), 0.0)
    with pytest.raises(ValueError):
        mi.renyi_entropy(torch.zeros(4, 2, dtype=torch.float64))
    with pytest.raises(ValueError):
        mi.covariance_entropy(torch.ones(4, 2, dtype=torch.float64))


# ------------------------------------------------------------------------ joint / MI / JS


@pytest.mark.parametrize("n,d1,d2", [(20, 2, 3), (6, 4, 5)])  # Kronecker route, n x n route
def test_joint_entropy_is_entropy_of_hadamard_product(n, d1, d2):
    a, b = _features(n, d1, 5), _features(n, d2, 6)
    hadamard = _numpy_gram(a.numpy()) * _numpy_gram(b.numpy())
    for order in (1.0, 2.0):
        assert float(mi.joint_entropy(a, b, order)) == pytest.approx(
            _numpy_entropy(hadamard, order), rel=1e-10
        )


def test_mutual_information_against_numpy():
    a, b = _features(15, 3, 7), _features(15, 2, 8)
    ra, rb = _numpy_gram(a.numpy()), _numpy_gram(b.numpy())
    expected = _numpy_entropy(ra, 1) + _numpy_entropy(rb, 1) - _numpy_entropy(ra * rb, 1)
    assert float(mi.mutual_information(a, b)) == pytest.approx(expected, rel=1e-10)


def test_mutual_information_discrete_hand_checks():
    x = _one_hot([0, 0, 1, 1], 2)
    independent = _one_hot([0, 1, 0, 1], 2)
    # Identical one-hot features: R o R = R, so I = H = log 2.
    assert float(mi.mutual_information(x, x)) == pytest.approx(math.log(2), abs=1e-12)
    # Independent labels: joint Gram is the identity, I = log2 + log2 - log4 = 0.
    assert float(mi.mutual_information(x, independent)) == pytest.approx(0.0, abs=1e-12)
    # y a function of x: I(x; y) = H(y).
    fine = _one_hot([0, 1, 2, 3], 4)
    assert float(mi.mutual_information(fine, x)) == pytest.approx(math.log(2), abs=1e-12)
    # Constant features carry no information.
    const = torch.ones(4, 2, dtype=torch.float64)
    assert float(mi.mutual_information(const, fine)) == pytest.approx(0.0, abs=1e-12)


def test_mutual_information_of_identical_continuous_features_is_not_h():
    # Documented: I(R;R) = 2H(R) - H(R o R), which differs from H(R) unless R is 0/1.
    x = _features(10, 3, 9)
    r = _numpy_gram(x.numpy())
    expected = 2 * _numpy_entropy(r, 1) - _numpy_entropy(r * r, 1)
    got = float(mi.mutual_information(x, x))
    assert got == pytest.approx(expected, rel=1e-10)
    assert abs(got - _numpy_entropy(r, 1)) > 1e-3


def test_js_divergence_closed_form():
    n = 5
    distinct = torch.eye(n, dtype=torch.float64)  # R1 = I
    same = torch.ones(n, 2, dtype=torch.float64)  # R2 = all ones
    # (I + 11^T)/(2n) has eigenvalues (n+1)/(2n) once and 1/(2n) (n-1) times.
    big, small = (n + 1) / (2 * n), 1 / (2 * n)
    h_mix = -(big * math.log(big) + (n - 1) * small * math.log(small))
    expected = h_mix - (math.log(n) + 0.0) / 2
    assert float(mi.js_divergence(distinct, same)) == pytest.approx(expected, abs=1e-12)
    assert float(mi.js_divergence(same, distinct)) == pytest.approx(expected, abs=1e-12)


def test_js_divergence_zero_for_identical_and_bounded():
    a, b = _features(9, 3, 10), _features(9, 4, 11)
    assert float(mi.js_divergence(a, 2.5 * a)) == pytest.approx(0.0, abs=1e-12)
    js = float(mi.js_divergence(a, b))
    assert 0.0 < js <= math.log(2)
    ra, rb = _numpy_gram(a.numpy()), _numpy_gram(b.numpy())
    h_mean = (_numpy_entropy(ra, 1) + _numpy_entropy(rb, 1)) / 2
    expected = _numpy_entropy((ra + rb) / 2, 1) - h_mean
    assert js == pytest.approx(expected, rel=1e-10)


def test_covariance_entropy():
    x = _features(30, 4, 12) * torch.tensor([3.0, 1.0, 0.5, 0.1], dtype=torch.float64)
    xc = x.numpy() - x.numpy().mean(axis=0)
    lam = np.linalg.eigvalsh(xc.T @ xc)
    lam = lam / lam.sum()
    expected = float(-(lam * np.log(lam)).sum())
    assert float(mi.covariance_entropy(x)) == pytest.approx(expected, rel=1e-10)
    # Uncentred covariance of unit rows shares the Gram spectrum.
    z = torch.nn.functional.normalize(x, dim=1)
    assert float(mi.covariance_entropy(z, center=False)) == pytest.approx(
        _numpy_entropy(_numpy_gram(x.numpy()), 1), rel=1e-10
    )


# ------------------------------------------------------------------------ differentiability


@pytest.mark.parametrize("n,d", [(6, 3), (3, 5)])
@pytest.mark.parametrize("order", [1.0, 2.0])
def test_entropy_gradcheck(n, d, order):
    x = _features(n, d, 13).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: mi.renyi_entropy(t, order), (x,))


@pytest.mark.parametrize("n", [6, 3])  # Kronecker (d1 d2 = 4 < n) and Hadamard routes
def test_mutual_information_and_js_gradcheck(n):
    a = _features(n, 2, 14).requires_grad_(True)
    b = _features(n, 2, 15).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda s, t: mi.mutual_information(s, t), (a, b))
    assert torch.autograd.gradcheck(lambda s, t: mi.js_divergence(s, t), (a, b))


# ----------------------------------------------------------------------- perturbation metrics


def _toy_forward():
    w = _features(4, 3, 16)  # (d_in, k)
    return lambda x: torch.tanh(x @ w)  # (n, 4) -> (n, 3)


def test_perturbed_metrics_at_sigma_zero_are_the_clean_values():
    forward, x = _toy_forward(), _features(12, 4, 17)
    logits = forward(x)
    assert float(mi.perturbed_entropy(forward, x, 0.0, None)) == pytest.approx(
        _numpy_entropy(_numpy_gram(logits.numpy()), 1), rel=1e-10
    )
    ra, rb = _numpy_gram(x.numpy()), _numpy_gram(logits.numpy())
    clean_mi = _numpy_entropy(ra, 1) + _numpy_entropy(rb, 1) - _numpy_entropy(ra * rb, 1)
    g = torch.Generator().manual_seed(0)
    assert float(mi.perturbed_mutual_information(forward, x, 0.0, g)) == pytest.approx(
        clean_mi, rel=1e-10
    )
    assert float(mi.mid(forward, x, 0.0, g)) == 0.0
    assert float(mi.ed(forward, x, 0.0, g)) == 0.0


def test_perturbed_metrics_use_std_sigma_noise_from_the_generator():
    forward, x, sigma = _toy_forward(), _features(12, 4, 18), 0.3
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=x.dtype)
    noisy = x + sigma * noise  # N(0, sigma^2 I)
    logits_noisy, logits = forward(noisy), forward(x)

    pe = float(mi.perturbed_entropy(forward, x, sigma, torch.Generator().manual_seed(5)))
    pe_expected = _numpy_entropy(_numpy_gram(logits_noisy.numpy()), 1)
    assert pe == pytest.approx(pe_expected, rel=1e-10)

    ed = float(mi.ed(forward, x, sigma, torch.Generator().manual_seed(5)))
    pe_clean = _numpy_entropy(_numpy_gram(logits.numpy()), 1)
    assert ed == pytest.approx(abs(pe_expected - pe_clean), rel=1e-10)
    assert ed > 1e-4

    def np_mi(u, v):
        ru, rv = _numpy_gram(u.numpy()), _numpy_gram(v.numpy())
        return _numpy_entropy(ru, 1) + _numpy_entropy(rv, 1) - _numpy_entropy(ru * rv, 1)

    g = torch.Generator().manual_seed(5)
    pmi = float(mi.perturbed_mutual_information(forward, x, sigma, g))
    assert pmi == pytest.approx(np_mi(noisy, logits_noisy), rel=1e-10)
    mid = float(mi.mid(forward, x, sigma, torch.Generator().manual_seed(5)))
    assert mid == pytest.approx(abs(np_mi(noisy, logits_noisy) - np_mi(x, logits)), rel=1e-10)
    assert mid > 1e-4


def test_perturbation_requires_generator_when_noisy():
    with pytest.raises(ValueError):
        mi.perturbed_entropy(_toy_forward(), _features(5, 4, 0), 0.1, None)


def test_perturbed_entropy_is_differentiable_through_forward():
    w = _features(4, 3, 19).requires_grad_(True)
    x = _features(10, 4, 20)
    pe = mi.perturbed_entropy(lambda t: t @ w, x, 0.1, torch.Generator().manual_seed(1))
    pe.backward()
    assert torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
