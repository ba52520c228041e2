"""MNIST / Fashion-MNIST (IDX) and CIFAR-10 (binary): generated files, then the real package."""

import gzip

import numpy as np
import pytest

from gradcode.datasets import FASHION_MNIST_DIR, PINNED, load_dataset, read_idx

from .helpers import idx_bytes, pins, write_cifar, write_idx_set


def _load(name, root, **kw):
    return load_dataset(name, np.random.default_rng(0), root, **kw)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, name, gz):
    images, labels = write_idx_set(tmp_path / name, np.random.default_rng(0), gz)
    ds = _load(name, tmp_path, checksums=pins(tmp_path))
    assert ds.name == name and ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    np.testing.assert_allclose(ds.X_train[:, 0] * 255, images["train"], atol=1e-3)
    np.testing.assert_array_equal(ds.y_test, labels["t10k"])
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64


def test_generated_mnist_gz_fails_the_published_md5(tmp_path):
    # Synthetic .gz files carry the official names, so the pinned MD5s reject them.
    write_idx_set(tmp_path, np.random.default_rng(0), gz=True)
    with pytest.raises(ValueError, match=r"checksum mismatch .*observed sha256:[0-9a-f]{64}"):
        _load("mnist", tmp_path)
    assert len(_load("mnist", tmp_path, verify=False).y_train) == 7


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_unpinned_or_wrong_raw_files_are_refused(tmp_path, name):
    write_idx_set(tmp_path, np.random.default_rng(0), gz=False)
    expect = "no pinned checksum" if name == "mnist" else "checksum mismatch"
    with pytest.raises(ValueError, match=expect) as err:
        _load(name, tmp_path)
    assert "--no-verify" in str(err.value) and "\n" not in str(err.value)


def test_label_200_is_a_one_line_error(tmp_path):
    labels = np.array([0, 1, 200, 3, 4, 5, 6], np.uint8)
    write_idx_set(tmp_path, np.random.default_rng(0), labels=labels)
    with pytest.raises(ValueError, match=r"label 200 is out of range 0\.\.9"):
        _load("mnist", tmp_path, verify=False)


def test_image_label_count_mismatch(tmp_path):
    write_idx_set(tmp_path, np.random.default_rng(0), gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(ValueError, match="7 images do not match"):
        _load("mnist", tmp_path, verify=False)


def test_read_idx_rejects_garbage(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match="promises"):
        read_idx(tmp_path / "y")
    (tmp_path / "z.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(ValueError, match="not a valid gzip"):
        read_idx(tmp_path / "z.gz")


def test_cifar_binary_round_trip(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-bin", np.random.default_rng(0))
    ds = _load("cifar10", tmp_path, checksums=pins(tmp_path))
    assert ds.X_train.shape == (10, 3, 32, 32) and ds.X_test.shape == (2, 3, 32, 32)
    X1, y1 = written["data_batch_1.bin"]
    np.testing.assert_allclose(ds.X_train[:2] * 255, X1, atol=1e-3)
    np.testing.assert_array_equal(ds.y_train[:2], y1)
    np.testing.assert_array_equal(ds.y_test, written["test_batch.bin"][1])


def test_cifar_is_unpinned_and_checks_labels(tmp_path):
    write_cifar(tmp_path, np.random.default_rng(0), label=57)
    with pytest.raises(ValueError, match="no pinned checksum .*--no-verify"):
        _load("cifar10", tmp_path)
    with pytest.raises(ValueError, match="label 57 is out of range 0..9; is it a CIFAR-100"):
        _load("cifar10", tmp_path, verify=False)


@pytest.mark.parametrize(
    "name, expected, how",
    [
        ("mnist", "t10k-labels-idx1-ubyte", "http"),
        ("fashion_mnist", "train-images-idx3-ubyte", "apt-get install dataset-fashion-mnist"),
        ("cifar10", "test_batch.bin", "http"),
        ("amazon", "train.csv", "http"),
    ],
)
def test_missing_files_name_them_and_the_way_to_get_them(tmp_path, name, expected, how):
    with pytest.raises(ValueError, match="missing") as err:
        _load(name, tmp_path)
    msg = str(err.value)
    assert expected in msg and how in msg and "\n" not in msg


def test_mnist_files_given_as_fashion_get_a_hint(tmp_path):
    # A real Fashion-MNIST payload cannot be generated; fake the pin instead.
    write_idx_set(tmp_path, np.random.default_rng(0), gz=False)
    mine = pins(tmp_path)
    table = dict(PINNED["fashion_mnist"])
    PINNED["fashion_mnist"].update({k: (v,) for k, v in mine.items()})
    try:
        with pytest.raises(ValueError, match="use --dataset fashion_mnist"):
            _load("mnist", tmp_path)
    finally:
        PINNED["fashion_mnist"].clear()
        PINNED["fashion_mnist"].update(table)


real_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="needs the Debian package: apt-get install dataset-fashion-mnist",
)


@real_fashion
def test_real_fashion_mnist_from_the_debian_package():
    ds = load_dataset("fashion_mnist", np.random.default_rng(0))  # default folder, verified
    assert ds.X_train.shape == (60000, 1, 28, 28) and ds.X_test.shape == (10000, 1, 28, 28)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    assert 0.0 == ds.X_train.min() and ds.X_train.max() == 1.0


@real_fashion
def test_real_fashion_mnist_rejected_as_mnist_with_a_hint():
    with pytest.raises(ValueError, match="checksum mismatch.*use --dataset fashion_mnist"):
        load_dataset("mnist", np.random.default_rng(0), FASHION_MNIST_DIR)
