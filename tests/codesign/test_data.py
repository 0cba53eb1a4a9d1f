import gzip
import pickle

import numpy as np
import pytest

from codesign.data import (FASHION_MNIST_DIR, get_dataset, load_cifar10, load_digits,
                           load_fashion_mnist)
from codesign.errors import DataError


def test_digits_split_is_fixed_and_complete():
    a, b = load_digits(), load_digits()
    assert a.x_train.shape == (1438, 1, 8, 8) and a.x_test.shape == (359, 1, 8, 8)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert 0.0 <= a.x_train.min() and a.x_train.max() == 1.0
    assert set(np.unique(a.y_train)) == set(range(10))
    assert not np.array_equal(load_digits(seed=1).y_test, a.y_test)


def write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion(d, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def test_fashion_mnist_from_idx_files(tmp_path):
    write_fashion(tmp_path)
    d = load_fashion_mnist(tmp_path)
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (5, 1, 28, 28)
    assert d.x_train.dtype == np.float32 and d.x_train.max() <= 1.0


def test_fashion_mnist_directory_from_environment(tmp_path, monkeypatch):
    write_fashion(tmp_path, 3, 2)
    monkeypatch.setenv("CODESIGN_FASHION_MNIST", str(tmp_path))
    assert len(get_dataset("fashion-mnist").x_test) == 2


def test_real_fashion_mnist_is_installed():
    assert FASHION_MNIST_DIR.is_dir(), "make installs Debian's dataset-fashion-mnist"
    d = load_fashion_mnist()
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(d.y_test).tolist() == [1000] * 10


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(),
     "t10k-labels-idx1-ubyte.gz: file not found"),
    (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b"plain"),
     "not a readable gzip file"),
    (lambda d: write_idx(d / "train-images-idx3-ubyte.gz", np.zeros((4, 4))), "not an IDX file"),
    (lambda d: write_idx(d / "train-labels-idx1-ubyte.gz", np.zeros(7)),
     "12 train images but 7 labels"),
])
def test_fashion_mnist_errors_name_the_file(tmp_path, damage, message):
    write_fashion(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError, match=message):
        load_fashion_mnist(tmp_path)


def write_cifar(d, n=4):
    rng = np.random.default_rng(1)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        (d / name).write_bytes(pickle.dumps(batch))


def test_cifar10_from_python_batches(tmp_path):
    write_cifar(tmp_path)
    d = load_cifar10(tmp_path)
    assert d.x_train.shape == (20, 3, 32, 32) and d.x_test.shape == (4, 3, 32, 32)
    raw = pickle.loads((tmp_path / "test_batch").read_bytes())
    np.testing.assert_allclose(d.x_test[0, 2, 0, :3], raw[b"data"][0, 2048:2051] / 255.0)


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataError, match="set CODESIGN_CIFAR10 to the directory"):
        get_dataset("cifar10")
    write_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(pickle.dumps({b"data": np.zeros((2, 10))}))
    with pytest.raises(DataError, match="data_batch_3: expected a dict with b'data' and b'labels'"):
        load_cifar10(tmp_path)
    with pytest.raises(DataError, match="unknown data set 'mnist'; allowed: digits"):
        get_dataset("mnist")
