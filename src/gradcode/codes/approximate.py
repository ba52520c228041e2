"""Approximate gradient codes: less redundancy, inexact but cheap decodes.

* ``sgc`` -- Stochastic Gradient Coding: Bitar, Wootters, El Rouayheb,
  "Stochastic Gradient Coding for Straggler Mitigation in Distributed
  Learning", IEEE JSAIT 2020.  Each partition is replicated on ``d`` workers
  (here cyclically: worker ``i`` holds ``i, ..., i+d-1 mod n``); a worker sends
  its partial-gradient sum scaled by ``1 / (d (1 - p))`` and the master simply
  adds whatever arrives.  If each worker arrives independently with
  probability ``1 - p`` -- or the ``n - s`` arrivals are a uniformly random
  subset and ``p = s / n`` -- then ``E[a B] = 1``: the estimate is unbiased.
* ``lstsq`` -- the optimal decoder of Glasgow & Wootters, "Approximate
  Gradient Coding with Optimal Decoding", IEEE JSAIT 2021: keep any code's
  ``B`` (here cyclic ``d``-replication with unit coefficients, or the ``B`` of
  another scheme) and pick ``a = argmin ||a B_K - 1||_2`` each round.  Exact
  whenever that is possible, least-squares-best otherwise.  Solved through the
  left null space of ``B`` (:mod:`gradcode.codes.nullspace`): small solves on
  the stragglers only, and a vectorised residual for the simulator.
* ``erasurehead`` lives in :mod:`gradcode.codes.frc` (same placement as FRC).

Example (SGC, n = 4, s = 1, d = 2: coefficient ``1 / (2 * 3/4) = 2/3``)::

    >>> from gradcode.codes import make_code
    >>> code = make_code("sgc", n=4, s=1)
    >>> code.coefficients(0).round(4).tolist()
    [0.6667, 0.6667]
    >>> code.decode([0, 1, 2]).weights.tolist()
    [1.0, 1.0, 1.0, 0.0]
"""

from __future__ import annotations

import numpy as np

from .base import Decoding, GradientCode, check_ns, cyclic_support, residual_of
from .nullspace import batch_null_space, decode_null_space


def _check_d(n: int, d: int) -> int:
    if not isinstance(d, (int, np.integer)) or not 1 <= d <= n:
        raise ValueError(f"replication d must be an integer in 1..n={n}, got {d!r}")
    return int(d)


class SGC(GradientCode):
    """Stochastic gradient coding: scaled sums, the master adds all arrivals."""

    name = "sgc"
    exact_design = False

    def __init__(self, n: int, s: int, d: int | None = None, p: float | None = None) -> None:
        check_ns(n, s)
        d = _check_d(n, s + 1 if d is None else d)
        p = s / n if p is None else float(p)
        if not 0.0 <= p < 1.0:
            raise ValueError(f"straggling probability p must lie in [0, 1), got {p}")
        super().__init__(cyclic_support(n, d) / (d * (1.0 - p)), s)
        self.d, self.p = d, p

    def _decode(self, workers: list[int]) -> Decoding:
        w = np.zeros(self.n)
        w[workers] = 1.0
        res = residual_of(w, self.B)
        return Decoding(w, tuple(workers), res <= 1e-8, res, np.nan, 1.0 if workers else 0.0)

    def decode_batch(self, used):
        """Closed form in ``O(R n d)``, no per-pattern work.

        Partition ``j`` gets ``c`` times ``x_j``, the number of arrived workers
        among ``j - d + 1 .. j``.  With ``U`` arrivals, ``sum_j x_j = d U`` and
        ``sum_j x_j^2 = sum_delta ov(delta) A_delta``, where ``A_delta`` counts
        arrived pairs ``(i, i + delta mod n)`` and ``ov(delta)`` is the number
        of partitions two such workers share, so
        ``||a B - 1||^2 = c^2 sum x^2 - 2 c d U + n``.  That difference cancels
        when all ``x_j`` are equal (``n sum x^2 == (sum x)^2``, in integers): the
        residual is then ``sqrt(n) |c x - 1|``, computed directly.
        """
        used = np.asarray(used, dtype=bool)
        n, d, c = self.n, self.d, float(self.B[0, 0])
        row = self.B[0] != 0
        ov = np.array([np.count_nonzero(row & np.roll(row, dl)) for dl in range(n)])
        # A_delta = A_{n - delta} and ov too: count each pair of shifts once.
        shifts = [(dl, ov[dl] * (1 if 2 * dl == n else 2)) for dl in range(1, n) if 2 * dl <= n]
        shifts = [(dl, int(w)) for dl, w in shifts if w]
        residual = np.empty(len(used))
        for lo in range(0, len(used), 16384):  # chunks stay in cache
            u = used[lo : lo + 16384]
            uu = np.concatenate([u, u[:, : n // 2 + 1]], axis=1)
            U = np.count_nonzero(u, axis=1)
            sq = d * U
            for dl, w in shifts:
                sq += w * np.count_nonzero(u & uu[:, dl : dl + n], axis=1)
            lin = d * U
            r2 = c * c * sq - 2.0 * c * lin + n
            even = n * sq == lin * lin
            residual[lo : lo + 16384] = np.where(
                even, np.sqrt(n) * np.abs(c * lin / n - 1.0), np.sqrt(np.maximum(r2, 0.0))
            )
        return residual <= 1e-8, residual


class OptimalLstsq(GradientCode):
    """Any ``B`` with the optimal least-squares decoder (Glasgow & Wootters 2021)."""

    name = "lstsq"
    exact_design = False

    def __init__(self, n: int, s: int, d: int | None = None, B: np.ndarray | None = None) -> None:
        check_ns(n, s)
        if B is None:
            B = cyclic_support(n, _check_d(n, s + 1 if d is None else d))
        elif np.shape(B)[0] != n:
            raise ValueError(f"B has {np.shape(B)[0]} rows but n={n} workers")
        super().__init__(B, s)

    def _decode(self, workers: list[int]) -> Decoding:
        # Same minimum-norm weights as lstsq_decoding, without an SVD per pattern.
        return decode_null_space(self, workers)

    def decode_batch(self, used):
        return batch_null_space(self, used)
