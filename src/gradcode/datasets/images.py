"""Image sets read from files: MNIST and Fashion-MNIST (IDX) and CIFAR-10 (binary batches).

* ``mnist`` -- the four IDX files (``train-images-idx3-ubyte`` ...), gzip or raw,
  from ``data_dir`` (default ``$GRADCODE_DATA_DIR``, else ``./data``; ``data_dir/mnist/`` first);
* ``fashion_mnist`` -- the same format, from ``data_dir`` (``data_dir/fashion_mnist/`` or
  ``data_dir/fashion-mnist/`` first) when given, else ``$GRADCODE_DATA_DIR`` when set, else
  ``/usr/share/datasets/fashion-mnist`` (Debian: ``apt-get install dataset-fashion-mnist``);
* ``cifar10`` -- ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin``
  (from ``cifar-10-binary.tar.gz``, also found in a ``cifar-10-batches-bin/`` folder).

Images become float32 ``(C, H, W)`` in ``[0, 1]``; the official test sets are used.
Labels must lie in ``0..9`` and image/label counts must agree (one-line errors).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .base import Dataset, find_files, read_bytes
from .integrity import verify_files

#: Where Debian's ``dataset-fashion-mnist`` package puts its files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)

_HOW = {
    "mnist": "get them from https://ossci-datasets.s3.amazonaws.com/mnist/ (a mirror of "
    "yann.lecun.com/exdb/mnist) and pass --data-dir (or set GRADCODE_DATA_DIR)",
    "fashion_mnist": "install them with `apt-get install dataset-fashion-mnist` (Debian) "
    "or pass --data-dir with the four IDX files",
    "cifar10": "get https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz, extract it "
    "and pass --data-dir (or set GRADCODE_DATA_DIR)",
}
_SUBDIRS = {
    "mnist": ("mnist",),
    "fashion_mnist": ("fashion_mnist", "fashion-mnist"),
    "cifar10": ("cifar10", "cifar-10-batches-bin"),
}


def user_root(data_dir: str | Path | None) -> Path | None:
    """``data_dir``, else ``$GRADCODE_DATA_DIR``, else None."""
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("GRADCODE_DATA_DIR")
    return Path(env) if env else None


def search_dirs(name: str, data_dir: str | Path | None, default: Path | None = None) -> list[Path]:
    """Folders searched for dataset ``name``: ``root/<subdir>`` then ``root``."""
    root = user_root(data_dir)
    if root is None and default is not None:
        return [default]
    root = root if root is not None else Path("data")
    return [root / sub for sub in _SUBDIRS.get(name, ())] + [root]


def read_idx(path: str | Path) -> np.ndarray:
    """Parse an IDX file (gzip or raw): magic ``0 0 dtype ndim``, big-endian dims, data."""
    path = Path(path)
    raw = read_bytes(path)
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in dtypes:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: IDX header is truncated")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(dtypes[raw[2]])
    expected = 4 + 4 * ndim + dtype.itemsize * int(np.prod(dims))
    if len(raw) != expected:
        raise ValueError(f"{path}: IDX header promises {expected} bytes, file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(dims)


def load_idx_set(
    name: str,
    dirs: list[Path],
    verify: bool,
    checksums: Mapping[str, str] | None,
    n_classes: int = 10,
) -> Dataset:
    """Load the four MNIST-format IDX files found in ``dirs`` as dataset ``name``."""
    paths = find_files(name, dirs, MNIST_FILES, _HOW[name], allow_gz=True)
    if verify:
        verify_files(name, paths, checksums)
    Xtr, ytr, Xte, yte = (read_idx(p) for p in paths)
    for X, y, px, py in ((Xtr, ytr, paths[0], paths[1]), (Xte, yte, paths[2], paths[3])):
        if X.ndim != 3 or X.dtype != np.uint8:
            raise ValueError(f"{px}: expected uint8 images (N, H, W), got {X.dtype} {X.shape}")
        if y.ndim != 1 or len(X) != len(y):
            raise ValueError(f"{px}: {len(X)} images do not match {py}: labels {y.shape}")
        if len(y) and int(y.max()) >= n_classes:
            raise ValueError(f"{py}: label {int(y.max())} is out of range 0..{n_classes - 1}")
    if Xtr.shape[1:] != Xte.shape[1:]:
        raise ValueError(f"{paths[2]}: test images {Xte.shape[1:]} != train {Xtr.shape[1:]}")
    shape = (1, *Xtr.shape[1:])

    def to_float(X: np.ndarray) -> np.ndarray:
        return (X.reshape(-1, *shape) / np.float32(255)).astype(np.float32, copy=False)

    return Dataset(
        name,
        to_float(Xtr),
        ytr.astype(np.int64),
        to_float(Xte),
        yte.astype(np.int64),
        n_classes,
        shape,
    )


def load_mnist(data_dir=None, verify=True, checksums=None) -> Dataset:
    return load_idx_set("mnist", search_dirs("mnist", data_dir), verify, checksums)


def load_fashion_mnist(data_dir=None, verify=True, checksums=None) -> Dataset:
    dirs = search_dirs("fashion_mnist", data_dir, default=FASHION_MNIST_DIR)
    return load_idx_set("fashion_mnist", dirs, verify, checksums)


def read_cifar_bin(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes."""
    raw = Path(path).read_bytes()
    rec = 1 + 3 * 32 * 32
    if len(raw) == 0 or len(raw) % rec:
        raise ValueError(f"{path}: size {len(raw)} is not a multiple of the {rec}-byte record")
    arr = np.frombuffer(raw, np.uint8).reshape(-1, rec)
    labels = arr[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise ValueError(
            f"{path}: label {labels.max()} is out of range 0..9; is it a CIFAR-100 file?"
        )
    return arr[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(data_dir=None, verify=True, checksums=None) -> Dataset:
    paths = find_files("cifar10", search_dirs("cifar10", data_dir), CIFAR_FILES, _HOW["cifar10"])
    if verify:
        verify_files("cifar10", paths, checksums)
    batches = [read_cifar_bin(p) for p in paths]
    Xtr = np.concatenate([b[0] for b in batches[:-1]])
    ytr = np.concatenate([b[1] for b in batches[:-1]])
    Xte, yte = batches[-1]

    def to_float(X: np.ndarray) -> np.ndarray:
        return (X / np.float32(255)).astype(np.float32, copy=False)

    return Dataset("cifar10", to_float(Xtr), ytr, to_float(Xte), yte, 10, (3, 32, 32))
