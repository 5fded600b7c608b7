import itertools

import pytest
import torch

from groklab.config import TaskConfig
from groklab.tasks import build_task
from groklab.tasks.modular import OPERATIONS, modular_table, permutation_table, split

P = 7
BRUTE = {
    "x+y": lambda x, y: x + y,
    "x-y": lambda x, y: x - y,
    "x*y": lambda x, y: x * y,
    "x^2+y^2": lambda x, y: x * x + y * y,
    "x^2+xy+y^2": lambda x, y: x * x + x * y + y * y,
    "x^2+xy+y^2+x": lambda x, y: x * x + x * y + y * y + x,
    "x^3+xy": lambda x, y: x**3 + x * y,
    "x^3+xy^2+y": lambda x, y: x**3 + x * y * y + y,
}


@pytest.mark.parametrize("op", sorted(BRUTE))
def test_operation_table_matches_brute_force(op):
    table = modular_table(P, op)
    assert len(table) == P * P
    for (x, y), label in zip(table.pairs.tolist(), table.labels.tolist()):
        assert label == BRUTE[op](x, y) % P


def test_division_is_multiplication_by_the_inverse():
    table = modular_table(P, "x/y")
    assert len(table) == P * (P - 1)  # y = 0 has no inverse
    for (x, y), label in zip(table.pairs.tolist(), table.labels.tolist()):
        assert y != 0 and (label * y) % P == x


def test_every_operation_of_power_et_al_is_there():
    assert set(OPERATIONS) == set(BRUTE) | {"x/y"}


def test_permutation_group_composition():
    table = permutation_table(3)
    perms = list(itertools.permutations(range(3)))
    assert table.n_operands == table.n_classes == 6
    for (a, b), label in zip(table.pairs.tolist(), table.labels.tolist()):
        composed = tuple(perms[a][perms[b][i]] for i in range(3))
        assert perms[label] == composed
    # Non-abelian: exactly the commuting pairs of S_3 (18 of 36) agree with their swap.
    lookup = {tuple(p): l for p, l in zip(table.pairs.tolist(), table.labels.tolist())}
    commuting = sum(lookup[(a, b)] == lookup[(b, a)] for a in range(6) for b in range(6))
    assert commuting == 18


def test_split_is_seeded_disjoint_and_complete():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    tr1, te1 = split(100, 0.3, g1)
    tr2, te2 = split(100, 0.3, g2)
    assert torch.equal(tr1, tr2) and torch.equal(te1, te2)
    assert len(tr1) == 30 and len(te1) == 70
    assert sorted(torch.cat([tr1, te1]).tolist()) == list(range(100))


def test_different_seeds_give_different_splits():
    a = build_task(TaskConfig(p=11), seed=0)
    b = build_task(TaskConfig(p=11), seed=1)
    assert not torch.equal(a.train_idx, b.train_idx)
    assert torch.equal(a.train_x, a.table.pairs[a.train_idx])
