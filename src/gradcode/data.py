"""Offline datasets and the data partitions that gradient codes assign to workers.

Gradient coding splits the training set into ``k`` disjoint *partitions*; the
full gradient is the sum of the per-partition gradients (see
:mod:`gradcode.task`).  This module provides the data and the split.

Built-in sets need no network: they ship inside scikit-learn.

* ``breast_cancer`` -- 569 x 30 tabular, 2 classes, standardised with the
  *training* mean/std (so no test information leaks into the features);
* ``wine`` -- 178 x 13 tabular, 3 classes, standardised the same way;
* ``digits`` -- 1797 real 8 x 8 handwritten digits, 10 classes, as
  ``(1, 8, 8)`` images scaled to ``[0, 1]``.

Their test set is a random ``test_fraction`` of the samples (drawn from ``rng``).

User-supplied sets are read from ``data_dir`` (default: ``$GRADCODE_DATA_DIR``
or ``./data``), looked up in ``data_dir/<name>/`` and then ``data_dir/``:

* ``mnist`` -- the four IDX files (``train-images-idx3-ubyte`` ...), gzip or raw;
  images become ``(1, 28, 28)`` in ``[0, 1]``; the official test set is used;
* ``cifar10`` -- the *binary* batches ``data_batch_1.bin`` ... ``data_batch_5.bin``
  and ``test_batch.bin`` (from ``cifar-10-binary.tar.gz``, also found in a
  ``cifar-10-batches-bin/`` folder); images ``(3, 32, 32)`` in ``[0, 1]``;
* ``amazon`` -- Kaggle "Amazon.com Employee Access Challenge" ``train.csv``
  (label ``ACTION``, nine categorical id columns).  Each ``column=value`` pair
  is hashed (CRC-32, stable across runs and machines) into one of
  ``AMAZON_FEATURES`` binary features: the hashing trick, a fixed-size one-hot.

Every file is checked against :data:`CHECKSUMS` (``"algo:hexdigest"``) before
use.  A mismatch is a :class:`ValueError` naming the observed SHA-256.  Files
with no reference entry (the table only lists digests we are certain of) are
accepted with a :class:`UserWarning` that prints their SHA-256, so you can pin
them: pass ``checksums={"train.csv": "sha256:..."}``, or ``verify=False`` to
skip checking altogether.

Example::

    >>> import numpy as np
    >>> ds = load_dataset("wine", np.random.default_rng(0))
    >>> ds.input_shape, ds.n_classes, ds.X_train.dtype.name, ds.y_train.dtype.name
    ((13,), 3, 'float32', 'int64')
    >>> parts = partition(ds.y_train, 4, "label_sorted", np.random.default_rng(0))
    >>> sorted(len(p) for p in parts)
    [35, 35, 36, 36]
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BUILTIN = ("breast_cancer", "digits", "wine")
USER_SUPPLIED = ("mnist", "cifar10", "amazon")

#: Number of hashed binary features for the Amazon set.
AMAZON_FEATURES = 1024

#: Reference digests, ``file name -> "algo:hexdigest"``.  Only entries we are
#: certain of are listed (the MNIST gzip MD5s published by torchvision).  The
#: raw IDX files, the CIFAR-10 ``.bin`` batches and Amazon ``train.csv`` are
#: not listed yet: fill them in (SHA-256, as printed by the warning) to pin them.
CHECKSUMS: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
}

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
AMAZON_FILES = ("train.csv",)
_SOURCES = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/ (mirror of yann.lecun.com/exdb/mnist)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (extract it)",
    "amazon": "https://www.kaggle.com/c/amazon-employee-access-challenge/data",
}
_SUBDIRS = {
    "mnist": ("mnist",),
    "cifar10": ("cifar10", "cifar-10-batches-bin"),
    "amazon": ("amazon",),
}


@dataclass(frozen=True)
class Dataset:
    """A train/test split.  ``X`` arrays are float32 of shape ``(N, *input_shape)``,
    ``y`` arrays int64 labels in ``0 .. n_classes - 1``."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    input_shape: tuple[int, ...]

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (built-in ones first)."""
    return list(BUILTIN + USER_SUPPLIED)


def load_dataset(
    name: str,
    rng: np.random.Generator,
    data_dir: str | Path | None = None,
    test_fraction: float = 0.2,
    *,
    verify: bool = True,
    checksums: Mapping[str, str] | None = None,
) -> Dataset:
    """Load dataset ``name`` (see the module docstring for the choices).

    ``rng`` draws the train/test split of the built-in and Amazon sets
    (``test_fraction`` of the samples go to the test set); MNIST and CIFAR-10
    use their official test sets.  ``checksums`` entries override
    :data:`CHECKSUMS`; ``verify=False`` skips checking.
    """
    if name not in BUILTIN + USER_SUPPLIED:
        raise ValueError(f"unknown dataset {name!r}; choose from {available_datasets()}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    if name in BUILTIN:
        return _load_builtin(name, rng, test_fraction)
    table = {**CHECKSUMS, **(checksums or {})}
    root = Path(data_dir if data_dir is not None else os.environ.get("GRADCODE_DATA_DIR", "data"))
    if name == "mnist":
        return _load_mnist(root, table if verify else None)
    if name == "cifar10":
        return _load_cifar10(root, table if verify else None)
    return _load_amazon(root, table if verify else None, rng, test_fraction)


# --------------------------------------------------------------------------- built-in


def _split(n: int, rng: np.random.Generator, test_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(n)
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _standardise(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std


def _make(name, X, y, tr, te, input_shape, standardise=False) -> Dataset:
    X_train, X_test = X[tr], X[te]
    if standardise:
        X_train, X_test = _standardise(X_train, X_test)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(
        name=name,
        X_train=np.ascontiguousarray(X_train, dtype=np.float32),
        y_train=y[tr],
        X_test=np.ascontiguousarray(X_test, dtype=np.float32),
        y_test=y[te],
        n_classes=int(y.max()) + 1,
        input_shape=tuple(int(s) for s in input_shape),
    )


def _load_builtin(name: str, rng: np.random.Generator, test_fraction: float) -> Dataset:
    from sklearn import datasets as skd  # bundled files: no network access

    if name == "digits":
        bunch = skd.load_digits()
        X = bunch.data.reshape(-1, 1, 8, 8) / 16.0
        tr, te = _split(len(X), rng, test_fraction)
        return _make(name, X, bunch.target, tr, te, (1, 8, 8))
    bunch = skd.load_breast_cancer() if name == "breast_cancer" else skd.load_wine()
    X = np.asarray(bunch.data, dtype=np.float64)
    tr, te = _split(len(X), rng, test_fraction)
    return _make(name, X, bunch.target, tr, te, X.shape[1:], standardise=True)


# --------------------------------------------------------------------------- files


def file_digest(path: str | Path, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: Path, table: Mapping[str, str]) -> None:
    """Check ``path`` against ``table[path.name]`` (``"algo:hex"``); see module docs."""
    expected = table.get(path.name)
    if expected is None:
        warnings.warn(
            f"no reference checksum for {path.name}; observed sha256:{file_digest(path)} "
            "(pin it with checksums={...} or skip with verify=False)",
            UserWarning,
            stacklevel=4,
        )
        return
    algo, _, hexd = expected.partition(":")
    if algo not in hashlib.algorithms_available or not hexd:
        raise ValueError(f"bad checksum entry {expected!r} for {path.name}: use 'algo:hexdigest'")
    observed = file_digest(path, algo)
    if observed != hexd.lower():
        raise ValueError(
            f"checksum mismatch for {path}: expected {algo}:{hexd}, observed {algo}:{observed} "
            f"(sha256:{file_digest(path)}); the file is corrupt or a different version"
        )


def _find(root: Path, name: str, files: tuple[str, ...], allow_gz: bool = False) -> list[Path]:
    """Locate each of ``files`` (or ``file.gz`` if ``allow_gz``) under ``root``."""
    dirs = [root / sub for sub in _SUBDIRS[name]] + [root]
    found, missing = [], []
    for fname in files:
        names = (fname + ".gz", fname) if allow_gz else (fname,)
        hit = next((d / n for d in dirs for n in names if (d / n).is_file()), None)
        (found if hit else missing).append(hit or fname)
    if missing:
        where = " or ".join(str(d) for d in dirs)
        gz = " (optionally .gz)" if allow_gz else ""
        raise ValueError(
            f"dataset {name!r}: missing {', '.join(missing)}{gz} in {where}; "
            f"get them from {_SOURCES[name]} and pass data_dir (or set GRADCODE_DATA_DIR)"
        )
    return found


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (gzip or raw): magic ``0 0 dtype ndim``, big-endian dims, data."""
    path = Path(path)
    raw = _read_bytes(path)
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in dtypes:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[raw[2]])
    expected = 4 + 4 * ndim + dtype.itemsize * int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header promises {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)


