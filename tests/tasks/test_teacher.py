"""Student-teacher task: a fixed tanh teacher labels Gaussian inputs."""

import pytest
import torch

from groklab import GroklabError
from groklab.config import config_from_dict
from groklab.tasks import build_task
from groklab.tasks.teacher import build_teacher


def teacher_config(**model):
    return config_from_dict({
        "task": {"name": "teacher", "n_train": 100, "n_test": 100},
        "model": {"name": "mlp", "depth": 2, "width": 100, "activation": "tanh", **model},
        "train": {"loss": "mse"},
    })


def test_teacher_labels_gaussian_inputs_with_a_5_100_100_5_tanh_net():
    data = build_task(teacher_config().task, 0)
    assert data.train_x.shape == (100, 5) and data.train_y.shape == (100, 5) and data.test_y.shape == (100, 5)
    assert data.is_regression and data.output_dim == 5 and data.input_dim == 5
    t = build_teacher(0)
    # Independent forward pass of the teacher from its named weights.
    h = torch.tanh(data.test_x @ t.W_in + t.b_in)
    h = torch.tanh(h @ t.W_mid[0] + t.b_mid[0])
    torch.testing.assert_close(h @ t.W_out + t.b_out, data.test_y)
    assert t.W_in.shape == (5, 100) and t.W_mid[0].shape == (100, 100) and t.W_out.shape == (100, 5)
    assert abs(float(data.train_x.std()) - 1.0) < 0.15  # standard Gaussian inputs
    assert torch.equal(build_task(teacher_config().task, 0).train_y, data.train_y)
    assert not torch.equal(build_task(teacher_config().task, 1).train_y, data.train_y)


def test_teacher_needs_mse_and_an_mlp():
    with pytest.raises(GroklabError, match="train.loss='mse'"):
        config_from_dict({"task": {"name": "teacher"}, "model": {"name": "mlp"}})
    with pytest.raises(GroklabError, match="use model.name='mlp'"):
        config_from_dict({"task": {"name": "teacher"}, "model": {"name": "transformer"}, "train": {"loss": "mse"}})


def test_student_fits_the_teacher_and_reports_thresholded_accuracy(tmp_path):
    import groklab

    cfg = teacher_config(width=32).override(
        "optim.lr=0.01", "train.steps=300", "train.eval_every=100", "train.checkpoint_every=null",
        "train.device=cpu", 'eval.metrics=["sample_mse_acc"]')
    run = groklab.run(cfg, out=tmp_path / "r", progress=False)
    m = run.metrics
    assert m["train_loss"].iloc[-1] < 0.2 * m["train_loss"].iloc[0]
    assert 0.0 <= m["train_mse_acc"].iloc[-1] <= 1.0 and m["train_mse_acc"].iloc[-1] > m["train_mse_acc"].iloc[0]
