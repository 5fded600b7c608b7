"""Image tasks: the IDX reader on small files written here (never downloaded), and digits."""

import gzip
import struct

import numpy as np
import pytest
import torch

from groklab import GroklabError
from groklab.config import config_from_dict
from groklab.tasks import build_task
from groklab.tasks.images import MNIST_FILES, read_idx


def write_idx(path, array, compress=False):
    array = np.asarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def fake_mnist(directory, n_train=30, n_test=20, compress=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": (np.arange(n_test) * 3) % 10,
    }
    for key, stem in MNIST_FILES.items():
        write_idx(directory / (stem + (".gz" if compress else "")), arrays[key], compress)
    return arrays


def mnist_config(path, **task):
    return config_from_dict({"task": {"name": "images", "dataset": "mnist", "path": str(path), "n_train": 10,
                                      "n_test": 5, **task}})


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips(tmp_path, compress):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", a, compress)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), a)


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_subset_is_seeded_scaled_and_matches_the_files(tmp_path, compress):
    arrays = fake_mnist(tmp_path, compress=compress)
    cfg = mnist_config(tmp_path)
    data = build_task(cfg.task, seed=3)
    assert data.train_x.shape == (10, 784) and data.test_x.shape == (5, 784)
    assert data.train_x.dtype == torch.float32 and data.train_y.dtype == torch.long
    assert data.n_classes == 10 and data.input_dim == 784 and not data.is_regression
    # Every training row is one of the file's images, divided by 255, with its own label.
    flat = torch.from_numpy(arrays["train_images"].reshape(30, -1).astype(np.float32)) / 255
    for x, y in zip(data.train_x, data.train_y):
        row = int(torch.nonzero((flat == x).all(1))[0])
        assert arrays["train_labels"][row] == y
    again = build_task(cfg.task, seed=3)
    assert torch.equal(again.train_x, data.train_x)
    other = build_task(cfg.task, seed=4)
    assert not torch.equal(other.train_y, data.train_y) or not torch.equal(other.train_x, data.train_x)


def test_missing_or_corrupt_mnist_gives_one_line_errors(tmp_path):
    with pytest.raises(GroklabError, match="task.path"):
        config_from_dict({"task": {"name": "images", "dataset": "mnist"}})
    with pytest.raises(GroklabError, match="not a directory"):
        build_task(mnist_config(tmp_path / "nowhere").task, 0)
    with pytest.raises(GroklabError, match="train-images-idx3-ubyte"):
        build_task(mnist_config(tmp_path).task, 0)
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x14abc")  # 3 of 20 bytes
    with pytest.raises(GroklabError, match="corrupt") as err:
        build_task(mnist_config(tmp_path).task, 0)
    assert "\n" not in str(err.value)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(GroklabError, match="not an IDX file"):
        build_task(mnist_config(tmp_path).task, 0)
    fake_mnist(tmp_path)
    with pytest.raises(GroklabError, match="n_train=31"):
        build_task(mnist_config(tmp_path, n_train=31).task, 0)


def test_digits_default_needs_no_download_and_splits_disjointly():
    cfg = config_from_dict({"task": {"name": "images", "n_train": 1000, "n_test": 797}})
    assert cfg.task.dataset == "digits"
    data = build_task(cfg.task, 0)
    assert data.train_x.shape == (1000, 64) and data.test_x.shape == (797, 64)
    assert float(data.train_x.min()) == 0.0 and float(data.train_x.max()) == 1.0
    assert set(data.train_y.tolist()) == set(range(10))
    # Train and test rows come from disjoint positions of one permutation: 1797 distinct rows in all
    # (a few digits images are duplicates, so compare counts with the dataset itself).
    from groklab.tasks.images import load_digits_arrays

    images, _ = load_digits_arrays()
    n_unique = len({r.tobytes() for r in images.reshape(len(images), -1).astype(np.float32) / 16})
    both = torch.cat([data.train_x, data.test_x])
    assert len({r.numpy().tobytes() for r in both}) == n_unique
    with pytest.raises(GroklabError, match="n_test=900"):
        build_task(config_from_dict({"task": {"name": "images", "n_train": 1000, "n_test": 900}}).task, 0)


def test_mlp_learns_digits():
    import groklab

    cfg = config_from_dict({
        "task": {"name": "images", "n_train": 300, "n_test": 300},
        "model": {"name": "mlp", "width": 32, "depth": 2},
        "optim": {"name": "adamw", "lr": 0.01},
        "train": {"steps": 150, "batch_size": 100, "eval_every": 50, "checkpoint_every": None, "device": "cpu"},
    })
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        run = groklab.run(cfg, out=out + "/r", progress=False)
    assert run.summary["test_acc"] > 0.85
