"""Offline datasets, user-file loaders (on tiny synthetic files) and partitions."""

import gzip
import struct

import numpy as np
import pytest

from gradcode.data import (
    AMAZON_FEATURES,
    Dataset,
    available_datasets,
    file_digest,
    load_dataset,
    partition,
    read_idx,
)


@pytest.mark.parametrize(
    "name, shape, classes, n",
    [("breast_cancer", (30,), 2, 569), ("digits", (1, 8, 8), 10, 1797), ("wine", (13,), 3, 178)],
)
def test_builtin_sets_load_offline(name, shape, classes, n):
    ds = load_dataset(name, np.random.default_rng(0))
    assert isinstance(ds, Dataset) and ds.name == name
    assert ds.input_shape == shape and ds.n_classes == classes
    assert ds.X_train.shape[1:] == shape and ds.X_test.shape[1:] == shape
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.y_train) + len(ds.y_test) == n
    assert len(ds.y_test) == round(0.2 * n)
    assert set(np.unique(ds.y_train)) == set(range(classes))


def test_tabular_standardised_with_train_statistics():
    ds = load_dataset("breast_cancer", np.random.default_rng(1))
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1, atol=1e-4)
    assert np.abs(ds.X_test.mean(axis=0)).max() > 1e-3  # test set is not re-centred


