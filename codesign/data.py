"""Data sets as float32 NCHW arrays in [0, 1] with int64 labels.

- digits: scikit-learn's 1,797 real 8x8 digits (ships with the wheel), a fixed seeded split.
- fashion-mnist: the original gzipped IDX files (Debian's dataset-fashion-mnist package).
- cifar10: the standard python-pickle batches in a directory the user gives.
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codesign.errors import DataError

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    x_train: np.ndarray  # float32 [N, C, H, W] in [0, 1]
    y_train: np.ndarray  # int64 [N]
    x_test: np.ndarray  # the held-out images measured: the test split, or a validation split
    y_test: np.ndarray
    classes: int
    held_out: str = "test"  # which split x_test / y_test are

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])

    def with_validation(self, fraction: float, seed: int = 0) -> "Dataset":
        """The same data for selecting models: `fraction` of the training images (stratified,
        seeded) held out as a validation split in place of the test split, which stays unseen
        until the final report."""
        rng = np.random.default_rng(seed)
        val = np.concatenate([
            idx[:max(1, int(round(len(idx) * fraction)))]
            for idx in (rng.permutation(np.flatnonzero(self.y_train == c))
                        for c in np.unique(self.y_train))])
        keep = np.ones(len(self.y_train), bool)
        keep[val] = False
        val = np.sort(val)
        return Dataset(self.name, self.x_train[keep], self.y_train[keep], self.x_train[val],
                       self.y_train[val], self.classes, "validation")


def load_digits(seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], 10)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """One gzipped IDX file of unsigned bytes with `ndim` dimensions."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a gzipped IDX file; install Debian's "
                        f"dataset-fashion-mnist with `make`, or pass the directory)") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None
    if len(raw) < 4 + 4 * ndim or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimensions "
                        f"(header {raw[:4].hex() or 'empty'})")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, "
                        f"file holds {body.size}")
    return body.reshape(dims)


def load_fashion_mnist(directory: str | Path | None = None) -> Dataset:
    d = Path(directory or os.environ.get("CODESIGN_FASHION_MNIST") or FASHION_MNIST_DIR)
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(d / f"{prefix}-images-idx3-ubyte.gz", 3)
        labels = _read_idx(d / f"{prefix}-labels-idx1-ubyte.gz", 1)
        if len(images) != len(labels):
            raise DataError(f"{d}: {len(images)} {split} images but {len(labels)} labels")
        parts[split] = ((images.astype(np.float32) / 255.0)[:, None], labels.astype(np.int64))
    return Dataset("fashion-mnist", *parts["train"], *parts["test"], 10)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected a CIFAR-10 python batch)") from None
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR-10 python-pickle batch ({exc})") from None
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path}: expected a dict with b'data' and b'labels'")
    data = np.asarray(batch[b"data"], np.uint8)
    labels = np.asarray(batch[b"labels"], np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{path}: b'data' must be [N, 3072] bytes with N labels, "
                        f"got {data.shape} and {labels.shape}")
    return (data.reshape(-1, 3, 32, 32).astype(np.float32) / 255.0), labels


def load_cifar10(directory: str | Path | None = None) -> Dataset:
    if directory is None and not os.environ.get("CODESIGN_CIFAR10"):
        raise DataError("cifar10: set CODESIGN_CIFAR10 to the directory of the python batches "
                        "(data_batch_1..5, test_batch; they are pickles: use a copy you trust)")
    d = Path(directory or os.environ["CODESIGN_CIFAR10"])
    train = [_read_cifar_batch(d / f"data_batch_{i}") for i in range(1, 6)]
    x_test, y_test = _read_cifar_batch(d / "test_batch")
    return Dataset("cifar10", np.concatenate([b[0] for b in train]),
                   np.concatenate([b[1] for b in train]), x_test, y_test, 10)


LOADERS = {"digits": load_digits, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}


def get_dataset(name: str, directory: str | Path | None = None) -> Dataset:
    if name not in LOADERS:
        raise DataError(f"unknown data set {name!r}; allowed: {', '.join(LOADERS)}")
    return LOADERS[name]() if name == "digits" else LOADERS[name](directory)
