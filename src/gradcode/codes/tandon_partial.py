"""Gradient coding for partial stragglers with two messages per round (Tandon et al.).

Tandon, Lei, Dimakis, Karampatziakis, "Gradient Coding: Avoiding Stragglers in
Distributed Learning", ICML 2017, the partial-straggler extension: workers
that are slower by a bounded factor, not dead, still contribute.

Construction (``n`` workers, ``s`` stragglers, ``p`` pieces per worker, ``p >= s + 2``):

* the data is split into ``(p - s) n`` equal *pieces*; pieces
  ``0 .. n (p - s - 1) - 1`` are *unique* (worker ``w`` owns
  ``w (p - s - 1) .. (w + 1)(p - s - 1) - 1``), the last ``n`` are *shared*;
* worker ``w`` processes its ``p - s - 1`` unique pieces first, then ``s + 1``
  shared ones chosen by an ordinary gradient code over the ``n`` shared pieces
  (``variant="cyclic"``: Tandon's cyclic-repetition ``B``, Algorithm 2;
  ``variant="replication"``: fractional repetition, groups of ``s + 1``);
* it sends **message 1**, the plain sum of its unique gradients, as soon as
  they are done, and **message 2**, the coded combination ``B[w] @ shared``,
  once its whole list is done;
* the master needs message 1 from **all** ``n`` workers and message 2 from any
  ``n - s`` (cyclic) or one per group (replication), and outputs
  ``sum_w msg1_w + sum_w a_w msg2_w``, the exact full gradient.

Slowdown tolerated.  With one time unit per piece (the backends scale a
piece's time by :attr:`TandonPartial.chunk_load` ``= 1 / (p - s)``, its share of
a GC partition), a normal worker finishes at
``p``.  A worker slowed by ``kappa`` sends message 1 at ``kappa (p - s - 1)``,
which is no later than ``p`` iff ``kappa <= p / (p - s - 1)``; so with at most
``s`` such workers (their messages 2 are not needed) the round still ends at
``p``, and a slower worker delays it (tested).  ``p = 2 (s + 1)`` (the default)
tolerates a 2x slowdown.

Protocol (gradcode's chunked protocol, like :mod:`~gradcode.codes.partial_scheme`):
``placement[w]`` lists the worker's pieces in processing order and
``chunk_message`` gives the payload of one finished piece (its gradient times
its coefficient).  The payloads are linear, so message 1 is the sum of the
payloads of the unique segment and message 2 that of the shared segment:
:meth:`TandonPartial.segments` names the two segments and
:meth:`TandonPartial.segment_message` builds the two real messages.  A
backend may send either (one message per piece, as the local backend does,
or one per segment, Tandon's transport); :meth:`master_update` accepts both
and uses a segment only once all of its pieces have arrived, so both decode
the same gradient at the same time.

Backend contract (what the local backend does and a Ray backend must do):
worker ``w`` computes ``placement[w]`` in order, each piece taking
``chunk_load`` times a unit chunk's time, and sends ``chunk_message`` per
piece (or, to use Tandon's two-message transport, the sum of those payloads
at each position of :meth:`message_ends` as one message whose
``partitions`` are the pieces it covers: :meth:`segment_message`, or
:func:`gradcode.comm.segment_messages` for any chunked scheme); the
master records the ``(piece, worker)`` pairs of every message received,
stops once :meth:`ready` holds (or at a deadline; a dead worker's stream
just ends), and calls :meth:`master_update` with the messages.  Late
messages are not used (``uses_late = False``).

Example (n = 3, s = 1, p = 3: 6 pieces, one unique per worker)::

    >>> import numpy as np
    >>> sch = TandonPartial(3, 1, p=3, variant="cyclic", rng=np.random.default_rng(0))
    >>> sch.placement[0], sch.segments(0)
    ((0, 3, 4), ((0,), (3, 4)))
    >>> T = np.ones((1, 3, 3)); T[0, 2] = 1.5        # worker 2 is 1.5x = p/(p-s-1) slower
    >>> float(sch.chunk_completion_time(T)[0])        # still p = 3
    3.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import GradientCode, check_ns
from .crc import CRC
from .frc import FRC
from .protocol import Message, Update

VARIANTS = ("cyclic", "replication")


class TandonPartial:
    """Tandon et al.'s partial-straggler scheme: unique part uncoded, shared part coded."""

    name = "tandon_partial"
    stateful = False
    chunked = True
    uses_late = False

    def __init__(
        self,
        n: int,
        s: int,
        p: int | None = None,
        variant: str = "cyclic",
        rng: np.random.Generator | None = None,
    ) -> None:
        check_ns(n, s)
        p = 2 * (s + 1) if p is None else p
        if not isinstance(p, (int, np.integer)) or p < s + 2:
            raise ValueError(
                f"pieces per worker p must be an integer >= s + 2 = {s + 2} "
                f"(p - s - 1 unique pieces plus s + 1 shared), got {p!r}"
            )
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        self.n, self.s, self.p, self.variant = n, s, int(p), variant
        self.unique = self.p - s - 1  # unique pieces per worker
        self.k = n * (self.p - s)  # pieces = data partitions
        rng = np.random.default_rng(0) if rng is None else rng
        self.inner: GradientCode = CRC(n, s, rng=rng) if variant == "cyclic" else FRC(n, s)
        base = n * self.unique
        self.placement = tuple(
            tuple(range(w * self.unique, (w + 1) * self.unique))
            + tuple(base + j for j in self.inner.placement[w])
            for w in range(n)
        )
        self.load = self.p
        #: A piece is ``1 / (p - s)`` of a GC partition (``n`` partitions = the data), so
        #: backends scale its compute time by this; the whole list is ``p / (p - s)``.
        self.chunk_load = 1.0 / (self.p - s)
        B = np.zeros((n, self.k))
        for w in range(n):
            B[w, list(self.placement[w][: self.unique])] = 1.0
            B[w, base:] = self.inner.B[w]
        B.setflags(write=False)
        self.B = B  # coefficient of every piece in worker w's two messages together
        self._owner = {c: w for w in range(n) for c in self.placement[w][: self.unique]}

    @property
    def tolerated_slowdown(self) -> float:
        """``p / (p - s - 1)``: the slowdown of up to ``s`` workers that costs no time."""
        return self.p / self.unique

    # --- worker side -------------------------------------------------------------
    def init_worker(self, worker: int):
        return None

    def compute_plan(self, state, worker: int, t: int) -> tuple[int, ...]:
        """Unique pieces first, then the shared ones."""
        return self.placement[worker]

    def segments(self, worker: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The pieces behind message 1 (unique) and message 2 (shared)."""
        plan = self.placement[worker]
        return plan[: self.unique], plan[self.unique :]

    def message_ends(self, worker: int) -> tuple[tuple[int, float], ...]:
        """``(position, size)`` of each message: after piece ``p - s - 1`` and after piece ``p``.

        Positions are 0-based indices into ``placement[worker]``; sizes are in
        units of one gradient (``d`` numbers).
        """
        return ((self.unique - 1, 1.0), (self.p - 1, 1.0))

    def coefficient(self, worker: int, chunk: int) -> float:
        """The weight of piece ``chunk`` in worker ``worker``'s messages."""
        c = float(self.B[worker, chunk])
        if c == 0.0 and chunk not in self.placement[worker]:
            raise ValueError(f"worker {worker} does not hold piece {chunk}")
        return c

    def chunk_message(self, worker: int, t: int, chunk: int, grad) -> Message:
        """Payload of one finished piece: its gradient times its coefficient (NumPy or torch)."""
        return Message(worker, t, grad * self.coefficient(worker, chunk), (chunk,), (t,))

    def segment_message(self, worker: int, t: int, segment: int, grads) -> Message:
        """Message 1 (``segment=0``) or 2 (``segment=1``) from the segment's piece gradients.

        ``grads`` maps each piece of the segment to its gradient.  The payload
        is the sum of the pieces' :meth:`chunk_message` payloads.
        """
        chunks = self.segments(worker)[segment]
        total = None
        for c in chunks:
            term = grads[c] * self.coefficient(worker, c)
            total = term if total is None else total + term
        return Message(worker, t, total, chunks, (t,) * len(chunks))

    # --- master side -------------------------------------------------------------
    def init_master(self):
        return None

    def _complete(self, pieces: set[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
        """Per worker: has every piece of message 1 / message 2 arrived?"""
        m1 = np.zeros(self.n, dtype=bool)
        m2 = np.zeros(self.n, dtype=bool)
        for w in range(self.n):
            uniq, shared = self.segments(w)
            m1[w] = all((c, w) in pieces for c in uniq)
            m2[w] = all((c, w) in pieces for c in shared)
        return m1, m2

    def ready(self, arrived_chunks: Sequence[tuple[int, int]]) -> bool:
        """``arrived_chunks``: (piece, worker) pairs received so far."""
        m1, m2 = self._complete(set(arrived_chunks))
        return bool(m1.all()) and self.inner.ready(np.flatnonzero(m2).tolist())

    def chunk_completion_time(self, times: np.ndarray) -> np.ndarray:
        """Earliest time :meth:`ready` holds; ``times`` is ``(trials, n, p)`` per-piece times.

        Only the ends of the two segments matter: ``max(max_w end1_w, inner
        completion over end2)``.  Times may also be per-piece *arrival*
        increments (see :func:`gradcode.sim.simulate_chunked`).
        """
        times = np.asarray(times, dtype=np.float64)
        if times.ndim != 3 or times.shape[1:] != (self.n, self.p):
            raise ValueError(f"times must have shape (trials, n={self.n}, p={self.p})")
        F = np.cumsum(times, axis=-1)
        first = F[..., self.unique - 1].max(axis=-1)
        second = self.inner.completion_time(F[..., self.p - 1])
        return np.maximum(first, second)

    def decode_chunks_batch(self, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(exact, residual)`` per row of a boolean ``(rounds, n, p)`` piece-arrival mask."""
        done = np.asarray(done, dtype=bool)
        m1 = done[..., : self.unique].all(axis=-1)
        m2 = done[..., self.unique :].all(axis=-1)
        exact2, res2 = self.inner.decode_batch(m2)
        missing = (~m1).sum(axis=-1) * self.unique
        return exact2 & m1.all(axis=-1), np.sqrt(res2**2 + missing)

    def master_update(self, state, t: int, messages: Sequence[Message], late=()):
        """Sum of the messages 1, plus the inner code's decode of the messages 2."""
        pieces: set[tuple[int, int]] = set()
        sums: dict[tuple[int, int], object] = {}  # (worker, segment) -> summed payload
        for m in messages:
            seg = self._segment_of(m)
            pieces.update((c, m.worker) for c in m.partitions)
            key = (m.worker, seg)
            sums[key] = m.vector if key not in sums else sums[key] + m.vector
        m1, m2 = self._complete(pieces)
        dec = self.inner.decode(np.flatnonzero(m2).tolist())
        total = None
        for w in np.flatnonzero(m1):
            v = sums[(int(w), 0)]
            total = v if total is None else total + v
        for w in dec.used:
            a = float(dec.weights[w])
            if a != 0.0:
                v = sums[(w, 1)] * a
                total = v if total is None else total + v
        pw = np.zeros(self.k)
        for w in np.flatnonzero(m1):
            pw[list(self.segments(int(w))[0])] = 1.0
        pw[self.n * self.unique :] = dec.weights @ self.inner.B
        exact = bool(m1.all()) and dec.exact
        notes = []
        if not m1.all():
            notes.append(f"message 1 missing from workers {np.flatnonzero(~m1).tolist()}")
        if not dec.exact:
            notes.append(f"shared part approximate (inner residual {dec.residual:.3g})")
        used = sorted(set(np.flatnonzero(m1).tolist()) | set(dec.used))
        return state, Update(
            gradient=total,
            used=tuple(int(w) for w in used),
            exact=exact,
            covered=exact,
            residual=float(np.linalg.norm(pw - 1.0)),
            staleness_max=0,
            staleness_mean=0.0,
            decoder="tandon-partial",
            partition_weights=pw,
            fallbacks=tuple(notes),
            stats={"cond": dec.cond, "messages1": int(m1.sum()), "messages2": int(m2.sum())},
        )

    def _segment_of(self, m: Message) -> int:
        uniq, shared = self.segments(m.worker)
        parts = set(m.partitions)
        if parts <= set(uniq):
            return 0
        if parts <= set(shared):
            return 1
        raise ValueError(
            f"message from worker {m.worker} mixes pieces {sorted(parts)} of both segments"
        )

    def describe(self) -> list[str]:
        """Human-readable lines for ``gradcode codes show``."""
        lines = [
            f"tandon_partial ({self.variant})  n={self.n}  s={self.s}  p={self.p}  "
            f"pieces k={self.k} = (p - s) n",
            "processing order (unique pieces | shared pieces):",
        ]
        for w in range(self.n):
            u, sh = self.segments(w)
            lines.append(f"  worker {w:>3}: {list(u)} | {list(sh)}")
        lines.append(
            f"two messages per round; tolerates up to s={self.s} workers "
            f"{self.tolerated_slowdown:.3g}x slower (p / (p - s - 1)) at no cost"
        )
        return lines

    def __repr__(self) -> str:
        return f"TandonPartial(n={self.n}, s={self.s}, p={self.p}, variant={self.variant!r})"
