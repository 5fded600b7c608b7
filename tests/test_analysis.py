import pandas as pd

from groklab.analysis.grokking import grokking_times
from groklab.config import EvalConfig


def test_grokking_times_on_a_hand_made_curve():
    metrics = pd.DataFrame(
        {
            "step": [0, 10, 20, 30, 40, 50],
            "train_acc": [0.0, 0.5, 0.99, 1.0, 1.0, 1.0],
            "test_acc": [0.0, 0.0, 0.1, 0.5, 0.96, 0.97],
            "train_loss": [5.0, 1.0, 0.4, 0.1, 0.05, 0.01],
            "test_loss": [5.0, 6.0, 6.0, 2.0, 0.49, 0.2],
        }
    )
    t = grokking_times(metrics, EvalConfig())
    assert t["t_train_acc"] == 20 and t["t_test_acc"] == 40
    assert t["grok_delay"] == 20 and t["grok_ratio"] == 2.0 and t["grokked"]
    # loss threshold is 0.1 x the step-0 loss = 0.5
    assert t["t_train_loss"] == 20 and t["t_test_loss"] == 40


def test_never_reached_gives_none_and_not_grokked():
    metrics = pd.DataFrame(
        {"step": [0, 10], "train_acc": [0.2, 1.0], "test_acc": [0.1, 0.2], "train_loss": [1.0, 0.5], "test_loss": [1.0, 2.0]}
    )
    t = grokking_times(metrics, EvalConfig())
    assert t["t_test_acc"] is None and t["grok_delay"] is None and not t["grokked"]
    assert t["t_train_acc"] == 10 and t["t_train_loss"] is None


def test_a_regression_run_groks_by_its_loss_times():
    nan = float("nan")
    metrics = pd.DataFrame({"step": [0, 100, 200, 300], "train_acc": [nan] * 4, "test_acc": [nan] * 4,
                            "train_loss": [1.0, 0.05, 0.01, 0.01], "test_loss": [2.0, 1.9, 0.5, 0.1]})
    t = grokking_times(metrics, EvalConfig())
    assert t["t_train_acc"] is None and t["t_test_acc"] is None
    assert (t["t_train_loss"], t["t_test_loss"]) == (100, 300)  # 0.1x of 1.0 and of 2.0
    assert t["grok_delay"] == 200 and t["grok_ratio"] == 3.0 and t["grokked"] and t["grok_measure"] == "loss"
    assert grokking_times(metrics.iloc[:3], EvalConfig())["grokked"] is False  # test never at 0.1x: not grokked
