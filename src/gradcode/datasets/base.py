"""The :class:`Dataset` value, its validation and the small helpers every loader shares."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def validate(ds: Dataset, source: str | None = None) -> Dataset:
    """Check shapes, dtypes, label range and finiteness; return ``ds`` with exact dtypes.

    Every loader's result (built-in or registered) goes through here, so a bad
    file or a buggy user loader is one ``ValueError`` line, never a traceback.
    ``source`` (a path) is named in the message when given.
    """
    where = f"dataset {ds.name!r}" + (f" ({source})" if source else "")
    if isinstance(ds.n_classes, bool) or not isinstance(ds.n_classes, (int, np.integer)):
        raise ValueError(f"{where}: n_classes must be an integer, got {ds.n_classes!r}")
    if ds.n_classes < 2:
        raise ValueError(f"{where}: needs at least 2 classes, got n_classes={ds.n_classes}")
    shape = tuple(int(s) for s in ds.input_shape)
    arrays = {}
    for split in ("train", "test"):
        X = np.asarray(getattr(ds, f"X_{split}"))
        y = np.asarray(getattr(ds, f"y_{split}"))
        if X.shape[1:] != shape:
            raise ValueError(f"{where}: X_{split} has shape {X.shape}, expected (N, *{shape})")
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"{where}: y_{split} {y.shape} does not match X_{split} {X.shape}")
        if len(y) == 0:
            raise ValueError(f"{where}: the {split} split is empty")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{where}: y_{split} must hold integer labels, got {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= ds.n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"{where}: label {bad} in y_{split} is out of range 0..{ds.n_classes - 1}"
            )
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise ValueError(f"{where}: X_{split} contains NaN or infinite values")
        arrays[f"X_{split}"] = X
        arrays[f"y_{split}"] = y.astype(np.int64, copy=False)
    return Dataset(ds.name, n_classes=int(ds.n_classes), input_shape=shape, **arrays)


def split_indices(
    n: int, rng: np.random.Generator, test_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``0 .. n-1`` (both sides non-empty, sorted)."""
    if n < 2:
        raise ValueError(f"need at least 2 samples to split into train and test, got {n}")
    perm = rng.permutation(n)
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def standardise(X_train: np.ndarray, X_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale with the *training* mean/std (constant columns are left at 0)."""
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std[std == 0] = 1.0
    return (X_train - mean) / std, (X_test - mean) / std


def from_arrays(name, X, y, tr, te, input_shape, n_classes, standardise_x=False) -> Dataset:
    """Cut ``X, y`` by index arrays ``tr, te`` into a :class:`Dataset`."""
    X_train, X_test = X[tr], X[te]
    if standardise_x:
        X_train, X_test = standardise(X_train, X_test)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(name, X_train, y[tr], X_test, y[te], int(n_classes), tuple(input_shape))


def read_bytes(path: Path) -> bytes:
    """File contents, gunzipped when the name ends in ``.gz`` (a clean error if corrupt)."""
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                return f.read()
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: not a valid gzip file ({exc})") from None
    return path.read_bytes()


def find_files(
    dataset: str,
    dirs: list[Path],
    files: tuple[str, ...],
    how_to_get: str,
    allow_gz: bool = False,
) -> list[Path]:
    """Locate each of ``files`` (or ``file.gz`` first if ``allow_gz``) in ``dirs``.

    Missing files are one error naming them, the folders searched and
    ``how_to_get`` (an install command or a source).
    """
    found, missing = [], []
    for fname in files:
        names = (fname + ".gz", fname) if allow_gz else (fname,)
        hit = next((d / n for d in dirs for n in names if (d / n).is_file()), None)
        (found if hit else missing).append(hit or fname)
    if missing:
        where = " or ".join(str(d) for d in dirs)
        gz = " (optionally .gz)" if allow_gz else ""
        raise ValueError(
            f"dataset {dataset!r}: missing {', '.join(missing)}{gz} in {where}; {how_to_get}"
        )
    return found
