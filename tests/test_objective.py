import math

import torch

from groklab.objective import accuracy, loss_fn


def test_mse_is_the_mean_over_all_entries_against_scaled_one_hot():
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    labels = torch.tensor([0, 2])
    # row 0 matches its target 2*e0 with error (1-2)^2=1; row 1: 0.25 + 4
    expected = (1.0 + 0.25 + 4.0) / 6
    assert math.isclose(loss_fn(logits, labels, "mse", label_scale=2.0).item(), expected, rel_tol=1e-6)


def test_cross_entropy_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert math.isclose(loss_fn(logits, torch.tensor([1]), "cross_entropy").item(), -math.log(0.75), rel_tol=1e-6)


def test_accuracy():
    logits = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert math.isclose(accuracy(logits, torch.tensor([1, 1, 1])).item(), 2 / 3, rel_tol=1e-6)


def test_regression_targets_use_plain_mse_and_have_no_accuracy():
    out = torch.tensor([[1.0], [3.0]])
    target = torch.tensor([0.0, 1.0])
    assert math.isclose(loss_fn(out, target, "mse").item(), (1.0 + 4.0) / 2, rel_tol=1e-6)
    assert math.isnan(accuracy(out, target).item())
