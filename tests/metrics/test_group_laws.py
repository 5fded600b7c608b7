"""Tests for groklab.metrics.group_laws with hand-made predictors whose scores are known."""

import itertools
import math

import numpy as np
import pytest
import torch

from groklab.metrics import group_laws as gl

P = 7


def _table_predictor(table, scale=1.0):
    """A perfect model of ``table``: one-hot logits ``(B, m)`` on the true result."""
    m = table.shape[0]
    return lambda a, b: scale * torch.nn.functional.one_hot(table[a, b], m).float()


def _first_operand_predictor(m, scale=1.0):
    """Answers ``a`` for ``(a, b)``: commutes only on the diagonal."""
    return lambda a, b: scale * torch.nn.functional.one_hot(a, m).float()


def _s3_table(seed):
    """Cayley table of S_3 under a random relabelling, plus the permutations per label."""
    perms = list(itertools.permutations(range(3)))
    order = torch.randperm(6, generator=torch.Generator().manual_seed(seed)).tolist()
    labelled = [perms[i] for i in order]  # label k -> permutation
    index = {p: k for k, p in enumerate(labelled)}
    table = torch.tensor(
        [[index[tuple(p[q[i]] for i in range(3))] for q in labelled] for p in labelled]
    )  # (6, 6), table[a, b] = label of p_a o p_b
    return table, labelled


# ----------------------------------------------------------------------------- helpers


def test_addition_table_and_pairs():
    table = gl.addition_table(5)
    assert table[3, 4] == 2 and table[0, 2] == 2 and table.shape == (5, 5)
    a, b = gl.all_pairs(3)
    assert a.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert b.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 2]


# ------------------------------------------------------------------- perfect addition model


def test_true_addition_table_scores_perfectly():
    table = gl.addition_table(P)
    predict = _table_predictor(table)
    embed = lambda a, b: torch.nn.functional.one_hot(table[a, b], P).float()  # noqa: E731
    a, b = gl.all_pairs(P)
    x = torch.arange(P)
    assert gl.abelian_accuracy(predict, a, b) == 1.0
    assert gl.abelian_accuracy(predict, a, b, table=table) == 1.0
    assert gl.abelian_logit_distance(predict, a, b) == 0.0
    assert gl.abelian_embedding_distance(embed, a, b, normalize=True) == 0.0
    assert gl.doubling_accuracy(predict, table) == 1.0
    assert gl.zero_identity_accuracy(predict, table) == 1.0
    assert gl.associativity_accuracy(predict, x) == 1.0
    assert gl.inverse_embedding_distance(embed, table) == 0.0


# ----------------------------------------------------------------- "answer a" predictor


def test_first_operand_predictor_hand_fractions():
    table = gl.addition_table(P)
    predict = _first_operand_predictor(P, scale=3.0)
    a, b = gl.all_pairs(P)
    # Agrees with itself under swapping only when a == b: P of P^2 pairs.
    assert gl.abelian_accuracy(predict, a, b) == pytest.approx(1 / P)
    # On a chosen split: pairs (0,0), (1,2), (2,2), (3,1) -> 2 of 4.
    split_a, split_b = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 2, 1])
    assert gl.abelian_accuracy(predict, split_a, split_b) == pytest.approx(0.5)
    # 2x = x mod 7 only for x = 0.
    assert gl.doubling_accuracy(predict, table) == pytest.approx(1 / P)
    # x + 0 -> x always right; 0 + x -> 0 right only for x = 0.
    assert gl.zero_identity_accuracy(predict, table) == pytest.approx((P + 1) / (2 * P))
    # s = x, then (s, x) -> x and (x, s) -> x agree: associative by accident.
    assert gl.associativity_accuracy(predict, torch.arange(P)) == 1.0
    # |3 e_a - 3 e_b| = 3 sqrt(2) off the diagonal.
    expected = 3 * math.sqrt(2) * (1 - 1 / P)
    assert gl.abelian_logit_distance(predict, a, b) == pytest.approx(expected, rel=1e-6)
    assert gl.abelian_logit_distance(predict, a, b, normalize=True) == pytest.approx(
        expected / 3, rel=1e-6
    )


