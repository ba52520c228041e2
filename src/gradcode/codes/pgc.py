"""Pipelined gradient coding (PGC): GC's straggler tolerance at IS-SGD's compute cost.

Gradient coding (Tandon et al., ICML 2017) makes every worker compute
``s + 1`` partition gradients per round so that any ``n - s`` messages
determine the full gradient.  PGC keeps GC's placement (each worker stores a
window of ``r = s + 1`` partitions) but lets each worker compute **one**
partition per round, in rotation, and send the sum of the latest gradients of
all ``r`` partitions it stores: one fresh, the others 1..s rounds old.

Placement and rotation (``n`` workers, ``n`` partitions):

* ``"frc"`` (needs ``r | n``): group ``g`` = workers ``gr .. gr+r-1`` store
  partitions ``gr .. gr+r-1``; in round ``t`` member ``l`` computes
  ``g r + ((l + t) mod r)``;
* ``"cr"``: worker ``i`` stores ``i .. i+s (mod n)`` and computes
  ``(i + (t mod r)) mod n``.

Either way each round's computation is a permutation of the partitions (every
partition computed exactly once, by one worker), and a worker's message holds
each of its partitions at a different age ``0 .. s``.  The message is the sum
of the ``r`` stored gradients, kept in the worker's one preallocated sum buffer.
With ``r <= 3`` it is re-summed from the stored gradients every round (``r - 1``
vector additions, no more than an update would cost).  With ``r >= 4`` it is a
*running sum*: the gradient being replaced is subtracted and the fresh one added
(two vector passes instead of ``r - 1``; ``bench/pgc_messages.py``: the 24 workers'
messages at s = 3, d = 110k went from 3.3 to 2.0-2.3 ms a round), and every ``r``-th
round -- after the warm-up, the filling rounds, a rejoin -- it is re-summed
exactly.  Between exact sums the message differs from the exact sum by rounding
only: at most about ``2 (r - 1)`` units in the last place of the largest
gradient stored meanwhile (``tests/codes/test_pgc_running_sum.py``: within
1e-12 relative in float64); after a gradient spike ``10^k`` times the others
that is ``10^k`` ulps of the others, for at most ``r - 1`` rounds after the
spike left the window (issue 13.7's running sum kept such an error for 100
rounds).  The message's vector *is* the buffer: valid until the worker's next
message.  A backend calls :meth:`PGC.release` just before a round's gradients
are computed, so the gradient being recomputed is freed (and, for a running
sum, subtracted) first: a worker holds its ``r`` gradients plus the buffer,
nothing more.

Pipeline start (``fill``, default ``2 s``).  Round 0 is a warm-up: every
worker computes all ``r`` of its partitions at ``w_0`` and the master decodes
the exact full gradient.  A steady-state message in round ``t`` mixes
gradients from ``w_{t-s} .. w_t``; on the first steps the gradient shrinks
fast, so the old parts dominate: with full sums from round 1 (on
breast_cancer/logreg, ``n = 12, s = 2, lr 0.5``) the round-1 update was 5.0x
the true gradient's norm at cosine 0.02.  So in rounds ``1 .. fill`` each
worker sends only what it computed this round, and the master adds the fresh
partitions (each computed by exactly one worker) and rescales by
``k / fresh`` when stragglers left some out: the IS-SGD estimate of
``g(w_t)``, exact when nobody straggles, at the same cost.  From round
``fill + 1`` messages are full sums again and every stored gradient is at most
``s`` rounds old.  Why ``2 s`` and not ``s``: after ``s`` exact steps the
first full sums still average in the large early gradients (breast_cancer:
norm ratio 1.50, cosine 0.84 around rounds 4-5); after ``2 s`` the transition
is smooth (ratio <= 1.36, cosine >= 0.94 in each of the first 12 rounds;
tests/codes/test_pgc_start.py).  The price: ``fill`` rounds at IS-SGD's
coverage when workers straggle.  Holding back only the ``w_0`` parts would keep
more coverage, but fresh-only is exact without stragglers and keeps the
decoder trivial.  ``fill = 0`` is the old start (full sums from round 1),
which is what the public reference script does and what ``pgc_reference``
keeps.

Decoding (estimate of ``sum_j g_j``; see :mod:`gradcode.codes.protocol`):

* FRC: average the on-time messages of each group, add the groups.  Every
  partition enters with weight exactly 1; with no stragglers the update is
  ``(1/r) sum_{a=0}^{s} sum_j g_j(w_{t-a})``, the mean of the last ``s + 1``
  full gradients.  A group with no on-time message uses its cached sum if that
  was received at most ``cache_cap`` rounds ago *and* its oldest gradient is at
  most ``staleness_cap`` rounds old, else it is omitted and the total is
  rescaled by ``groups / groups_used``.  Each fallback is reported.
* CR: average the complete *tiling classes* ``{c, c+r, c+2r, ...}`` (each
  covers every partition once; needs ``r | n``; ``<= s`` stragglers leave at
  least one complete); otherwise non-negative least squares ``min ||a B_K -
  1||, a >= 0`` with its residual reported.

Never Tandon's signed coefficients: with stale copies the ``+/-`` weights of
``crc`` would amplify the differences between gradients of different ages.

Staleness bound, precisely: no gradient older than ``staleness_cap`` rounds
(default ``s``) enters an update -- messages whose oldest gradient is older
are dropped, and so are cached sums.  A cached sum's oldest gradient is already
``s`` rounds old when it arrives, so at the defaults (``staleness_cap = s``,
``cache_cap = staleness_cap - s = 0``) the cache is never used and a group
with more than ``s`` stragglers is omitted and the rest rescaled;
``staleness_cap = 2 s`` allows cached sums up to ``s`` rounds old (staleness
``<= 2 s``).

Variants (:mod:`gradcode.codes.pgc_variants`): ``pgc_reference`` (CR placement, uniform decoder
``sum(messages) * n / ((n - s)(s + 1))`` and full sums from round 1, ``fill =
0``, as in the public reference script), ``pgc_memory`` (workers send only the fresh gradient; the
master keeps each partition's latest gradient, folds late results in, drops
those older than the cap), and ``is_latefold`` (IS-SGD placement with the same
late folding; an ablation).

Message vectors are whatever the runtime passes in (NumPy arrays or torch
tensors): only ``+``, ``*``, ``/`` and ``sum`` touch them; coefficients and
residuals are NumPy.

Example (n = 4, s = 1, FRC groups {0,1} {2,3})::

    >>> scheme = PGC(4, 1)
    >>> [scheme.compute_plan(scheme.init_worker(w), w, 0) for w in range(4)]   # warm-up
    [(0, 1), (0, 1), (2, 3), (2, 3)]
    >>> state = scheme.init_worker(0)
    >>> [scheme.rotation(w, 5) for w in range(4)]
    [(1,), (0,), (3,), (2,)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import accumulate, check_ns, cyclic_support, matrix_lines
from .frc import frc_matrix
from .protocol import Message, Update, sum_into, weighted_staleness


@dataclass(frozen=True)
class PGCWorkerState:
    """A PGC worker's memory: latest gradient and its round, per stored partition, and
    ``total``, the one buffer its ``r``-term message sums are written into (reused every
    round: a message's vector is valid until the worker's next message).  ``running``:
    rounds since ``total`` was last summed exactly while it holds the (running) sum of
    ``grads``; ``None`` when it does not (then the next message re-sums)."""

    grads: Mapping[int, np.ndarray]
    computed: Mapping[int, int]
    total: object = None
    running: int | None = None


@dataclass(frozen=True)
class PGCMasterState:
    """FRC: per group (last good sum, round received, its oldest gradient's round);
    memory variants: per partition (latest gradient, round computed)."""

    cache: Mapping[int, tuple]


def nnls(A: np.ndarray, b: np.ndarray, max_iter: int = 200) -> np.ndarray:
    """Lawson-Hanson non-negative least squares ``argmin_{x >= 0} ||A x - b||``."""
    m, n = A.shape
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        w = A.T @ (b - A @ x)
        if passive.all() or w[~passive].max(initial=-np.inf) <= 1e-12:
            break
        passive[np.argmax(np.where(passive, -np.inf, w))] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(A[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-12
    return x


class PGC:
    """Pipelined gradient coding (``placement="frc"`` default, or ``"cr"``)."""

    name = "pgc"
    stateful = True
    uses_late = False  # late messages are superseded by the worker's next one
    load = 1

    def __init__(
        self,
        n: int,
        s: int,
        placement: str = "frc",
        staleness_cap: int | None = None,
        cache_cap: int | None = None,
        stop: str = "count",
        fill: int | None = None,
    ) -> None:
        check_ns(n, s)
        self.n, self.s, self.k, self.r = n, s, n, s + 1
        if placement not in ("frc", "cr"):
            raise ValueError(f"placement must be 'frc' or 'cr', got {placement!r}")
        if stop not in ("count", "groups"):
            raise ValueError(f"stop must be 'count' (n-s arrivals) or 'groups', got {stop!r}")
        if stop == "groups" and placement != "frc":
            raise ValueError("stop='groups' needs the FRC placement")
        self.fill = 2 * s if fill is None else int(fill)
        if self.fill < 0:
            raise ValueError(f"fill must be >= 0 (rounds of fresh-only messages), got {fill}")
        self.placement_kind, self.stop = placement, stop
        self.B = frc_matrix(n, self.r) if placement == "frc" else cyclic_support(n, self.r)
        self.placement = tuple(tuple(int(j) for j in np.flatnonzero(row)) for row in self.B)
        self.staleness_cap = s if staleness_cap is None else int(staleness_cap)
        if self.staleness_cap < s:
            raise ValueError(f"staleness_cap must be >= s={s}, or no message is ever usable")
        self.cache_cap = self.staleness_cap - s if cache_cap is None else int(cache_cap)
        if self.cache_cap < 0:
            raise ValueError(f"cache_cap must be >= 0, got {self.cache_cap}")

    @property
    def staleness_profile(self) -> tuple[float, ...]:
        """Weight of the gradients ``a = 0 .. s`` rounds old in a steady-state update:
        the mean of the last ``s + 1`` gradients (see :mod:`gradcode.stability`)."""
        return (1.0 / self.r,) * self.r

    # --- worker side ----------------------------------------------------------------
    def rotation(self, worker: int, t: int) -> tuple[int, ...]:
        """The one partition ``worker`` computes in round ``t`` (steady state)."""
        r = self.r
        if self.placement_kind == "frc":
            g, l = divmod(worker, r)
            return (g * r + (l + t) % r,)
        return ((worker + t % r) % self.n,)

    def init_worker(self, worker: int) -> PGCWorkerState:
        return PGCWorkerState({}, {})

    def compute_plan(self, state: PGCWorkerState, worker: int, t: int) -> tuple[int, ...]:
        """One partition in rotation; all ``r`` stored ones (warm-up) when memory is
        empty or would still hold a gradient older than the cap after this round."""
        fresh = self.rotation(worker, t)
        rest = [state.computed.get(p) for p in self.placement[worker] if p not in fresh]
        if any(c is None or t - c > self.staleness_cap for c in rest):
            return self.placement[worker]
        return fresh

    def filling(self, t: int) -> bool:
        """Is round ``t`` one of the pipeline-filling rounds ``1 .. fill``?"""
        return 1 <= t <= self.fill

    def release(self, state: PGCWorkerState, worker: int, plan) -> PGCWorkerState:
        """Forget the stored gradients that this round's ``plan`` recomputes, so that
        their memory is free before the new ones are computed (a backend calls this
        just before computing ``plan``; :meth:`worker_message` stores the new ones)."""
        if not any(p in state.grads for p in plan):
            return state
        grads = {p: v for p, v in state.grads.items() if p not in plan}
        running = self._running(state, len(plan))
        if running is not None:  # keep the running sum: take the old gradients out of it
            for p in plan:
                if p in state.grads:
                    _subtract(state.total, state.grads[p])
        return PGCWorkerState(grads, state.computed, state.total, running)

    def _running(self, state: PGCWorkerState, fresh: int = 1) -> int | None:
        """``state.running`` when the next message, with ``fresh`` new gradients, may
        update the running sum (``2 fresh`` passes, fewer than re-summing's ``r - 1``),
        else ``None`` (no valid sum, an exact re-sum is due, or it would not be cheaper)."""
        running = getattr(state, "running", None)  # checkpoints written before it: None
        if running is None or running + 1 >= self.r or state.total is None:
            return None
        return running if 2 * fresh < self.r - 1 else None

    def worker_message(self, state: PGCWorkerState, worker: int, t: int, grads):
        g, c = dict(state.grads), dict(state.computed)
        for p, v in grads.items():
            g[p], c[p] = v, t
        if self.filling(t):  # only what was computed this round (see the module docstring)
            parts = tuple(sorted(grads))
            if len(parts) == 1:  # the fresh gradient itself: no copy
                vec, total = grads[parts[0]], state.total
            else:
                vec = total = sum_into(state.total, [grads[p] for p in parts])
            return PGCWorkerState(g, c, total), Message(worker, t, vec, parts, (t,) * len(parts))
        parts = self.placement[worker]
        running = self._running(state, len(grads))
        if running is not None and all(_fits(state.total, v) for v in grads.values()):
            total = state.total  # the running sum: old gradients out, fresh ones in
            for p, v in grads.items():
                if p in state.grads:  # not released by the backend (Ray): subtract here
                    _subtract(total, state.grads[p])
                _add(total, v)
            running += 1
        else:  # re-summed exactly, in place into the worker's one sum buffer
            total, running = sum_into(state.total, [g[p] for p in parts]), 0
        state = PGCWorkerState(g, c, total, running)
        return state, Message(worker, t, total, parts, tuple(c[p] for p in parts))

    # --- master side ----------------------------------------------------------------
    def init_master(self) -> PGCMasterState:
        return PGCMasterState({})

    def ready(self, arrived) -> bool:
        arrived = set(arrived)
        if self.stop == "groups":
            return len({w // self.r for w in arrived}) == self.n // self.r
        return len(arrived) >= self.n - self.s

    def completion_time(self, times):
        times = np.asarray(times)
        if self.stop == "groups":
            G = self.n // self.r
            return times.reshape(*times.shape[:-1], G, self.r).min(axis=-1).max(axis=-1)
        need = self.n - self.s
        return np.partition(times, need - 1, axis=-1)[..., need - 1]

    def master_update(self, state: PGCMasterState, t: int, messages: Sequence[Message], late=()):
        fresh = [m for m in messages if m.age(t) <= self.staleness_cap]
        notes = [
            f"dropped worker {m.worker}: age {m.age(t)} > cap {self.staleness_cap}"
            for m in messages
            if m.age(t) > self.staleness_cap
        ]
        if self.filling(t):
            return state, self._decode_filling(t, fresh, notes)
        if self.placement_kind == "frc":
            return self._decode_frc(state, t, fresh, notes)
        return state, self._decode_cr(t, fresh, notes)

    def _decode_filling(self, t, fresh, notes):
        """Rounds ``1 .. fill``: add disjoint fresh messages, rescale by ``k / covered``."""
        covered: set[int] = set()
        used = []
        for m in sorted(fresh, key=lambda m: (-len(m.partitions), m.worker)):
            if covered.isdisjoint(m.partitions):  # a rejoining worker's warm-up first
                covered.update(m.partitions)
                used.append(m)
        if not used:
            return self._update(t, [], [], None, "pgc-filling", notes + ["no usable message"])
        scale = self.k / len(covered)
        total = None
        for m in used:
            total = accumulate(total, m.vector, scale)
        if len(covered) < self.k:
            notes.append(
                f"pipeline filling: {self.k - len(covered)} partition(s) missing, "
                f"rescaled by {scale:.4g}"
            )
        return self._update(t, used, [scale] * len(used), total, "pgc-filling", notes)

    def _decode_frc(self, state, t, fresh, notes):
        r, G = self.r, self.n // self.r
        cache = dict(state.cache)
        keep = self.cache_cap > 0  # at cache_cap = 0 (the default) a cached sum is never used
        used_msgs, weights, total, groups_used = [], [], None, 0
        vecs = []  # (vector, weight) of what enters, accumulated in place below
        for g in range(G):
            members = [m for m in fresh if m.worker // r == g]
            if members:
                if keep:
                    vec = None
                    for m in members:
                        vec = accumulate(vec, m.vector, 1.0 / len(members))
                    cache[g] = (vec, t, min(m.oldest for m in members))
                    vecs.append((vec, 1.0))
                else:
                    vecs += [(m.vector, 1.0 / len(members)) for m in members]
                used_msgs += members
                weights += [1.0 / len(members)] * len(members)
            elif (
                g in cache
                and t - cache[g][1] <= self.cache_cap
                and t - cache[g][2] <= self.staleness_cap
            ):
                vec, received, oldest = cache[g]
                notes.append(f"group {g}: cached sum from round {received}")
                parts = tuple(range(g * r, (g + 1) * r))
                used_msgs.append(Message(-1, received, vec, parts, (oldest,) * r))
                weights.append(1.0)
                vecs.append((vec, 1.0))
            else:
                notes.append(f"group {g}: omitted (no message within cap)")
                continue
            groups_used += 1
        scale = G / groups_used if groups_used else 0.0
        for vec, w in vecs:  # one output vector, one fused pass per message
            total = accumulate(total, vec, w * scale)
        if groups_used and groups_used < G:
            notes.append(f"rescaled by {scale:.4g} for {G - groups_used} omitted group(s)")
            weights = [w * scale for w in weights]
        upd = self._update(t, used_msgs, weights, total, "pgc-frc-average", notes)
        return PGCMasterState(cache), upd

    def _decode_cr(self, t, fresh, notes):
        r, n = self.r, self.n
        by_worker = {m.worker: m for m in fresh}
        if n % r == 0:
            classes = [list(range(c, n, r)) for c in range(r)]
            complete = [cl for cl in classes if all(w in by_worker for w in cl)]
            if complete:
                msgs = [by_worker[w] for cl in complete for w in cl]
                wts = [1.0 / len(complete)] * len(msgs)
                total = weighted_sum(msgs, wts)
                return self._update(t, msgs, wts, total, "pgc-cr-tiling", notes)
        msgs = sorted(by_worker.values(), key=lambda m: m.worker)
        if not msgs:
            return self._update(t, [], [], None, "pgc-cr-nnls", notes + ["no usable message"])
        a = nnls(self.B[[m.worker for m in msgs]].T, np.ones(self.k))
        notes.append("no complete tiling class: non-negative least squares")
        total = weighted_sum(msgs, a)
        return self._update(t, msgs, list(a), total, "pgc-cr-nnls", notes)

    def _update(self, t, msgs, weights, total, decoder, notes) -> Update:
        pw, smax, smean = weighted_staleness(t, msgs, weights, self.k)
        residual = float(np.linalg.norm(pw - 1.0))
        covered = residual <= 1e-9
        return Update(
            gradient=total,
            used=tuple(sorted({m.worker for m in msgs if m.worker >= 0})),
            exact=covered and smax == 0,
            covered=covered,
            residual=residual,
            staleness_max=smax,
            staleness_mean=smean,
            decoder=decoder,
            partition_weights=pw,
            fallbacks=tuple(notes),
        )

    # --- simulator hook: coverage of each arrival pattern ------------------------------
    def decode_batch(self, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(covered, residual)`` per round, without caches or staleness (on-time only;
        the steady state: the filling rounds ``1 .. fill`` are not modelled)."""
        used = np.asarray(used, dtype=bool)
        if self.placement_kind == "frc":
            return rescaled_coverage(used.reshape(len(used), -1, self.r).any(axis=2), self.r)
        patterns, inverse = np.unique(used, axis=0, return_inverse=True)
        per = np.empty(len(patterns))  # one NNLS per distinct arrival pattern
        for i, row in enumerate(patterns):
            K = np.flatnonzero(row)
            a = nnls(self.B[K].T, np.ones(self.k)) if K.size else np.zeros(0)
            per[i] = np.linalg.norm(a @ self.B[K] - 1.0) if K.size else np.sqrt(self.k)
        out = per[inverse.ravel()]
        return out <= 1e-9, out

    def describe(self) -> list[str]:
        """Placement and per-round rotation, for ``gradcode codes show``."""
        r = self.s + 1
        return [
            f"{self.name}  n={self.n}  s={self.s}  partitions k={self.k}",
            "placement (row = worker, column = partition stored):",
            *matrix_lines(self.B),
            f"partition computed in round t (steady state, rounds 0..{r - 1}):",
            *(
                f"  worker {w:>3}: {[self.rotation(w, t)[0] for t in range(r)]}"
                for w in range(self.n)
            ),
            f"load: 1 partition per worker per round ({len(self.placement[0])} in the warm-up); "
            f"staleness cap {self.staleness_cap} rounds",
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, s={self.s}, placement={self.placement_kind!r})"


def _fits(total, v) -> bool:
    """Can ``v`` be added into ``total`` in place (same kind, shape and dtype)?"""
    return (
        type(total) is type(v)
        and total.shape == v.shape
        and total.dtype == v.dtype
        and getattr(total, "device", None) == getattr(v, "device", None)
    )


def _add(total, v) -> None:
    if isinstance(total, np.ndarray):
        np.add(total, v, out=total)
    else:
        total.add_(v)


def _subtract(total, v) -> None:
    if isinstance(total, np.ndarray):
        np.subtract(total, v, out=total)
    else:
        total.sub_(v)


def weighted_sum(msgs, weights):
    """``sum_m w_m m.vector`` into one new vector (in-place accumulation)."""
    total = None
    for m, w in zip(msgs, weights, strict=True):
        total = accumulate(total, m.vector, w)
    return total


def rescaled_coverage(cov: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(exact, residual)`` when the covered blocks of ``size`` partitions each enter with
    weight ``blocks / covered`` and the others with 0 (``cov``: rounds x blocks, bool)."""
    n_cov = cov.sum(axis=1)
    scale = np.divide(cov.shape[1], n_cov, out=np.zeros(len(cov)), where=n_cov > 0)
    res = np.sqrt(size * (n_cov * (scale - 1.0) ** 2 + (cov.shape[1] - n_cov)))
    return res <= 1e-9, res
