"""Gradient coding for partial stragglers (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

"Leveraging partial stragglers within gradient coding".

*Reconstruction.*  The paper body was not available to us; this module
implements the protocol from the paper's stated definitions (abstract,
problem statement and the specification in gradcode issue 4), so details
such as the choice of decoding matrix are ours and are justified below.

Model.  ``N`` chunks on ``m`` workers by a :class:`~gradcode.codes.ordering.ChunkAssignment`
(0/1 matrix ``A``, ``N x m``, plus a processing order per worker).  The
gradient of chunk ``i`` is ``g_i`` in ``R^d`` with ``d`` divisible by ``l``,
seen as ``l`` parts: ``G_i = g_i.reshape(l, d / l)``.  A worker may *fail*
(never reports) or be a *partial straggler* (finished only a prefix of its
list); ``progress[j]`` is the length of that prefix.  The coverage ``c_i`` is
the number of distinct workers that have finished chunk ``i``; ``H_i`` is the
set of those workers.

Exact protocol (reference transport, "V1").  Workers acknowledge each
finished chunk.  Once every ``c_i >= l`` the master takes a fixed ``l x m``
decoding matrix ``D`` and, per chunk, the encoding ``C_i = pinv(D[:, H_i])``
(``c_i x l``), so that ``D[:, H_i] C_i = I_l``.  Worker ``j`` returns one
vector of length ``d / l``,

    f_j = sum_{i : j in H_i} C_i[j, :] @ G_i,

and ``D @ [f_1; ...; f_m] = sum_i D[:, H_i] C_i G_i = sum_i G_i``: row ``k``
is part ``k`` of the full gradient.  Only ``l x c_i`` matrices are ever
(pseudo-)inverted, in float64; :attr:`PartialDecoding.cond` reports the worst
``cond(D[:, H_i])``.

Streaming transport ("V2").  Every finished chunk ``i`` at worker ``j``
immediately sends one coded piece ``y_ij = D[:, j] @ G_i`` (length ``d / l``);
the master solves the small ``c_i x l`` least-squares system
``D[:, H_i]^T G_i = Y_i`` per chunk and sums.

Approximate protocol.  At a deadline with some ``c_i < l`` the same formulas
give the least-squares estimate: ``D[:, H_i] pinv(D[:, H_i])`` is the
orthogonal projection ``P_i`` onto a ``c_i``-dimensional subspace of ``R^l``,
and both transports output ``sum_i P_i G_i``.  If the entries of the ``G_i``
are i.i.d. with zero mean (the isotropic model), ``E||(I - P_i) G_i||^2`` is a
``(l - c_i) / l`` share of ``E||G_i||^2``, so the normalised MSE is

    E||g_hat - g||^2 / E||g||^2 = sum_i max(0, l - c_i) / (N l).

Choice of ``D``: i.i.d. Gaussian (:func:`gaussian_decoding_matrix`).  Every
``l x c`` submatrix with ``c >= l`` then has full rank with probability 1,
and its condition number is typically ``O(l)`` with only a polynomial tail;
a real Vandermonde/Lagrange design instead has condition numbers growing
exponentially with ``l`` (see the ``ramamoorthy2024`` reproduction, panel d),
which is exactly the instability the protocol is meant to avoid.  Any ``D``
may be passed in; a rank-deficient ``D[:, H_i]`` is detected and reported.

Baseline ("original GC protocol", Tandon et al. 2017 for ``l = 1``, Ye and
Abbe 2018 for ``l > 1``): a worker reports only after finishing its whole
list and the code tolerates ``s = delta - l`` stragglers, so the exact
completion time is the ``(m - s)``-th smallest worker finishing time
(:func:`completion_time_original`).  Before that the master decodes a *fixed*
code by least squares on the finished workers: see
:mod:`gradcode.codes.partial_original` for the codes and their NMSE.

The 3-worker example: chunks ``D1, D2, D3``; ``W1`` holds ``(D1, D2)``, ``W2``
holds ``(D2, D3)``, ``W3`` holds ``(D3, D1)``.  ``W3`` failed and ``W1``
finished only ``D1``; the original protocol has one finished worker and is
stuck, the partial protocol decodes with ``l = 1``::

    >>> import numpy as np
    >>> from gradcode.codes.ordering import ChunkAssignment
    >>> A = ChunkAssignment(np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]]), ((0, 1), (1, 2), (2, 0)))
    >>> code = PartialStragglerCode(A, l=1, rng=np.random.default_rng(0))
    >>> progress = [1, 2, 0]
    >>> code.coverage(progress).tolist(), code.decodable(progress)
    ([1, 1, 1], True)
    >>> G = np.random.default_rng(1).standard_normal((3, 4))    # one row per chunk
    >>> dec = code.decode(progress)
    >>> bool(np.allclose(dec.combine(dec.messages(G)), G.sum(axis=0)))
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import EXACT_TOL
from .ordering import ChunkAssignment

__all__ = [
    "ChunkAssignment",
    "PartialDecoding",
    "PartialStragglerCode",
    "StreamDecoding",
    "completion_time_original",
    "completion_time_partial",
    "empirical_nmse",
    "gaussian_decoding_matrix",
    "nmse_formula",
    "nmse_partial",
]


def gaussian_decoding_matrix(l: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """An ``l x m`` decoding matrix with i.i.d. standard normal entries."""
    if not isinstance(l, (int, np.integer)) or not 1 <= l <= m:
        raise ValueError(f"l must be an integer with 1 <= l <= m={m}, got {l!r}")
    return rng.standard_normal((l, m))


def _pinv(M: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Pseudo-inverse, rank and effective condition number of a small matrix (SVD)."""
    U, sv, Vt = np.linalg.svd(M, full_matrices=False)
    if sv.size == 0 or sv[0] == 0:
        return np.zeros(M.T.shape), 0, float("inf")
    rank = int(np.sum(sv > sv[0] * max(M.shape) * np.finfo(float).eps))
    inv = Vt[:rank].T @ (U[:, :rank] / sv[:rank]).T
    return inv, rank, float(sv[0] / sv[rank - 1])