def test_embedding_distances_hand_values():
    embed = lambda a, b: torch.stack([a, b], dim=1).double()  # noqa: E731  (B, 2)
    a, b = gl.all_pairs(3)
    # |(a-b, b-a)| = sqrt(2) |a-b|; |a-b| over the 9 pairs sums to 8.
    assert gl.abelian_embedding_distance(embed, a, b) == pytest.approx(math.sqrt(2) * 8 / 9)

    # Pairs (x, -x mod 5): (0,0) (1,4) (2,3) (3,2) (4,1), mean (2, 2).
    table = gl.addition_table(5)
    expected = (2 * math.sqrt(2) + 2 * math.sqrt(5) + 2) / 5
    assert gl.inverse_embedding_distance(embed, table) == pytest.approx(expected)

    pts = np.array([[0, 0], [1, 4], [2, 3], [3, 2], [4, 1]], dtype=float)
    norms = np.linalg.norm(pts, axis=1, keepdims=True)
    unit = np.divide(pts, norms, out=np.zeros_like(pts), where=norms > 0)
    expected_unit = np.linalg.norm(unit - unit.mean(axis=0), axis=1).mean()
    assert gl.inverse_embedding_distance(embed, table, normalize=True) == pytest.approx(
        expected_unit
    )
    # Restricting to x in {1, 4}: pairs (1,4), (4,1), mean (2.5, 2.5), both at 1.5 sqrt(2).
    assert gl.inverse_embedding_distance(embed, table, x=torch.tensor([1, 4])) == pytest.approx(
        1.5 * math.sqrt(2)
    )


# --------------------------------------------------------------------------- S_3


def _commuting_fraction(perms):
    def compose(p, q):
        return tuple(p[q[i]] for i in range(3))

    pairs = list(itertools.product(perms, repeat=2))
    return sum(compose(p, q) == compose(q, p) for p, q in pairs) / len(pairs)


@pytest.mark.parametrize("seed", [0, 1])
def test_s3_true_table(seed):
    table, perms = _s3_table(seed)
    predict = _table_predictor(table)
    a, b = gl.all_pairs(6)
    fraction = _commuting_fraction(perms)
    assert fraction == pytest.approx(0.5)  # 3 conjugacy classes / 6 elements
    assert gl.abelian_accuracy(predict, a, b) == pytest.approx(fraction)
    # Restricted to pairs that commute in S_3, the true model is perfectly "abelian".
    assert gl.abelian_accuracy(predict, a, b, table=table) == 1.0
    # The group-general laws hold for the true model wherever the identity sits.
    assert gl.doubling_accuracy(predict, table) == 1.0
    assert gl.zero_identity_accuracy(predict, table) == 1.0
    assert gl.associativity_accuracy(predict, torch.arange(6)) == 1.0
    embed = lambda u, v: torch.nn.functional.one_hot(table[u, v], 6).float()  # noqa: E731
    assert gl.inverse_embedding_distance(embed, table) == 0.0


def test_s3_first_operand_predictor_on_commuting_pairs():
    table, _ = _s3_table(2)
    a, b = gl.all_pairs(6)
    # 18 commuting pairs, of which the 6 diagonal ones are the only symmetric answers.
    assert gl.abelian_accuracy(_first_operand_predictor(6), a, b, table=table) == pytest.approx(
        1 / 3
    )


def test_table_without_identity_is_rejected():
    bad = torch.zeros(3, 3, dtype=torch.long)
    with pytest.raises(ValueError):
        gl.zero_identity_accuracy(_first_operand_predictor(3), bad)


# ------------------------------------------------------------------------- abelian loss


def test_abelian_loss_zero_for_symmetric_model():
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    assert float(gl.abelian_loss(logits, logits)) == 0.0
    # A per-row constant shift leaves the softmax, hence the loss, unchanged.
    assert float(gl.abelian_loss(logits, logits + 2.0)) == pytest.approx(0.0, abs=1e-7)


def test_abelian_loss_hand_value_and_gradient():
    ab = torch.tensor([[math.log(0.75), math.log(0.25)]], requires_grad=True)
    ba = torch.tensor([[math.log(0.25), math.log(0.75)]])
    # 1/2 sum (p - q)(log p - log q) = 1/2 [0.5 log 3 + (-0.5)(-log 3)] = 0.5 log 3
    loss = gl.abelian_loss(ab, ba)
    assert float(loss.detach()) == pytest.approx(0.5 * math.log(3), rel=1e-6)
    assert float(gl.abelian_loss(ba, ab).detach()) == pytest.approx(0.5 * math.log(3), rel=1e-6)
    loss.backward()
    # Gradient descent should move logit 0 of (a, b) down towards the swapped prediction.
    assert ab.grad[0, 0] > 0 and ab.grad[0, 1] < 0
