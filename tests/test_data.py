"""scikit-learn's sets, the package's public names, and partitions.

File formats and the packaged sets are tested in tests/datasets/.
"""

import numpy as np
import pytest

from gradcode.datasets import Dataset, available_datasets, load_dataset, partition


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
    assert available_datasets()[:10] == [
        "breast_cancer",
        "digits",
        "wine",
        "fashion_mnist",
        "adult",
        "mnist5k",
        "mnist1d",
        "mnist",
        "cifar10",
        "amazon",
    ]


def test_datasets_is_the_only_name():
    """``gradcode.data`` (a compatibility alias) is gone: version 0.x keeps no aliases."""
    import importlib

    import gradcode.datasets

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("gradcode.data")
    for old in ("AMAZON_FEATURES", "CHECKSUMS", "PARTITIONINGS", "read_idx", "file_digest"):
        assert hasattr(gradcode.datasets, old)


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
