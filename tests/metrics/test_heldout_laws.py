"""Group laws scored on held-out pairs, commutativity beyond accuracy, scale-free swap
distances, and the sigma sweep of the matrix-information metrics: hand-made predictors with
known answers, and the registered metrics against direct computations on a tiny model."""

import math

import pytest
import torch
import torch.nn.functional as F

from groklab.metrics import group_laws as gl
from groklab.metrics import robustness
from groklab.metrics.registry import METRICS
from tests.conftest import tiny
from tests.metrics.test_robustness_metrics import _context

P = 7


def _constant_shift(table, shift):
    """Answers ``a.b + shift``: symmetric (so commutative), and wrong everywhere unless shift = 0."""
    m = table.shape[0]
    return lambda a, b: F.one_hot((table[a, b] + shift) % m, m).float()


def _first_operand(m):
    return lambda a, b: F.one_hot(a, m).float()


def test_wrong_pair_agreement_separates_symmetry_from_accuracy():
    table = gl.addition_table(P)
    a, b = gl.all_pairs(P)
    off = a != b
    a, b = a[off], b[off]
    # Symmetric but always wrong: every pair wrong both ways, and the two wrong answers agree.
    assert gl.wrong_pair_agreement(_constant_shift(table, 1), a, b, table) == (1.0, 1.0)
    # "answer a": (a, b) -> a is wrong unless b = 0, (b, a) -> b unless a = 0; both wrong when
    # a, b != 0 (30 of 42 pairs), and a != b, so the wrong answers never agree.
    agree, share = gl.wrong_pair_agreement(_first_operand(P), a, b, table)
    assert agree == 0.0 and share == pytest.approx(30 / 42)
    # A perfect model is never wrong: the agreement is undefined, not 0 or 1.
    agree, share = gl.wrong_pair_agreement(_constant_shift(table, 0), a, b, table)
    assert math.isnan(agree) and share == 0.0


def test_relative_swap_distance_is_scale_free_and_zero_when_symmetric():
    table = gl.addition_table(P)
    a, b = gl.all_pairs(P)
    off = a != b
    a, b = a[off], b[off]
    perm = torch.roll(torch.arange(len(a)), 1)
    assert gl.relative_swap_distance(_constant_shift(table, 0), a, b, perm) == 0.0
    # one-hot of a: a swap moves it by sqrt(2) (a != b); the unrelated pair is the previous one in
    # a-major order, which has another first operand only when it wraps to the next a.
    first = _first_operand(P)
    expected = math.sqrt(2) / (math.sqrt(2) * sum(int(a[i] != a[i - 1]) for i in range(len(a))) / len(a))
    assert gl.relative_swap_distance(first, a, b, perm) == pytest.approx(expected)
    scaled = lambda x, y: 50.0 * first(x, y)  # noqa: E731
    assert gl.relative_swap_distance(scaled, a, b, perm) == pytest.approx(expected)


def test_law_accuracy_and_loss_on_chosen_pairs():
    table = gl.addition_table(P)
    x = torch.tensor([1, 2, 3])
    first = _first_operand(P)
    assert gl.law_accuracy(first, x, torch.zeros_like(x), x) == 1.0  # x + 0 -> x: "answer a" is right
    assert gl.law_accuracy(first, torch.zeros_like(x), x, x) == 0.0  # 0 + x -> 0: wrong
    assert gl.law_accuracy(first, x, x, table[x, x]) == 0.0
    # one-hot logits: cross-entropy log(e + m - 1) - 1 where right, log(e + m - 1) where wrong
    right = math.log(math.e + P - 1) - 1
    assert gl.law_loss(first, x, torch.zeros_like(x), x) == pytest.approx(right, rel=1e-6)
    assert gl.law_loss(first, torch.zeros_like(x), x, x) == pytest.approx(math.log(math.e + P - 1), rel=1e-6)
    with pytest.raises(ValueError):
        gl.law_loss(first, x[:0], x[:0], x[:0])


def test_associativity_can_be_restricted_to_allowed_pairs():
    x = torch.arange(P)
    # answers b: s = x, then (x, x) both ways: associative by accident everywhere
    second = lambda a, b: F.one_hot(b, P).float()  # noqa: E731
    assert gl.associativity_accuracy(second, x) == 1.0
    allowed = torch.zeros(P, P, dtype=torch.bool)
    allowed[2, 2] = allowed[5, 5] = True
    assert gl.associativity_accuracy(second, x, allowed) == 1.0  # only x = 2 and 5 scored
    # answers (a + 2b) mod P: s = 3x; (3x, x) -> 5x and (x, 3x) -> 7x = 0: agree only at x = 0
    skew = lambda a, b: F.one_hot((a + 2 * b) % P, P).float()  # noqa: E731
    assert gl.associativity_accuracy(skew, x) == pytest.approx(1 / P)
    allowed = torch.zeros(P, P, dtype=torch.bool)
    allowed[0, 0] = True  # x = 0: s = 0, outer pairs (0, 0)
    allowed[3, 1] = allowed[1, 3] = True  # x = 1: s = 3
    assert gl.associativity_accuracy(skew, x, allowed) == 0.5
    with pytest.raises(ValueError):
        gl.associativity_accuracy(skew, x, torch.zeros(P, P, dtype=torch.bool))