def _verify_all(paths: list[Path], table: Mapping[str, str] | None) -> None:
    if table is not None:
        for p in paths:
            verify_file(p, table)


def _load_mnist(root: Path, table: Mapping[str, str] | None) -> Dataset:
    paths = _find(root, "mnist", MNIST_FILES, allow_gz=True)
    _verify_all(paths, table)
    Xtr, ytr, Xte, yte = (read_idx(p) for p in paths)
    for X, y, p in ((Xtr, ytr, paths[0]), (Xte, yte, paths[2])):
        if X.ndim != 3 or y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"{p}: images {X.shape} do not match labels {y.shape}")
    shape = (1, *Xtr.shape[1:])
    return Dataset(
        "mnist",
        (Xtr.reshape(-1, *shape) / np.float32(255)).astype(np.float32),
        ytr.astype(np.int64),
        (Xte.reshape(-1, *shape) / np.float32(255)).astype(np.float32),
        yte.astype(np.int64),
        10,
        shape,
    )


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    raw = Path(path).read_bytes()
    rec = 1 + 3 * 32 * 32
    if len(raw) == 0 or len(raw) % rec:
        raise ValueError(f"{path}: size {len(raw)} is not a multiple of the {rec}-byte record")
    arr = np.frombuffer(raw, np.uint8).reshape(-1, rec)
    return arr[:, 1:].reshape(-1, 3, 32, 32), arr[:, 0].astype(np.int64)


