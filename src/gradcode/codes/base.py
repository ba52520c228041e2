"""The one small protocol every gradient-coding scheme implements.

Notation (Tandon, Lei, Dimakis, Karampatziakis, "Gradient Coding", ICML 2017):
``n`` workers, ``k`` data partitions (``k == n`` for every scheme here), and an
encoding matrix ``B`` of shape ``(n, k)``.  Worker ``i`` stores the partitions
in the support of row ``B[i]`` (its *placement*), computes their partial
gradients ``g_j`` and sends the single vector ``m_i = sum_j B[i, j] g_j``.
When the workers in ``K`` have arrived, the master finds weights ``a`` (zero
outside ``K``) and outputs ``sum_i a_i m_i = (a B) G``.  The output is the
exact full gradient ``sum_j g_j`` iff ``a B = 1``; the *residual*
``||a B - 1||_2`` measures how far an approximate decode is from it.

Tiny example (the 3-worker code of Tandon et al., Fig. 1)::

    >>> import numpy as np
    >>> from gradcode.codes import LinearCode
    >>> code = LinearCode(np.array([[.5, 1, 0], [0, 1, -1], [.5, 0, 1]]), s=1)
    >>> d = code.decode([1, 2])            # worker 0 straggles
    >>> np.round(d.weights, 12).tolist(), d.exact
    ([0.0, 1.0, 2.0], True)

Every scheme is a subclass of :class:`GradientCode`.  The pieces are:

* ``placement[i]``: the partitions worker ``i`` stores, in processing order;
* ``work(i, t)``: the partitions worker ``i`` computes in round ``t``;
* ``coefficients(i)`` / ``encode(i, grads)``: worker ``i``'s message;
* ``ready(arrived)``: may the master stop waiting with these arrivals?
* ``decode(arrived)`` -> :class:`Decoding` (weights, ``exact``, residual,
  conditioning), cached per arrival pattern.

Codes are immutable apart from the decode cache, hold no I/O and import no
engine: the simulator and the runtime drive the very same objects.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass
from typing import ClassVar

import numpy as np

#: Relative residual below which a decode counts as exact (float64 arithmetic).
EXACT_TOL = 1e-8


@dataclass(frozen=True)
class Decoding:
    """The master's decision for one set of arrived workers.

    Attributes:
        weights: ``a``, shape ``(n,)``; zero for workers not used.
        used: the workers whose messages enter the output (``a_i`` may still be 0).
        exact: ``True`` iff ``||a B - 1|| <= EXACT_TOL * sqrt(k)``.
        residual: ``||a B - 1||_2``.
        cond: effective condition number of ``B_K`` (rows of the used
            workers, columns restricted to the partitions they cover): the
            ratio of its largest to its smallest *non-zero* singular value,
            which bounds the float error of the least-squares decoder
            (duplicate rows, as in FRC, do not make it infinite).  Pass a
            number, or a zero-argument callable that computes it: it is then
            evaluated on first access only (an ``O(n^3)`` SVD that the
            null-space decoder does not otherwise need) and remembered.
        max_abs_weight: ``max |a_i|``; large values amplify float error.
    """

    weights: np.ndarray
    used: tuple[int, ...]
    exact: bool
    residual: float
    cond: InitVar[float | Callable[[], float]]
    max_abs_weight: float

    def __post_init__(self, cond) -> None:
        # Plain Python scalars: readable reprs and JSON-serialisable logs.
        object.__setattr__(self, "exact", bool(self.exact))
        for field in ("residual", "max_abs_weight"):
            object.__setattr__(self, field, float(getattr(self, field)))
        object.__setattr__(self, "_cond", cond if callable(cond) else float(cond))

    def combine(self, messages) -> np.ndarray:
        """Output ``sum_i a_i m_i``.

        ``messages`` is either an ``(n, d)`` array (rows of absent workers are
        ignored) or a mapping ``worker -> message``.  Messages may be numpy
        arrays (combined in float64) or torch tensors (accumulated in place,
        in the messages' dtype and on their device); workers with ``a_i == 0``
        are skipped.
        """
        if isinstance(messages, dict):
            missing = [i for i in self.used if i not in messages]
            if missing:
                raise KeyError(f"no message from used workers {missing}")
            if not self.used:
                raise ValueError("nothing to combine: no worker was used")
            out = None
            for i in self.used:
                a = float(self.weights[i])
                if a == 0.0 and out is not None:
                    continue
                out = accumulate(out, messages[i], a)
            return out
        idx = list(self.used)
        if _is_tensor(messages):
            a = messages.new_tensor(self.weights[idx])
            return a @ messages[idx]
        messages = np.asarray(messages)
        return self.weights[idx] @ messages[idx]


def accumulate(out, v, a: float = 1.0):
    """``out + a v``, in place when ``out`` is given; ``out=None`` starts a new vector.

    Torch tensors accumulate in their own dtype and device with one fused pass
    (``out.add_(v, alpha=a)``: no ``a v`` temporary); numpy arrays in float64
    (``np.result_type(v, float64)``).  ``v`` itself is never modified, and the
    first call always copies, so ``out`` never aliases a message.

    >>> import numpy as np
    >>> out = accumulate(None, np.ones(2), 2.0)
    >>> accumulate(out, np.arange(2.0), -1.0).tolist()
    [2.0, 1.0]
    """
    a = float(a)
    if _is_tensor(v):
        if out is None:
            return v * a if a != 1.0 else v.clone()
        return out.add_(v, alpha=a) if a != 1.0 else out.add_(v)
    v = np.asarray(v)
    if out is None:
        return np.multiply(v, a, dtype=np.result_type(v, np.float64))
    if a == 1.0:
        out += v
    else:
        out += a * v
    return out


def _lazy_cond(self: Decoding) -> float:
    if callable(self._cond):
        object.__setattr__(self, "_cond", float(self._cond()))
    return self._cond


# Set after the dataclass is built, so ``cond`` stays a positional InitVar of ``__init__``.
Decoding.cond = property(_lazy_cond, doc="Effective ``cond(B_K)``, computed on first access.")


def _is_tensor(x) -> bool:
    """A torch tensor (checked by type, so this module never imports torch)."""
    return type(x).__module__.startswith("torch")


def residual_of(weights: np.ndarray, B: np.ndarray) -> float:
    """``||a B - 1||_2``."""
    return float(np.linalg.norm(weights @ B - 1.0))


def lstsq_decoding(B: np.ndarray, used: Sequence[int]) -> Decoding:
    """Optimal decoder: ``a = argmin ||a B_K - 1||_2`` (minimum-norm solution).

    This is the decoder of Glasgow & Wootters ("Approximate gradient coding
    with optimal decoding", IEEE JSAIT 2021) and, when ``1`` lies in the row
    space of ``B_K``, the exact decoder of Tandon et al.  It works for any
    ``B``.  Solved through the SVD, which also yields ``cond(B_K)``.
    """
    n, k = B.shape
    used = tuple(int(i) for i in used)
    weights = np.zeros(n)
    if not used:
        return Decoding(weights, used, False, float(np.sqrt(k)), np.inf, 0.0)
    BK = B[list(used)]
    # a B_K = 1  <=>  B_K^T a^T = 1.  Solve with the pseudo-inverse via SVD.
    U, sv, Vt = np.linalg.svd(BK.T, full_matrices=False)
    tol = sv[0] * max(BK.shape) * np.finfo(float).eps if sv.size else 0.0
    rank = int(np.sum(sv > tol))
    inv = np.zeros_like(sv)
    inv[:rank] = 1.0 / sv[:rank]
    ones = np.ones(k)
    a = Vt.T @ (inv * (U.T @ ones))
    # Two steps of iterative refinement: for ill-conditioned B_K (random CRC
    # reaches cond ~ 1e7 at n = 10) this takes the residual from ~1e-9 to
    # round-off level at the cost of four mat-vecs per cache miss.
    for _ in range(2):
        a = a + Vt.T @ (inv * (U.T @ (ones - BK.T @ a)))
    weights[list(used)] = a
    res = residual_of(weights, B)
    # Zero columns add no singular values, so cond(B_K) on the covered
    # partitions is read off the same SVD.
    cond = float(sv[0] / sv[rank - 1]) if rank else np.inf
    return Decoding(
        weights=weights,
        used=used,
        exact=res <= EXACT_TOL * np.sqrt(k),
        residual=res,
        cond=cond,
        max_abs_weight=float(np.max(np.abs(a))),
    )


def effective_cond(M: np.ndarray) -> float:
    """Largest over smallest non-zero singular value of ``M`` (``inf`` if ``M == 0``)."""
    sv = np.linalg.svd(M, compute_uv=False)
    if sv.size == 0 or sv[0] == 0:
        return float("inf")
    sv = sv[sv > sv[0] * max(M.shape) * np.finfo(float).eps]
    return float(sv[0] / sv[-1])


class GradientCode:
    """Base class: a scheme defined by its encoding matrix ``B`` (n x k).

    Subclasses set ``name``, build ``B`` in ``__init__`` and may override
    :meth:`ready` (when the master can stop waiting) and :meth:`_decode`
    (a closed-form decoder instead of least squares).
    """

    name: ClassVar[str] = "linear"
    #: Does the scheme promise exact recovery from any ``n - s`` workers?
    exact_design: ClassVar[bool] = True
    #: Memory budget of the per-pattern decode cache.  An entry (frozenset key,
    #: weights, used tuple) takes about ``64 n + 1024`` bytes, so the entry
    #: count adapts to ``n``: ~100k at n = 24, ~4k at n = 1000.  A fixed count
    #: (formerly 8192) thrashed at n = 48 already, making warm passes as slow as cold.
    cache_bytes: ClassVar[int] = 256 * 2**20

    def __init__(self, B: np.ndarray, s: int) -> None:
        B = np.array(B, dtype=float)
        if B.ndim != 2 or B.shape[0] < 1:
            raise ValueError(f"B must be a non-empty 2-D matrix, got shape {B.shape}")
        n = B.shape[0]
        check_ns(n, s)
        B.setflags(write=False)
        self.B = B
        self.n = n
        self.s = int(s)
        self.placement: tuple[tuple[int, ...], ...] = tuple(
            tuple(int(j) for j in np.flatnonzero(B[i])) for i in range(n)
        )
        self._cache: OrderedDict[frozenset, Decoding] = OrderedDict()
        #: Patterns the LRU cache holds (from :attr:`cache_bytes`).
        self.cache_size = max(1024, self.cache_bytes // (64 * n + 1024))

    # --- placement and work -------------------------------------------------
    @property
    def k(self) -> int:
        """Number of data partitions."""
        return self.B.shape[1]

    @property
    def load(self) -> int:
        """Partitions computed per worker per round (the computation load)."""
        return max(len(p) for p in self.placement)

    def work(self, worker: int, round: int = 0) -> tuple[int, ...]:
        """Partitions worker ``worker`` computes in round ``round`` (GC: all it stores)."""
        return self.placement[worker]

    def coefficients(self, worker: int) -> np.ndarray:
        """Encoding coefficients over ``placement[worker]``."""
        return self.B[worker, list(self.placement[worker])]

    def encode(self, worker: int, partial_grads: np.ndarray) -> np.ndarray:
        """Worker message from its partial gradients, one row per ``placement[worker]``."""
        partial_grads = np.asarray(partial_grads)
        return self.coefficients(worker).astype(partial_grads.dtype) @ partial_grads

    # --- master side --------------------------------------------------------
    def ready(self, arrived: Sequence[int]) -> bool:
        """May the master stop waiting once these workers have arrived?"""
        return len(set(arrived)) >= self.n - self.s

    def decode(self, arrived: Sequence[int]) -> Decoding:
        """Decode from the workers in ``arrived`` (any order, duplicates ignored).

        Results are cached per arrival pattern (a ``frozenset`` key, LRU of
        :attr:`cache_size` entries), so a pattern seen before costs one hash
        and one dictionary lookup.
        """
        key = frozenset(arrived)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        workers = sorted(map(int, key))
        if workers and not (0 <= workers[0] and workers[-1] < self.n):
            bad = [i for i in workers if not 0 <= i < self.n]
            raise ValueError(f"worker ids {bad} out of range 0..{self.n - 1}")
        dec = self._decode(workers)
        self._cache[key] = dec
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return dec

    def _decode(self, workers: list[int]) -> Decoding:
        return lstsq_decoding(self.B, workers)

    # --- vectorised hooks for the simulator ------------------------------------
    def completion_time(self, times: np.ndarray) -> np.ndarray:
        """Earliest time :meth:`ready` holds, given arrival times ``(..., n)``.

        ``inf`` entries are workers that never arrive; the result is ``inf``
        where the master would wait forever.  The default is the rule
        "``n - s`` arrivals": the ``(n - s)``-th order statistic.
        """
        need = self.n - self.s
        return np.partition(times, need - 1, axis=-1)[..., need - 1]

    def decode_batch(self, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(exact, residual)`` for each row of a boolean ``(rounds, n)`` mask.

        Each distinct pattern is decoded once (through the cache); subclasses
        override this with closed forms.
        """
        return batch_by_pattern(self, used)

    def describe(self) -> list[str]:
        """What ``gradcode codes show`` prints about the code: sizes, ``B``, load, tolerance.

        >>> from gradcode.codes import make_code
        >>> make_code("frc", 4, 1).describe()[-2:]
        ['load: 2 partitions per worker; replication 2', 'tolerance: 1 stragglers, exact by design']
        """
        replication = int(np.max(np.count_nonzero(self.B, axis=0)))
        design = "exact by design" if self.exact_design else "approximate by design"
        return [
            f"{self.name}  n={self.n}  s={self.s}  partitions k={self.k}",
            "encoding matrix B (row = worker, column = partition):",
            *matrix_lines(self.B),
            f"load: {self.load} partitions per worker; replication {replication}",
            f"tolerance: {self.s} stragglers, {design}",
        ]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, s={self.s})"


def matrix_lines(M: np.ndarray) -> list[str]:
    """``M`` as ``gradcode codes show`` prints it (3 decimals, up to 160 columns a line).

    >>> matrix_lines(np.eye(2) / 3)
    ['[[0.333 0.   ]', ' [0.    0.333]]']
    """
    with np.printoptions(precision=3, suppress=True, linewidth=160):
        return str(M).splitlines()


class LinearCode(GradientCode):
    """Any user-supplied encoding matrix ``B``, decoded by least squares."""

    name = "linear"


def check_ns(n: int, s: int) -> None:
    """Validate worker count and straggler tolerance with a clear message."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of workers n must be a positive integer, got {n!r}")
    if not isinstance(s, (int, np.integer)) or not 0 <= s < n:
        raise ValueError(f"stragglers s must be an integer with 0 <= s < n={n}, got {s!r}")


def cyclic_support(n: int, width: int) -> np.ndarray:
    """0/1 matrix whose row ``i`` covers partitions ``i, i+1, ..., i+width-1 (mod n)``."""
    S = np.zeros((n, n))
    for i in range(n):
        S[i, (i + np.arange(width)) % n] = 1.0
    return S


def pattern_ids(used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a boolean ``(R, n)`` mask: ``(unique_rows, inverse)``."""
    used = np.asarray(used, dtype=bool)
    n = used.shape[1]
    packed = np.packbits(used, axis=1)
    if packed.shape[1] <= 8:  # one uint64 key per row: much faster to sort than bytes
        wide = np.zeros((len(packed), 8), dtype=np.uint8)
        wide[:, : packed.shape[1]] = packed
        uniq, inverse = np.unique(wide.view(np.uint64).ravel(), return_inverse=True)
        rows = np.unpackbits(uniq.view(np.uint8).reshape(-1, 8), axis=1)[:, :n]
        return rows.astype(bool), inverse.ravel()
    packed = np.ascontiguousarray(packed)
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return used[first], inverse.ravel()


def batch_by_pattern(code: GradientCode, used: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(exact, residual)`` per row of a boolean arrival mask, decoding each distinct
    pattern once through ``code.decode`` (the generic :meth:`GradientCode.decode_batch`)."""
    rows, inverse = pattern_ids(used)
    exact = np.empty(len(rows), dtype=bool)
    residual = np.empty(len(rows))
    for j, row in enumerate(rows):
        d = code.decode(np.flatnonzero(row).tolist())
        exact[j], residual[j] = d.exact, d.residual
    return exact[inverse], residual[inverse]


def mds_batch(
    code: GradientCode, used: np.ndarray, rest: Callable | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Batch decode for codes exact from ANY ``n - s`` workers (crc, cyclic_mds).

    Rows with at least ``n - s`` workers are exact by the code's design (and
    the exhaustive tests); only the others are decoded, by ``rest(used)``
    (default: pattern by pattern through the cache).
    """
    used = np.asarray(used, dtype=bool)
    enough = used.sum(axis=1) >= code.n - code.s
    exact = enough.copy()
    residual = np.zeros(len(used))
    if (~enough).any():
        e, r = (rest or (lambda u: batch_by_pattern(code, u)))(used[~enough])
        exact[~enough], residual[~enough] = e, r
    return exact, residual