def nmse_formula(coverage: np.ndarray, l: int) -> np.ndarray:
    """``sum_i max(0, l - c_i) / (N l)`` over the last axis of ``coverage``."""
    c = np.asarray(coverage)
    return np.maximum(0, l - c).sum(axis=-1) / (c.shape[-1] * l)


@dataclass(frozen=True)
class PartialDecoding:
    """The master's decision for one progress pattern (reference transport V1).

    Attributes:
        D: the ``l x m`` decoding matrix.
        holders: ``holders[i]`` = ``H_i``, workers that finished chunk ``i``.
        encodings: ``encodings[i]`` = ``C_i = pinv(D[:, H_i])``, shape ``(c_i, l)``.
        exact: every ``D[:, H_i]`` has rank ``l`` and the residual is at round-off level.
        residual: ``sqrt(sum_i ||D[:, H_i] C_i - I_l||_F^2)``; for the isotropic
            model ``residual**2 / (N l)`` is the normalised MSE.
        cond: worst ``cond(D[:, H_i])`` over covered chunks (``inf`` if none).
        nmse: ``sum_i (l - rank D[:, H_i]) / (N l)``, the expected normalised MSE.
    """

    D: np.ndarray
    holders: tuple[tuple[int, ...], ...]
    encodings: tuple[np.ndarray, ...]
    exact: bool
    residual: float
    cond: float
    nmse: float

    @property
    def parts(self) -> int:
        """``l``, the number of parts the gradient is split into."""
        return self.D.shape[0]

    def _parts(self, grads: np.ndarray) -> np.ndarray:
        grads = np.asarray(grads, dtype=np.float64)
        if grads.ndim != 2 or grads.shape[0] != len(self.holders):
            raise ValueError(f"grads must have shape (N={len(self.holders)}, d), got {grads.shape}")
        if grads.shape[1] % self.parts:
            d = grads.shape[1]
            raise ValueError(f"gradient length d={d} is not divisible by l={self.parts}")
        return grads.reshape(grads.shape[0], self.parts, -1)

    def encode(self, worker: int, grads: np.ndarray) -> np.ndarray:
        """``f_j`` (length ``d / l``) from the chunk gradients ``grads`` (``N x d``).

        Only rows of chunks worker ``j`` finished are read.
        """
        G = self._parts(grads)
        out = np.zeros(G.shape[2])
        for i, H in enumerate(self.holders):
            if worker in H:
                out += self.encodings[i][H.index(worker)] @ G[i]
        return out

    def messages(self, grads: np.ndarray) -> np.ndarray:
        """All workers' ``f_j`` stacked, shape ``(m, d / l)`` (zero for idle workers)."""
        G = self._parts(grads)
        F = np.zeros((self.D.shape[1], G.shape[2]))
        for i, H in enumerate(self.holders):
            if H:
                F[list(H)] += self.encodings[i] @ G[i]
        return F

    def combine(self, messages: np.ndarray) -> np.ndarray:
        """The decoded full gradient ``(D @ F).reshape(-1)``, length ``d``."""
        F = np.asarray(messages, dtype=np.float64)
        if F.ndim != 2 or F.shape[0] != self.D.shape[1]:
            raise ValueError(f"messages must have shape (m={self.D.shape[1]}, d/l), got {F.shape}")
        return (self.D @ F).reshape(-1)


