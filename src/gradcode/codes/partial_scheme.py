"""The partial-straggler protocol as a training scheme (streaming transport).

Wraps :class:`~gradcode.codes.partial.PartialStragglerCode` (Ramamoorthy,
Meng, Girimaji, NeurIPS 2024; reconstruction, see that module) in the round
protocol of :mod:`gradcode.codes.protocol`, so the runtime trains with it.

* ``n`` workers, ``N = n`` chunks (= data partitions), cyclic assignment with
  ``delta = s + l`` copies per chunk, processed in the optimal order
  (:func:`~gradcode.codes.ordering.optimal_order`; the cyclic order already
  meets the Qmax bound);
* each worker works through its list and *streams* one coded piece
  ``D[:, j] @ G_i`` (length ``d / l``) per finished chunk -- partial work of
  slow workers counts;
* the master stops once every chunk has pieces from ``l`` distinct workers
  (or at a deadline) and solves one small ``l x l`` system per chunk.

The gradient is zero-padded to a multiple of ``l``.  The scheme is
*chunked*: backends hand it per-chunk arrival times
(``chunk_completion_time``) instead of one time per worker.

Example::

    >>> import numpy as np
    >>> sch = PartialScheme(4, 1, l=1, rng=np.random.default_rng(0))
    >>> sch.compute_plan(None, 0, 0)            # worker 0's chunks, in order
    (0, 1)
    >>> T = np.array([[[1., 1.], [5., 5.], [1., 1.], [9., 9.]]])   # (trials, workers, chunks)
    >>> float(sch.chunk_completion_time(T)[0])   # every chunk finished once by t = 2
    2.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import check_ns
from .ordering import cyclic_assignment, optimal_order, qmax, qmax_lower_bound
from .partial import PartialStragglerCode, completion_time_partial
from .protocol import Message, Update


class PartialScheme:
    """Partial-straggler gradient coding with streamed per-chunk pieces."""

    name = "partial"
    stateful = False
    chunked = True
    uses_late = False

    def __init__(self, n: int, s: int, l: int = 1, rng: np.random.Generator | None = None) -> None:
        check_ns(n, s)
        if not isinstance(l, (int, np.integer)) or l < 1 or s + l > n:
            raise ValueError(f"l must be an integer >= 1 with s + l <= n={n}, got l={l!r}")
        self.n, self.s, self.k, self.l = n, s, n, int(l)
        self.delta = s + self.l
        assignment = optimal_order(cyclic_assignment(n, self.delta).A)
        rng = np.random.default_rng(0) if rng is None else rng
        self.code = PartialStragglerCode(assignment, self.l, rng=rng)
        self.assignment = assignment
        self.placement = tuple(tuple(o) for o in assignment.order)
        self.load = self.delta
        B = np.zeros((n, n))
        for j, o in enumerate(self.placement):
            B[j, list(o)] = 1.0
        self.B = B

    # --- worker side -------------------------------------------------------------
    def init_worker(self, worker: int):
        return None

    def compute_plan(self, state, worker: int, t: int) -> tuple[int, ...]:
        """All of the worker's chunks, in processing order (it may finish only a prefix)."""
        return self.placement[worker]

    def chunk_message(self, worker: int, t: int, chunk: int, grad) -> Message:
        """The coded piece ``sum_k D[k, j] G_i[k]`` for one finished chunk.

        Plain ``+`` and ``*`` on slices, so NumPy arrays and torch tensors both
        work (a length not divisible by ``l`` is zero-padded through NumPy).
        """
        pad = (-grad.shape[0]) % self.l
        if pad:
            grad = np.concatenate([np.asarray(grad, dtype=np.float64), np.zeros(pad)])
        width = grad.shape[0] // self.l
        col = self.code.D[:, worker]
        vec = grad[:width] * float(col[0])
        for k in range(1, self.l):
            vec = vec + grad[k * width : (k + 1) * width] * float(col[k])
        return Message(worker, t, vec, (chunk,), (t,))

    def message_ends(self, worker: int) -> tuple[tuple[int, float], ...]:
        """One message of ``1/l`` gradient after every chunk (streaming transport)."""
        return tuple((pos, 1.0 / self.l) for pos in range(len(self.placement[worker])))

    # --- master side -------------------------------------------------------------
    def init_master(self):
        return None

    def chunk_completion_time(self, times: np.ndarray) -> np.ndarray:
        """Earliest time every chunk has ``l`` finished holders; ``times`` is (trials, n, delta)."""
        return completion_time_partial(self.assignment, self.l, times)

    def decode_chunks_batch(self, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(exact, residual)`` per row of a boolean ``(rounds, n, delta)`` chunk-arrival mask.

        ``residual = ||min(c_i, l) / l - 1||`` over chunks, as in :meth:`master_update`.
        """
        done = np.asarray(done, dtype=bool)
        cov = np.zeros(done.shape[:-2] + (self.k,))
        for j, order in enumerate(self.placement):
            for pos, i in enumerate(order):
                cov[..., i] += done[..., j, pos]
        pw = np.minimum(cov, self.l) / self.l
        return (cov >= self.l).all(axis=-1), np.linalg.norm(pw - 1.0, axis=-1)

    def ready(self, arrived_chunks: Sequence[tuple[int, int]]) -> bool:
        """``arrived_chunks``: (chunk, worker) pairs received so far."""
        cov = np.zeros(self.k, dtype=int)
        for i, _ in set(arrived_chunks):
            cov[i] += 1
        return bool((cov >= self.l).all())

    def master_update(self, state, t: int, messages: Sequence[Message], late=()):
        pieces = {(m.partitions[0], m.worker): m.vector for m in messages}
        if not pieces:
            return state, Update(
                None,
                (),
                False,
                False,
                float(np.sqrt(self.k)),
                0,
                0.0,
                "partial-stream",
                np.zeros(self.k),
                ("no pieces",),
            )
        dec = self.code.decode_streaming(pieces)
        cov = dec.coverage
        pw = np.minimum(cov, self.l) / self.l  # share of each chunk's parts recovered
        notes = () if dec.exact else (f"approximate: normalised MSE {dec.nmse:.3g}",)
        return state, Update(
            gradient=dec.gradient,
            used=tuple(sorted({m.worker for m in messages})),
            exact=dec.exact,
            covered=dec.exact,
            residual=float(np.linalg.norm(pw - 1.0)),
            staleness_max=0,
            staleness_mean=0.0,
            decoder="partial-stream",
            partition_weights=pw,
            fallbacks=notes,
            stats={"cond": dec.cond, "nmse": dec.nmse},
        )

    def describe(self) -> list[str]:
        """Processing orders, load and ``Qmax``, for ``gradcode codes show``."""
        line = (
            f"load: {self.load} chunks per worker per round; Qmax {qmax(self.assignment, self.l):g}"
        )
        if self.l == 1:
            line += f" (lower bound {qmax_lower_bound(self.n, self.delta)})"
        return [
            f"{self.name}  n={self.n}  s={self.s}  l={self.l}  delta={self.delta}  "
            f"chunks N={self.k}",
            "processing order (row = worker, chunks in the order it computes them):",
            *(f"  worker {w:>3}: {list(order)}" for w, order in enumerate(self.placement)),
            line,
        ]

    def __repr__(self) -> str:
        return f"PartialScheme(n={self.n}, s={self.s}, l={self.l})"
