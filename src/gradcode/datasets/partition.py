"""Data partitions: the disjoint index sets that gradient codes assign to workers."""

from __future__ import annotations

import numpy as np

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