@dataclass(frozen=True)
class StreamDecoding:
    """Result of the streaming transport: the estimate and how good it is."""

    gradient: np.ndarray
    coverage: np.ndarray
    exact: bool
    cond: float
    nmse: float


class PartialStragglerCode:
    """The partial-straggler protocol for one assignment and split ``l``.

    Args:
        assignment: chunks, holders and processing orders.
        l: number of parts of the gradient (``1 <= l <= delta``); each chunk
            must be finished by ``l`` distinct workers.
        D: an ``l x m`` decoding matrix; if omitted one is drawn from ``rng``
            (:func:`gaussian_decoding_matrix`).
        rng: random generator, required when ``D`` is omitted.
    """

    def __init__(
        self,
        assignment: ChunkAssignment,
        l: int,
        D: np.ndarray | None = None,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not isinstance(assignment, ChunkAssignment):
            raise ValueError("assignment must be a ChunkAssignment")
        delta = assignment.delta
        if not isinstance(l, (int, np.integer)) or not 1 <= l <= delta:
            raise ValueError(
                f"l must be an integer with 1 <= l <= delta={delta} "
                f"(the smallest number of holders of a chunk), got {l!r}"
            )
        if D is None:
            if rng is None:
                raise ValueError("pass a decoding matrix D or a numpy Generator rng to draw one")
            D = gaussian_decoding_matrix(int(l), assignment.m, rng)
        D = np.array(D, dtype=np.float64)
        if D.shape != (l, assignment.m):
            raise ValueError(f"D must have shape (l={l}, m={assignment.m}), got {D.shape}")
        D.setflags(write=False)
        self.assignment = assignment
        self.l = int(l)
        self.D = D

    @property
    def N(self) -> int:
        return self.assignment.N

    @property
    def m(self) -> int:
        return self.assignment.m

    def _progress(self, progress: Sequence[int]) -> np.ndarray:
        p = np.asarray(progress)
        loads = self.assignment.loads
        if p.shape != (self.m,) or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(f"progress must be {self.m} integers (chunks finished per worker)")
        if (p < 0).any() or (p > loads).any():
            bad = np.flatnonzero((p < 0) | (p > loads)).tolist()
            raise ValueError(f"progress of workers {bad} outside 0..load ({loads[bad].tolist()})")
        return p

    def holders(self, progress: Sequence[int]) -> tuple[tuple[int, ...], ...]:
        """``H_i``: the workers whose finished prefix contains chunk ``i``."""
        p = self._progress(progress)
        H: list[list[int]] = [[] for _ in range(self.N)]
        for j, o in enumerate(self.assignment.order):
            for i in o[: p[j]]:
                H[i].append(j)
        return tuple(tuple(h) for h in H)

    def coverage(self, progress: Sequence[int]) -> np.ndarray:
        """``c_i``, shape ``(N,)``."""
        return np.array([len(h) for h in self.holders(progress)], dtype=np.int64)

    def decodable(self, progress: Sequence[int]) -> bool:
        """Every chunk finished by at least ``l`` distinct workers?"""
        return bool((self.coverage(progress) >= self.l).all())

    def decode(self, progress: Sequence[int]) -> PartialDecoding:
        """Encodings ``C_i = pinv(D[:, H_i])``: exact if possible, else least squares."""
        holders = self.holders(progress)
        encodings, conds, res2, missing = [], [], 0.0, 0
        eye = np.eye(self.l)
        for H in holders:
            if not H:
                encodings.append(np.zeros((0, self.l)))
                res2 += self.l
                missing += self.l
                continue
            DH = self.D[:, list(H)]
            C, rank, cond = _pinv(DH)
            encodings.append(C)
            conds.append(cond)
            res2 += float(np.sum((DH @ C - eye) ** 2))
            missing += self.l - rank
        residual = float(np.sqrt(res2))
        return PartialDecoding(
            D=self.D,
            holders=holders,
            encodings=tuple(encodings),
            exact=missing == 0 and residual <= EXACT_TOL * np.sqrt(self.N * self.l),
            residual=residual,
            cond=max(conds) if conds else float("inf"),
            nmse=missing / (self.N * self.l),
        )

    def decode_exact(self, progress: Sequence[int]) -> PartialDecoding:
        """Like :meth:`decode`, but raises ``ValueError`` unless the decode is exact."""
        dec = self.decode(progress)
        if not dec.exact:
            cov = np.array([len(h) for h in dec.holders])
            short = np.flatnonzero(cov < self.l).tolist()
            why = (
                f"chunks {short} have fewer than l={self.l} finished holders"
                if short
                else f"D[:, H_i] is rank deficient (worst cond {dec.cond:.3g})"
            )
            raise ValueError(f"not exactly decodable: {why}")
        return dec

    # --- streaming transport (V2) -------------------------------------------
    def piece(self, worker: int, chunk_grad: np.ndarray) -> np.ndarray:
        """Worker ``j``'s coded piece ``D[:, j] @ G_i`` (length ``d / l``) for a finished chunk."""
        g = np.asarray(chunk_grad, dtype=np.float64)
        if g.ndim != 1 or g.size % self.l:
            raise ValueError(f"chunk gradient must be 1-D with length divisible by l={self.l}")
        return self.D[:, worker] @ g.reshape(self.l, -1)

    def pieces(
        self, progress: Sequence[int], grads: np.ndarray
    ) -> dict[tuple[int, int], np.ndarray]:
        """All pieces ``(chunk, worker) -> y`` sent so far under ``progress``."""
        grads = np.asarray(grads, dtype=np.float64)
        return {
            (i, j): self.piece(j, grads[i]) for i, H in enumerate(self.holders(progress)) for j in H
        }

    def decode_streaming(self, pieces: Mapping[tuple[int, int], np.ndarray]) -> StreamDecoding:
        """Least-squares estimate of the full gradient from the received pieces."""
        by_chunk: list[list[int]] = [[] for _ in range(self.N)]
        width = None
        for i, j in pieces:
            if not (0 <= i < self.N and 0 <= j < self.m) or self.assignment.A[i, j] == 0:
                raise ValueError(f"piece (chunk {i}, worker {j}) is not in the assignment")
            by_chunk[i].append(j)
            width = np.asarray(pieces[(i, j)]).shape[-1]
        if width is None:
            raise ValueError("no pieces received")
        total = np.zeros((self.l, width))
        conds, missing = [], 0
        for i, H in enumerate(by_chunk):
            if not H:
                missing += self.l
                continue
            DH = self.D[:, H]
            Y = np.stack([np.asarray(pieces[(i, j)], dtype=np.float64) for j in H])
            P, rank, cond = _pinv(DH.T)  # (l, c): min-norm solution of DH^T G = Y
            total += P @ Y
            conds.append(cond)
            missing += self.l - rank
        return StreamDecoding(
            gradient=total.reshape(-1),
            coverage=np.array([len(h) for h in by_chunk]),
            exact=missing == 0,
            cond=max(conds) if conds else float("inf"),
            nmse=missing / (self.N * self.l),
        )

    def __repr__(self) -> str:
        return f"PartialStragglerCode(N={self.N}, m={self.m}, l={self.l})"


def empirical_nmse(
    code: PartialStragglerCode,
    progress: Sequence[int],
    rng: np.random.Generator,
    *,
    dim: int | None = None,
    trials: int = 200,
) -> float:
    """``mean ||g_hat - g||^2 / mean ||g||^2`` with i.i.d. Gaussian chunk gradients.

    Pushes real vectors through the V1 transport (encode, combine); compare
    with :attr:`PartialDecoding.nmse`, the isotropic-model formula.
    """
    dim = dim or 8 * code.l
    dec = code.decode(progress)
    err = norm = 0.0
    for _ in range(trials):
        G = rng.standard_normal((code.N, dim))
        truth = G.sum(axis=0)
        err += float(np.sum((dec.combine(dec.messages(G)) - truth) ** 2))
        norm += float(np.sum(truth**2))
    return err / norm


# --- vectorised timing model (for the simulator) ------------------------------
# ``times[t, j, p]`` = compute time of the chunk at position p of worker j in
# trial t (shape ``(trials, m, max_load)``; entries past a worker's load are
# ignored; a failed worker has ``inf``).  Finishing times are cumulative sums.


def _chunk_finish(assignment: ChunkAssignment, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-holder finishing times of every chunk, ``(trials, N, max_rep)`` padded with ``inf``,
    for the proposed protocol (chunk done) and the original one (whole list done)."""
    times = np.asarray(times, dtype=np.float64)
    loads = assignment.loads
    if times.ndim != 3 or times.shape[1] != assignment.m or times.shape[2] < loads.max():
        raise ValueError(
            f"times must have shape (trials, m={assignment.m}, max_load>={loads.max()}), "
            f"got {times.shape}"
        )
    if (times < 0).any() or np.isnan(times).any():
        raise ValueError("chunk compute times must be non-negative (inf for a failed worker)")
    F = np.cumsum(times, axis=-1)
    W = F[:, np.arange(assignment.m), loads - 1]  # (trials, m): worker finishing times
    rmax = int(assignment.replication.max())
    hj = np.zeros((assignment.N, rmax), dtype=np.int64)
    hp = np.zeros((assignment.N, rmax), dtype=np.int64)
    valid = np.zeros((assignment.N, rmax), dtype=bool)
    fill = np.zeros(assignment.N, dtype=np.int64)
    for j, o in enumerate(assignment.order):
        for p, i in enumerate(o):
            hj[i, fill[i]], hp[i, fill[i]], valid[i, fill[i]] = j, p, True
            fill[i] += 1
    chunk = np.where(valid, F[:, hj, hp], np.inf)
    whole = np.where(valid, W[:, hj], np.inf)
    return chunk, whole


def _check_l(assignment: ChunkAssignment, l: int) -> None:
    if not isinstance(l, (int, np.integer)) or not 1 <= l <= assignment.delta:
        raise ValueError(f"l must be an integer with 1 <= l <= delta={assignment.delta}, got {l!r}")


def completion_time_partial(assignment: ChunkAssignment, l: int, times: np.ndarray) -> np.ndarray:
    """Earliest time with every ``c_i(t) >= l``, per trial (``inf`` if never)."""
    _check_l(assignment, l)
    chunk, _ = _chunk_finish(assignment, times)
    return np.partition(chunk, l - 1, axis=-1)[..., l - 1].max(axis=-1)


def completion_time_original(assignment: ChunkAssignment, l: int, times: np.ndarray) -> np.ndarray:
    """The ``(m - s)``-th smallest worker finishing time, ``s = delta - l``, per trial."""
    _check_l(assignment, l)
    times = np.asarray(times, dtype=np.float64)
    _chunk_finish(assignment, times)  # validation
    F = np.cumsum(times, axis=-1)
    W = F[:, np.arange(assignment.m), assignment.loads - 1]
    s = assignment.delta - l
    return np.partition(W, assignment.m - s - 1, axis=-1)[..., assignment.m - s - 1]


def _nmse(finish: np.ndarray, l: int, deadlines: np.ndarray) -> np.ndarray:
    T = np.asarray(deadlines, dtype=np.float64)
    cov = (finish[..., None] <= T).sum(axis=2)  # (trials, N, len(T))
    return np.maximum(0, l - cov).sum(axis=1) / (finish.shape[1] * l)


def nmse_partial(
    assignment: ChunkAssignment, l: int, times: np.ndarray, deadlines: np.ndarray
) -> np.ndarray:
    """Normalised MSE of the least-squares estimate at each deadline, ``(trials, len(T))``.

    Uses ``sum_i max(0, l - c_i(T)) / (N l)`` (module docstring), partial work included.
    """
    _check_l(assignment, l)
    chunk, _ = _chunk_finish(assignment, times)
    return _nmse(chunk, l, deadlines)
