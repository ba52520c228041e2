"""The data side of a task: tensors, partitions and the seeded minibatches.

In: a training set split into ``k`` disjoint partitions ``P_j`` (lists of row
indices); out: which rows partition ``j`` uses in round ``t``.  No model and
no gradients here (those are :mod:`gradcode.task`).

**Minibatches.**  With ``batch_size=B`` each partition contributes ``B_j =
min(B, |P_j|)`` samples per round, drawn by :class:`MinibatchSampler` from a
generator keyed by ``(seed, partition, epoch)``: within an epoch of partition
``j`` every sample is used once, and *every replica of a partition in a round
uses the same minibatch*, so a gradient code still decodes the exact sum
``sum_j g_j(w; t)`` with ``g_j(w; t) = (1/M) sum_{i in batch_j(t)} grad loss_i``
and ``M = sum_j B_j`` (the gradient of the mean loss over the round's union of
minibatches).  ``batch_size=None`` is full-batch: ``batch_j(t) = P_j``.

**Restriction.**  A worker needs only the rows of the partitions it stores:
:func:`restrict_rows` cuts the training tensors down to them and renumbers
each kept partition's rows, so ``rows[j]`` still selects partition ``j``'s
samples (in the same order) from the smaller tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TensorData:
    """A train/test split held as tensors (user data from :func:`gradcode.fit`)."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])


@dataclass(frozen=True)
class DataSummary:
    """What a restricted task keeps of its dataset: the name and the full training-set
    size (the ``1/N`` of every partition gradient)."""

    name: str
    n_train: int


class MinibatchSampler:
    """Seeded minibatches keyed by ``(partition, round)``: stateless, so any
    process computes the same batch for the same key.

    Partition ``j`` (size ``m``) reads a stream of permutations of
    ``0 .. m-1``, one per epoch, from ``default_rng([seed, j, epoch])``; round
    ``t`` takes positions ``t B .. (t+1) B - 1`` of that stream.

    >>> s = MinibatchSampler([5, 5], 2, seed=0)
    >>> sorted(np.concatenate([s.positions(0, t) for t in range(2)]).tolist()) == sorted(
    ...     set(np.concatenate([s.positions(0, t) for t in range(2)]).tolist()))
    True
    """

    def __init__(self, sizes: Sequence[int], batch_size: int | None, seed: int) -> None:
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.sizes = [int(m) for m in sizes]
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def batch(self, j: int) -> int:
        """``B_j``: samples partition ``j`` contributes per round."""
        m = self.sizes[j]
        return m if self.batch_size is None else min(self.batch_size, m)

    @property
    def samples_per_round(self) -> int:
        """``M = sum_j B_j``."""
        if not hasattr(self, "_m"):
            self._m = sum(self.batch(j) for j in range(len(self.sizes)))
        return self._m

    def _perm(self, j: int, epoch: int) -> np.ndarray:
        key = (j, epoch)
        if key not in self._perms:
            if len(self._perms) > 4 * len(self.sizes):
                self._perms.clear()
            rng = np.random.default_rng([self.seed, j, epoch])
            self._perms[key] = rng.permutation(self.sizes[j])
        return self._perms[key]

    def positions(self, j: int, t: int) -> np.ndarray:
        """Positions inside partition ``j`` used in round ``t`` (sorted)."""
        m, b = self.sizes[j], self.batch(j)
        if self.batch_size is None or b == m:
            return np.arange(m)
        start = t * b
        epoch, off = divmod(start, m)
        first = self._perm(j, epoch)[off : off + b]
        if first.size < b:
            first = np.concatenate([first, self._perm(j, epoch + 1)[: b - first.size]])
        return np.sort(first)

    def epoch(self, t: int) -> float:
        """Epochs of training data consumed after round ``t``."""
        return (t + 1) * self.samples_per_round / max(1, sum(self.sizes))


def device_tensors(dataset, device: torch.device, dtype: torch.dtype) -> tuple:
    """``(X_train, y_train, X_test, y_test)`` of ``dataset`` as tensors on ``device``
    (``None`` for a missing test set): features in ``dtype``, float targets in ``dtype``
    (regression), integer class labels as they are."""

    def features(x):
        return None if x is None else torch.as_tensor(x, device=device).to(dtype)

    def targets(y):
        if y is None:
            return None
        y = torch.as_tensor(y, device=device)
        return y.to(dtype) if y.is_floating_point() else y

    return (
        features(dataset.X_train),
        targets(dataset.y_train),
        features(getattr(dataset, "X_test", None)),
        targets(getattr(dataset, "y_test", None)),
    )


def restrict_rows(
    X: torch.Tensor, y: torch.Tensor, rows: Sequence[torch.Tensor], keep: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The training tensors cut down to the partitions in ``keep`` (copies), and each
    partition's row indices into them (empty for the partitions not kept).

    >>> X, y = torch.arange(6.0)[:, None], torch.arange(6)
    >>> X2, y2, idx = restrict_rows(X, y, [torch.tensor([0, 1]), torch.tensor([2, 5])], [1])
    >>> y2.tolist(), [i.tolist() for i in idx], y2[idx[1]].tolist()
    ([2, 5], [[], [0, 1]], [2, 5])
    """
    keep = sorted({int(j) for j in keep})
    picked = [rows[j] for j in keep]
    flat = torch.cat(picked) if picked else torch.zeros(0, dtype=torch.long)
    new_rows, start = [], 0
    for j in range(len(rows)):
        if j in keep:
            size = len(rows[j])
            new_rows.append(torch.arange(start, start + size))
            start += size
        else:
            new_rows.append(torch.zeros(0, dtype=torch.long))
    return X[flat].clone(), y[flat].clone(), new_rows


def evaluation_rows(n: int, samples: int, seed: int) -> np.ndarray:
    """A fixed seeded subset of ``samples`` of the ``n`` training rows (sorted), for
    the training loss in minibatch mode."""
    rng = np.random.default_rng([seed, 2**31])
    return np.sort(rng.choice(n, samples, replace=False))