def test_digits_in_unit_range_and_split_is_seeded():
    a = load_dataset("digits", np.random.default_rng(3))
    b = load_dataset("digits", np.random.default_rng(3))
    c = load_dataset("digits", np.random.default_rng(4))
    assert 0 <= a.X_train.min() and a.X_train.max() <= 1 and a.X_train.max() > 0.9
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.y_train, c.y_train)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "imagenet"}, "unknown dataset"),
        ({"name": "wine", "test_fraction": 1.0}, "test_fraction"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(rng=np.random.default_rng(0), **kwargs)


def test_available_datasets():
    assert {"breast_cancer", "digits", "wine", "mnist", "cifar10", "amazon"} == set(
        available_datasets()
    )


# ---------------------------------------------------------------- synthetic user files


def _idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_mnist(root, gz: bool, rng):
    images = {
        "train": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
        "t10k": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
    }
    labels = {
        "train": rng.integers(0, 10, 7, dtype=np.uint8),
        "t10k": rng.integers(0, 10, 3, dtype=np.uint8),
    }
    for split in ("train", "t10k"):
        for kind, arr in (
            (f"{split}-images-idx3-ubyte", images[split]),
            (f"{split}-labels-idx1-ubyte", labels[split]),
        ):
            if gz:
                (root / (kind + ".gz")).write_bytes(gzip.compress(_idx(arr), mtime=0))
            else:
                (root / kind).write_bytes(_idx(arr))
    return images, labels


def _pins(root):
    return {p.name: "sha256:" + file_digest(p) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_round_trip(tmp_path, gz):
    images, labels = _write_mnist(tmp_path, gz, np.random.default_rng(0))
    ds = load_dataset("mnist", np.random.default_rng(0), tmp_path, checksums=_pins(tmp_path))
    assert ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    np.testing.assert_allclose(ds.X_train[:, 0] * 255, images["train"], atol=1e-3)
    np.testing.assert_array_equal(ds.y_test, labels["t10k"])
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64


def test_mnist_gz_checked_against_real_reference_md5(tmp_path):
    # Synthetic .gz files carry the official names, so the built-in MD5s reject them.
    _write_mnist(tmp_path, True, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"checksum mismatch .*observed md5:[0-9a-f]{32}"):
        load_dataset("mnist", np.random.default_rng(0), tmp_path)
    ds = load_dataset("mnist", np.random.default_rng(0), tmp_path, verify=False)
    assert len(ds.y_train) == 7


def test_unpinned_file_warns_with_observed_hash(tmp_path):
    _write_mnist(tmp_path, False, np.random.default_rng(0))
    with pytest.warns(UserWarning, match=r"observed sha256:[0-9a-f]{64}"):
        load_dataset("mnist", np.random.default_rng(0), tmp_path)


def test_read_idx_rejects_garbage(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(_idx(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ValueError, match="promises"):
        read_idx(tmp_path / "y")


def test_cifar_binary_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    sub = tmp_path / "cifar-10-batches-bin"
    sub.mkdir()
    written = {}
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        y = rng.integers(0, 10, 2, dtype=np.uint8)
        X = rng.integers(0, 256, (2, 3, 32, 32), dtype=np.uint8)
        (sub / name).write_bytes(np.concatenate([y[:, None], X.reshape(2, -1)], axis=1).tobytes())
        written[name] = (X, y)
    ds = load_dataset("cifar10", rng, tmp_path, checksums=_pins(tmp_path))
    assert ds.X_train.shape == (10, 3, 32, 32) and ds.X_test.shape == (2, 3, 32, 32)
    X1, y1 = written["data_batch_1.bin"]
    np.testing.assert_allclose(ds.X_train[:2] * 255, X1, atol=1e-3)
    np.testing.assert_array_equal(ds.y_train[:2], y1)
    np.testing.assert_array_equal(ds.y_test, written["test_batch.bin"][1])


def _amazon_csv(rows: int, rng) -> str:
    cols = ["ACTION", "RESOURCE", "MGR_ID", "ROLE_ROLLUP_1", "ROLE_CODE"]
    lines = [",".join(cols)]
    for _ in range(rows):
        lines.append(
            ",".join([str(rng.integers(0, 2))] + [str(rng.integers(1, 50)) for _ in cols[1:]])
        )
    return "\n".join(lines) + "\n"


def test_amazon_csv_hashed_features(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "train.csv").write_text(_amazon_csv(40, rng))
    ds = load_dataset("amazon", np.random.default_rng(0), tmp_path, verify=False)
    assert ds.input_shape == (AMAZON_FEATURES,) and ds.n_classes == 2
    assert len(ds.y_train) == 32 and len(ds.y_test) == 8
    # Four categorical columns -> at most four (hash collisions) active features per row.
    active = np.concatenate([ds.X_train, ds.X_test]).sum(axis=1)
    assert set(np.unique(active)) <= {1.0, 2.0, 3.0, 4.0} and active.max() == 4.0
    again = load_dataset("amazon", np.random.default_rng(0), tmp_path, verify=False)
    np.testing.assert_array_equal(ds.X_train, again.X_train)  # stable hashing


def test_checksum_mismatch_names_observed_hash(tmp_path):
    (tmp_path / "train.csv").write_text(_amazon_csv(5, np.random.default_rng(0)))
    bad = {"train.csv": "sha256:" + "0" * 64}
    with pytest.raises(ValueError, match=r"train\.csv.*observed sha256:[0-9a-f]{64}"):
        load_dataset("amazon", np.random.default_rng(0), tmp_path, checksums=bad)


def test_amazon_rejects_wrong_csv(tmp_path):
    (tmp_path / "train.csv").write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ValueError, match="ACTION"):
        load_dataset("amazon", np.random.default_rng(0), tmp_path, verify=False)


@pytest.mark.parametrize(
    "name, expected",
    [("mnist", "t10k-labels-idx1-ubyte"), ("cifar10", "test_batch.bin"), ("amazon", "train.csv")],
)
def test_missing_files_name_them_and_the_source(tmp_path, name, expected):
    with pytest.raises(ValueError, match="missing") as err:
        load_dataset(name, np.random.default_rng(0), tmp_path)
    msg = str(err.value)
    assert expected in msg and "http" in msg and "\n" not in msg


# ---------------------------------------------------------------- partitions


@pytest.mark.parametrize("how", ["iid", "label_sorted"])
@pytest.mark.parametrize("n, k", [(10, 1), (10, 3), (10, 10), (569, 24), (1437, 7)])
def test_partition_disjoint_covering_balanced(n, k, how):
    y = np.random.default_rng(n).integers(0, 5, n)
    parts = partition(y, k, how, np.random.default_rng(0))
    assert len(parts) == k
    allidx = np.concatenate(parts)
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert all(p.dtype == np.int64 for p in parts)


def test_label_sorted_is_sorted_and_iid_is_mixed():
    y = np.repeat(np.arange(4), 50)
    np.random.default_rng(0).shuffle(y)
    sorted_parts = partition(y, 8, "label_sorted", np.random.default_rng(1))
    for a, b in zip(sorted_parts, sorted_parts[1:], strict=False):
        assert y[a].max() <= y[b].min()
    assert all(len(np.unique(y[p])) == 1 for p in sorted_parts)  # 50 per label, 25 per part
    iid_parts = partition(y, 8, "iid", np.random.default_rng(1))
    assert all(len(np.unique(y[p])) > 1 for p in iid_parts)


def test_partition_is_seeded():
    y = np.arange(100) % 3
    a = partition(y, 6, "iid", np.random.default_rng(5))
    b = partition(y, 6, "iid", np.random.default_rng(5))
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize(
    "k, how, match",
    [
        (0, "iid", ">= 1"),
        (11, "iid", "cannot split 10"),
        (2, "dirichlet", "unknown partitioning"),
        (2.5, "iid", "integer"),
    ],
)
def test_partition_errors(k, how, match):
    with pytest.raises(ValueError, match=match):
        partition(np.zeros(10), k, how, np.random.default_rng(0))
