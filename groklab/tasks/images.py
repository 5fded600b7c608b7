"""Image classification: MNIST from IDX files, or scikit-learn's bundled 8x8 digits.

``task.dataset="digits"`` (the default) uses :func:`sklearn.datasets.load_digits` (1797
images of 8x8 pixels, 10 classes), which ships with scikit-learn, so it runs anywhere
without a download. ``task.dataset="mnist"`` reads the four standard IDX files
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally ``.gz``) from the directory ``task.path``;
groklab never downloads them.

Inputs are flattened and scaled to [0, 1] (pixel / max intensity: 255 for MNIST, 16 for
digits), as Omnigrok's ``ToTensor``; labels are long. ``task.n_train`` images (Omnigrok uses
1000) are drawn without replacement from the training pool by the seed, ``task.n_test`` from
the test pool (MNIST's full test set is ``task.n_test=10000``). MNIST's pools are its train and
t10k files; digits has no official split, so its 1797 images are permuted once by the seed and
the training subset is drawn first, the test subset from the rest (disjoint).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch
from pydantic import Field, model_validator

from groklab.errors import GroklabError
from groklab.seeding import generator
from groklab.tasks import SampledTaskConfig, TaskData, register_task

__all__ = ["read_idx", "load_mnist", "load_digits_arrays", "images_task", "MNIST_FILES", "ImagesTaskConfig"]


class ImagesTaskConfig(SampledTaskConfig):
    """``task.name='images'``: seeded subsets of ``n_train`` training images (Omnigrok: 1000) and
    ``n_test`` test images (MNIST's t10k has 10000; digits has 1797 - n_train left)."""

    name: Literal["images"] = "images"
    inputs = "dense"
    dataset: Literal["digits", "mnist"] = Field(
        "digits", description="'digits' (scikit-learn's bundled 8x8 digits, no download) or 'mnist' "
        "(the four IDX files in task.path)"
    )
    path: Optional[str] = Field(None, description="directory of the MNIST IDX files (raw or .gz)")

    @model_validator(mode="after")
    def _mnist_has_a_path(self) -> "ImagesTaskConfig":
        if self.dataset == "mnist" and not self.path:
            raise ValueError(
                "task.dataset='mnist' needs task.path, the directory holding the MNIST IDX files "
                "(groklab never downloads); or use task.dataset='digits'"
            )
        return self

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# IDX type codes (third byte of the magic number) -> numpy big-endian dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (raw or gzip) as a numpy array of its declared shape.

    Raises :class:`GroklabError` (one line, naming the file) when it is missing, not IDX,
    or shorter/longer than its header says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise GroklabError(f"MNIST file {path} does not exist") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise GroklabError(f"cannot read MNIST file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise GroklabError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise GroklabError(f"{path} is truncated: its header declares {n_dims} dimensions")
    shape = struct.unpack(f">{n_dims}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise GroklabError(
            f"{path} is corrupt: header says shape {tuple(shape)} ({expected} bytes) but it holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise GroklabError(f"task.path={directory} has no {stem}[.gz]; it needs the four MNIST IDX files")


def load_mnist(directory) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images (N, 28, 28) uint8, train_labels (N,), test_images, test_labels)`` from
    the IDX files in ``directory``; checks that images and labels agree in number."""
    if directory is None:
        raise GroklabError("task.dataset='mnist' needs task.path, the directory holding the MNIST IDX files")
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise GroklabError(f"task.path={directory} is not a directory holding the MNIST IDX files")
    arrays = {key: read_idx(_find(directory, stem)) for key, stem in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise GroklabError(
                f"MNIST {split} files in {directory} disagree: images {images.shape}, labels {labels.shape}"
            )
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise GroklabError(f"MNIST {split} labels in {directory} are outside 0..9")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits: images ``(1797, 8, 8)`` with intensities 0..16, labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _subset(n_pool: int, n: int, what: str, g: torch.Generator) -> torch.Tensor:
    if n > n_pool:
        raise GroklabError(f"{what}={n} but only {n_pool} images are available")
    return torch.randperm(n_pool, generator=g)[:n]


def _as_inputs(images: np.ndarray, max_intensity: float) -> torch.Tensor:
    flat = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).reshape(len(images), -1)  # (N, H*W)
    return flat / max_intensity


@register_task(ImagesTaskConfig)
def images_task(task: ImagesTaskConfig, seed: int) -> TaskData:
    """Seeded train/test subsets of digits or MNIST (see the module docstring)."""
    n_train, n_test = task.n_train, task.n_test
    if task.dataset == "mnist":
        train_images, train_labels, test_images, test_labels = load_mnist(task.path)
        train_idx = _subset(len(train_labels), n_train, "task.n_train", generator(seed, "images.train"))
        test_idx = _subset(len(test_labels), n_test, "task.n_test", generator(seed, "images.test"))
        x_tr, y_tr = train_images[train_idx.numpy()], train_labels[train_idx.numpy()]
        x_te, y_te = test_images[test_idx.numpy()], test_labels[test_idx.numpy()]
        scale, name = 255.0, f"MNIST from {task.path}"
    else:
        images, labels = load_digits_arrays()
        order = torch.randperm(len(labels), generator=generator(seed, "images.split"))
        if n_train >= len(labels):
            raise GroklabError(f"task.n_train={n_train} leaves no test images: digits has {len(labels)}")
        rest = len(labels) - n_train
        if n_test > rest:
            raise GroklabError(f"task.n_test={n_test} but only {rest} digits are left after task.n_train={n_train}")
        train_idx = order[:n_train].numpy()
        test_idx = order[n_train : n_train + n_test].numpy()
        x_tr, y_tr, x_te, y_te = images[train_idx], labels[train_idx], images[test_idx], labels[test_idx]
        scale, name = 16.0, "scikit-learn digits 8x8"
    train_x, test_x = _as_inputs(x_tr, scale), _as_inputs(x_te, scale)
    return TaskData(
        train_x=train_x,
        train_y=torch.as_tensor(np.asarray(y_tr), dtype=torch.long),
        test_x=test_x,
        test_y=torch.as_tensor(np.asarray(y_te), dtype=torch.long),
        description=f"{name}, {len(train_x)} train / {len(test_x)} test images",
        n_classes=10,
        input_dim=train_x.shape[1],
    )
