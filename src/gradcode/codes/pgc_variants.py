"""Variants and ablations of pipelined gradient coding (:mod:`gradcode.codes.pgc`).

* :class:`PGCReference` (``pgc_reference``): CR placement, the uniform decoder
  ``sum(messages) * n / ((n - s)(s + 1))`` and full sums from round 1
  (``fill = 0``), as in the public PGC reference script;
* :class:`PGCMemory` (``pgc_memory``): workers send only the fresh gradient; the
  master keeps every partition's latest one, folds late results in and drops
  those older than the staleness cap;
* :class:`ISLateFold` (``is_latefold``): IS-SGD placement with the same late
  folding (an ablation).

Same placement, state and message types as :class:`~gradcode.codes.pgc.PGC`.

Example::

    >>> sch = PGCMemory(4, 1)
    >>> [sch.compute_plan(None, w, 0) for w in range(4)]     # one fresh partition each
    [(0,), (1,), (2,), (3,)]
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .pgc import PGC, PGCMasterState, rescaled_coverage, weighted_sum
from .protocol import Message


class PGCReference(PGC):
    """CR placement with the uniform decoder ``sum(messages) * n / ((n - s)(s + 1))``."""

    name = "pgc_reference"

    def __init__(self, n: int, s: int, **kw) -> None:
        super().__init__(n, s, placement="cr", **{"fill": 0, **kw})

    def master_update(self, state, t, messages, late=()):
        fresh = [m for m in messages if m.age(t) <= self.staleness_cap]
        if not fresh:
            return state, self._update(t, [], [], None, "uniform", ["no usable message"])
        c = self.n / ((self.n - self.s) * self.r)
        total = weighted_sum(fresh, [c] * len(fresh))
        return state, self._update(t, fresh, [c] * len(fresh), total, "uniform", [])

    def decode_batch(self, used):
        used = np.asarray(used, dtype=bool).view(np.uint8)
        counts = used.copy()  # partition j is held by workers j-s .. j (mod n)
        for o in range(1, self.r):
            counts += np.roll(used, o, axis=1)
        c = self.n / ((self.n - self.s) * self.r)
        # ||c counts - 1||^2 = c^2 sum(counts^2) - 2 c r |used| + k   (sum(counts) = r |used|)
        sq = np.einsum("ij,ij->i", counts, counts, dtype=np.int64)
        total = self.r * used.sum(axis=1, dtype=np.int64)
        sq_res = c * c * sq - 2.0 * c * total + self.k
        # Integer counts: a non-zero squared residual is >= (c / n)^2, far above rounding.
        res = np.sqrt(np.where(sq_res < 1e-12 * self.k, 0.0, sq_res))
        return res <= 1e-9, res


class PGCMemory(PGC):
    """Workers send only the fresh gradient; the master remembers every partition's latest."""

    name = "pgc_memory"
    uses_late = True

    @property
    def staleness_profile(self) -> tuple[float, ...]:
        """Every partition is computed every round; with ``s`` late workers a round takes
        their ``s`` partitions from memory, one round old: ``((n - s)/n, s/n)``."""
        return ((self.n - self.s) / self.n, self.s / self.n) if self.s else (1.0,)

    def compute_plan(self, state, worker, t):
        return self.rotation(worker, t)

    def worker_message(self, state, worker, t, grads):
        (p, v), *_ = grads.items()
        return state, Message(worker, t, v, (p,), (t,))

    def master_update(self, state, t, messages, late=()):
        cache = dict(state.cache)
        for m in list(late) + list(messages):  # fold in late results, then on-time ones
            for p in m.partitions:
                if p not in cache or cache[p][1] <= m.round:
                    cache[p] = (m.vector, m.round)
        live = {p: vc for p, vc in cache.items() if t - vc[1] <= self.staleness_cap}
        notes = []
        if len(live) < self.k:
            notes.append(f"{self.k - len(live)} partition(s) missing or older than the cap")
        if not live:
            return PGCMasterState(cache), self._update(t, [], [], None, "memory", notes)
        scale = self.k / len(live)
        msgs = [Message(-1, vc[1], vc[0], (p,), (vc[1],)) for p, vc in live.items()]
        total = weighted_sum(msgs, [scale] * len(msgs))
        upd = self._update(t, msgs, [scale] * len(msgs), total, "memory", notes)
        return PGCMasterState(cache), replace(upd, used=tuple(sorted(m.worker for m in messages)))


class ISLateFold(PGCMemory):
    """IS-SGD placement (worker i owns partition i) with late results folded in (ablation)."""

    name = "is_latefold"

    def __init__(self, n: int, s: int, **kw) -> None:
        super().__init__(n, s, placement="cr", **kw)  # any n; placement replaced below
        self.B = np.eye(n)
        self.placement = tuple((i,) for i in range(n))

    def rotation(self, worker, t):
        return (worker,)

    def decode_batch(self, used):
        """On-time only: the arrived partitions, rescaled by ``n / arrivals``."""
        return rescaled_coverage(np.asarray(used, dtype=bool), 1)