def test_heldout_laws_score_only_test_pairs(tmp_path):
    ctx = _context(tiny(), tmp_path)
    out = METRICS["heldout_laws"](ctx)
    model, m = ctx.model, 11
    held = robustness.heldout_mask(ctx.test_x, m)
    assert int(held.sum()) == len(ctx.test_x) and not (held & robustness.heldout_mask(ctx.train_x, m)).any()
    with torch.no_grad():
        diag = torch.tensor([x for x in range(m) if held[x, x]])
        pred = model(torch.stack([diag, diag], 1)).argmax(-1)
        assert out["heldout_laws.doubling_acc"] == pytest.approx(float((pred == (2 * diag) % m).float().mean()))
        pairs = [(x, 0) for x in range(m) if held[x, 0]] + [(0, x) for x in range(m) if held[0, x]]
        pt = torch.tensor(pairs)
        target = pt.sum(1) % m
        logits = model(pt)
        hits = (logits.argmax(-1) == target).float().mean()
        assert out["heldout_laws.zero_identity_acc"] == pytest.approx(float(hits))
        assert out["heldout_laws.zero_identity_loss"] == pytest.approx(float(F.cross_entropy(logits, target)), rel=1e-5)
        swaps = [(a, b) for a in range(m) for b in range(m) if a != b and held[a, b] and held[b, a]]
        sa, sb = torch.tensor(swaps).T
        ab, ba = model(torch.stack([sa, sb], 1)).argmax(-1), model(torch.stack([sb, sa], 1)).argmax(-1)
        assert out["heldout_laws.abelian_acc"] == pytest.approx(float((ab == ba).float().mean()))
        wrong = (ab != (sa + sb) % m) & (ba != (sa + sb) % m)
        assert out["heldout_laws.both_wrong"] == pytest.approx(float(wrong.float().mean()))
        assert out["heldout_laws.wrong_pair_agree"] == pytest.approx(float((ab[wrong] == ba[wrong]).float().mean()))
    assert 0 < out["heldout_laws.logit_dist_rel"] < 3 and 0 < out["heldout_laws.embed_dist_rel"] < 3


def test_heldout_laws_of_a_symmetric_model(tmp_path):
    ctx = _context(tiny(), tmp_path)
    with torch.no_grad():
        ctx.model.W_in[11:] = ctx.model.W_in[:11]  # f(a, b) = f(b, a), hidden(a, b) = hidden(b, a)
    out = METRICS["heldout_laws"](ctx)
    assert out["heldout_laws.abelian_acc"] == 1.0 and out["heldout_laws.wrong_pair_agree"] == 1.0
    assert out["heldout_laws.logit_dist_rel"] == pytest.approx(0.0, abs=1e-6)
    assert out["heldout_laws.embed_dist_rel"] == pytest.approx(0.0, abs=1e-6)


def test_heldout_laws_without_identity_are_nan(tmp_path):
    out = METRICS["heldout_laws"](_context(tiny(task={"op": "x-y"}), tmp_path))
    assert not math.isnan(out["heldout_laws.doubling_acc"]) and not math.isnan(out["heldout_laws.wrong_pair_agree"])
    assert math.isnan(out["heldout_laws.zero_identity_acc"]) and math.isnan(out["heldout_laws.zero_identity_loss"])


def test_matrix_info_sweep_matches_matrix_info_at_its_sigma(tmp_path):
    ctx = _context(tiny(), tmp_path)
    one = METRICS["matrix_info"](ctx)
    sweep = METRICS["matrix_info_sweep"](ctx)
    assert set(sweep) == {robustness.sweep_column(q, s) for q in ("pe", "pmi", "mid", "ed")
                          for s in robustness.MATRIX_INFO_SWEEP}
    for q in ("pe", "pmi", "mid", "ed"):
        assert sweep[robustness.sweep_column(q, robustness.MATRIX_INFO_SIGMA)] == pytest.approx(one[f"matrix_info.{q}"])
    # more noise moves the logits' entropy further from the clean one
    eds = [sweep[robustness.sweep_column("ed", s)] for s in sorted(robustness.MATRIX_INFO_SWEEP)]
    assert eds[0] < eds[-1]