def _load_cifar10(root: Path, table: Mapping[str, str] | None) -> Dataset:
    paths = _find(root, "cifar10", CIFAR_FILES)
    _verify_all(paths, table)
    batches = [read_cifar_bin(p) for p in paths]
    Xtr = np.concatenate([b[0] for b in batches[:-1]])
    ytr = np.concatenate([b[1] for b in batches[:-1]])
    Xte, yte = batches[-1]
    if max(ytr.max(), yte.max()) > 9:
        raise ValueError(f"CIFAR-10 labels must be 0..9; is {paths[0]} a CIFAR-100 file?")
    to_float = lambda X: (X / np.float32(255)).astype(np.float32)  # noqa: E731
    return Dataset("cifar10", to_float(Xtr), ytr, to_float(Xte), yte, 10, (3, 32, 32))


def _load_amazon(
    root: Path, table: Mapping[str, str] | None, rng: np.random.Generator, test_fraction: float
) -> Dataset:
    (path,) = _find(root, "amazon", AMAZON_FILES)
    _verify_all([path], table)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
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
        y[r] = int(row[label_col])
        for c, (col, val) in enumerate(zip(header, row, strict=True)):
            if c != label_col:
                X[r, zlib.crc32(f"{col}={val}".encode()) % AMAZON_FEATURES] = 1.0
    tr, te = _split(len(y), rng, test_fraction)
    return Dataset("amazon", X[tr], y[tr], X[te], y[te], 2, (AMAZON_FEATURES,))


# --------------------------------------------------------------------------- partitions

PARTITIONINGS = ("iid", "label_sorted")


def partition(y: np.ndarray, k: int, how: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Split sample indices ``0 .. len(y) - 1`` into ``k`` disjoint parts.

    Part sizes differ by at most one and together cover every index; each
    part is returned sorted (int64).

    * ``"iid"``: a random permutation cut into ``k`` chunks -- every worker
      sees the same label distribution in expectation;
    * ``"label_sorted"``: indices sorted by label (ties in random order) then
      cut into chunks -- each part holds one or two labels, the classic
      non-iid setting in which a dropped partition biases the gradient.
    """
    y = np.asarray(y)
    n = int(y.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"number of partitions must be an integer >= 1, got {k!r}")
    if k > n:
        raise ValueError(f"cannot split {n} samples into {k} non-empty partitions")
    perm = rng.permutation(n)
    if how == "iid":
        order = perm
    elif how == "label_sorted":
        order = perm[np.argsort(y[perm], kind="stable")]
    else:
        raise ValueError(f"unknown partitioning {how!r}; choose from {list(PARTITIONINGS)}")
    return [np.sort(p).astype(np.int64) for p in np.array_split(order, k)]
