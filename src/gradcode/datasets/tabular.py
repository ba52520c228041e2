"""scikit-learn's bundled sets and the Kaggle Amazon Employee Access CSV.

* ``breast_cancer`` -- 569 x 30 tabular, 2 classes, standardised with the
  *training* mean/std (so no test information leaks into the features);
* ``wine`` -- 178 x 13 tabular, 3 classes, standardised the same way;
* ``digits`` -- 1797 real 8 x 8 handwritten digits, 10 classes, as
  ``(1, 8, 8)`` images scaled to ``[0, 1]``;
* ``amazon`` -- Kaggle "Amazon.com Employee Access Challenge" ``train.csv``
  (label ``ACTION`` in {0, 1}, nine categorical id columns).  Each
  ``column=value`` pair is hashed (CRC-32, stable across runs and machines) into
  one of ``AMAZON_FEATURES`` binary features: the hashing trick, a fixed-size
  one-hot.  Kaggle publishes no checksum, so the file is unpinned.

The test set is a random ``test_fraction`` of the samples (drawn from ``rng``).
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Mapping

import numpy as np

from .base import Dataset, find_files, from_arrays, split_indices
from .images import search_dirs
from .integrity import verify_files

#: Number of hashed binary features for the Amazon set.
AMAZON_FEATURES = 1024
AMAZON_FILES = ("train.csv",)


def load_sklearn(name: str, rng: np.random.Generator, test_fraction: float) -> Dataset:
    """One of scikit-learn's bundled sets (no network access)."""
    from sklearn import datasets as skd

    if name == "digits":
        bunch = skd.load_digits()
        X = bunch.data.reshape(-1, 1, 8, 8) / 16.0
        tr, te = split_indices(len(X), rng, test_fraction)
        return from_arrays(name, X, bunch.target, tr, te, (1, 8, 8), 10)
    bunch = skd.load_breast_cancer() if name == "breast_cancer" else skd.load_wine()
    X = np.asarray(bunch.data, dtype=np.float64)
    tr, te = split_indices(len(X), rng, test_fraction)
    n_classes = int(np.max(bunch.target)) + 1
    return from_arrays(name, X, bunch.target, tr, te, X.shape[1:], n_classes, standardise_x=True)


def load_amazon(
    rng: np.random.Generator,
    test_fraction: float = 0.2,
    data_dir=None,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    how = "get train.csv from https://www.kaggle.com/c/amazon-employee-access-challenge/data"
    (path,) = find_files("amazon", search_dirs("amazon", data_dir), AMAZON_FILES, how)
    if verify:
        verify_files("amazon", [path], checksums)
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows or "ACTION" not in rows[0]:
        raise ValueError(f"{path}: expected a header with an ACTION column (Kaggle train.csv)")
    header, body = rows[0], rows[1:]
    if len(body) < 2:
        raise ValueError(f"{path}: need at least 2 data rows, got {len(body)}")
    label_col = header.index("ACTION")
    X = np.zeros((len(body), AMAZON_FEATURES), dtype=np.float32)
    y = np.empty(len(body), dtype=np.int64)
    for r, row in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {r + 2} has {len(row)} fields, header has {len(header)}")
        if row[label_col].strip() not in ("0", "1"):
            raise ValueError(f"{path}: row {r + 2}: ACTION must be 0 or 1, got {row[label_col]!r}")
        y[r] = int(row[label_col])
        for c, (col, val) in enumerate(zip(header, row, strict=True)):
            if c != label_col:
                X[r, zlib.crc32(f"{col}={val}".encode()) % AMAZON_FEATURES] = 1.0
    tr, te = split_indices(len(y), rng, test_fraction)
    return Dataset("amazon", X[tr], y[tr], X[te], y[te], 2, (AMAZON_FEATURES,))
