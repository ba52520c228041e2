"""Fractional repetition codes (FRC), exact and approximate.

Exact FRC -- Tandon, Lei, Dimakis, Karampatziakis, "Gradient Coding: Avoiding
Stragglers in Distributed Learning", ICML 2017, Section 3 (Algorithm 1).
The ``n`` workers form ``n / (s+1)`` groups of ``s + 1``; every worker of
group ``g`` stores the same ``s + 1`` partitions ``g(s+1), ..., g(s+1)+s`` and
sends their plain sum.  Any ``n - s`` arrivals leave at least one worker in
every group, so the master sums one message per group.  ``B`` is block
diagonal with all-ones blocks; needs ``(s + 1) | n``.

Example (n = 4, s = 1: groups {0, 1} and {2, 3})::

    >>> from gradcode.codes import make_code
    >>> code = make_code("frc", n=4, s=1)
    >>> code.placement
    ((0, 1), (0, 1), (2, 3), (2, 3))
    >>> code.decode([1, 2, 3]).weights.tolist()
    [0.0, 1.0, 0.5, 0.5]

Decoding averages the arrived members of each group (the minimum-norm
solution of ``a B = 1``; averaging copies of the same vector also averages
out their float rounding).  A group with no arrival cannot be recovered:
then the decode is approximate and omits that group.

ErasureHead -- Wang, Charles, Papailiopoulos, "ErasureHead: Distributed
Gradient Descent without Delays Using Approximate Gradient Coding", 2019:
the same placement with group size ``d`` (possibly ``< s + 1``, i.e. less
redundancy), the master stops after ``n - s`` arrivals and keeps one
(averaged) message per covered group, dropping uncovered groups.  With
``rescale=True`` the output is multiplied by ``k / covered`` to be unbiased
when the missing groups are uniformly random.
"""

from __future__ import annotations

import numpy as np

from .base import Decoding, GradientCode, check_ns, residual_of


def frc_matrix(n: int, group: int) -> np.ndarray:
    """Block-diagonal ``B`` with ``n / group`` all-ones ``group x group`` blocks."""
    if group < 1 or n % group:
        raise ValueError(
            f"FRC needs the group size to divide n: group size {group} does not divide "
            f"n={n}; choose s so that s+1 divides n (e.g. s in "
            f"{[d - 1 for d in range(1, n + 1) if n % d == 0]})"
        )
    return np.kron(np.eye(n // group), np.ones((group, group)))


class FRC(GradientCode):
    """Exact fractional repetition code (Tandon et al. 2017, Algorithm 1)."""

    name = "frc"

    def __init__(self, n: int, s: int) -> None:
        check_ns(n, s)
        super().__init__(frc_matrix(n, s + 1), s)
        self.group_size = s + 1

    @property
    def groups(self) -> tuple[tuple[int, ...], ...]:
        """Workers of each group."""
        r = self.group_size
        return tuple(tuple(range(g * r, (g + 1) * r)) for g in range(self.n // r))

    def group_of(self, worker: int) -> int:
        return worker // self.group_size

    def ready(self, arrived) -> bool:
        """Stop as soon as every group has at least one arrival."""
        covered = {self.group_of(i) for i in arrived}
        return len(covered) == self.n // self.group_size

    def _decode(self, workers: list[int]) -> Decoding:
        return _group_average(self, workers, rescale=False)

    def completion_time(self, times):
        """Max over groups of the first arrival within the group."""
        return _group_reduce(np.asarray(times), self.group_size, np.minimum).max(axis=-1)

    def decode_batch(self, used):
        r = self.group_size
        used = np.asarray(used, dtype=bool)
        covered = _group_reduce(used, r, np.logical_or)
        n_cov = covered.sum(axis=1)
        scale = np.ones(len(used))
        if getattr(self, "rescale", False):
            scale = np.divide(self.n, n_cov * r, out=np.zeros(len(used)), where=n_cov > 0)
        missing = covered.shape[1] - n_cov
        residual = np.sqrt(r * (n_cov * (scale - 1.0) ** 2 + missing))
        return residual <= 1e-8 * np.sqrt(self.k), residual


class ErasureHead(FRC):
    """Approximate FRC with a one-per-covered-group decoder (ErasureHead)."""

    name = "erasurehead"
    exact_design = False

    def __init__(self, n: int, s: int, d: int | None = None, rescale: bool = False) -> None:
        check_ns(n, s)
        d = s + 1 if d is None else int(d)
        GradientCode.__init__(self, frc_matrix(n, d), s)
        self.group_size = d
        self.rescale = bool(rescale)

    def ready(self, arrived) -> bool:
        return len(set(arrived)) >= self.n - self.s

    completion_time = GradientCode.completion_time  # n - s arrivals, not group cover

    def _decode(self, workers: list[int]) -> Decoding:
        return _group_average(self, workers, rescale=self.rescale)


def _group_reduce(x: np.ndarray, r: int, op) -> np.ndarray:
    """Reduce consecutive groups of ``r`` columns with a binary ufunc ``op``.

    ``r - 1`` whole-array ufunc calls on strided column views: much faster
    than ``reshape(..., G, r).min(-1)``, whose innermost axis is tiny.
    """
    out = x[..., 0::r]
    for j in range(1, r):
        out = op(out, x[..., j::r])
    return out


def _group_average(code: FRC, workers: list[int], rescale: bool) -> Decoding:
    r = code.group_size
    w = np.zeros(code.n)
    counts = np.bincount([i // r for i in workers], minlength=code.n // r)
    for i in workers:
        w[i] = 1.0 / counts[i // r]
    covered = int(np.count_nonzero(counts))
    if rescale and covered:
        w *= code.n / (covered * r)
    res = residual_of(w, code.B)
    # B_K restricted to covered columns has orthogonal all-ones blocks:
    # singular values sqrt(c_g * r) for group counts c_g.
    nz = counts[counts > 0] * r
    cond = float(np.sqrt(nz.max() / nz.min())) if nz.size else np.inf
    return Decoding(
        weights=w,
        used=tuple(workers),
        exact=res <= 1e-8 * np.sqrt(code.k),
        residual=res,
        cond=cond,
        max_abs_weight=float(np.max(np.abs(w))) if workers else 0.0,
    )
