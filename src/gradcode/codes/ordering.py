"""Chunk assignments and processing orders for the partial-straggler protocol.

Setting (Ramamoorthy, Meng, Girimaji, "Leveraging partial stragglers within
gradient coding", NeurIPS 2024; reconstructed from the paper's stated
definitions, see :mod:`gradcode.codes.partial`).  ``N`` data chunks are
placed on ``m`` workers by a 0/1 matrix ``A`` (``N x m``, ``A[i, j] = 1`` iff
worker ``j`` holds chunk ``i``); each worker processes its chunks one at a
time in a fixed *order*.  A partial straggler has finished only a prefix of
its list, so the order decides which chunks are covered early.

The metric ``Qmax``.  Count progress by the total number of chunk
computations finished across the cluster.  Chunk ``i`` is still uncovered
while every holder ``j`` is before position ``pos_j(i)`` (1-based) of its
list, so the most total work that can leave ``i`` uncovered is

    sum_{j not holding i} load_j + sum_{j holding i} (pos_j(i) - 1),

and ``Qmax = 1 + max_i`` of it: *any* ``Qmax`` finished chunk computations,
however spread over the workers, cover every chunk at least once.

The ``l``-copy generalisation (used when the gradient is split into ``l``
parts and each chunk must be covered ``l`` times): chunk ``i`` has fewer than
``l`` finished holders as long as at most ``l - 1`` holders are past it; the
adversary lets the ``l - 1`` holders with the most remaining work
``load_j - pos_j(i) + 1`` run to the end, so

    Qmax_l = 1 + max_i [ sum_{j not holding i} load_j
                         + sum_{j holding i} (pos_j(i) - 1)
                         + (sum of the l - 1 largest load_j - pos_j(i) + 1 over holders) ].

``Qmax_1 = Qmax``; ``Qmax_l`` is infinite if a chunk has fewer than ``l`` holders.

Optimal order (``N = m``, every row and column of ``A`` sums to ``delta``).
Averaging the bracket over chunks gives the lower bound
``Qmax >= 1 + (m - delta) delta + delta (delta - 1) / 2``, met with equality
if every chunk sits at each position ``1..delta`` exactly once.  That is
sufficient, not necessary: with ``m = delta = 4`` (every worker holds every
chunk) the orders ``(0,2,3,1), (0,2,3,1), (1,3,2,0), (1,3,2,0)`` also reach
the bound 7 although chunk 0 is first twice (tested).  The
worker-chunk bipartite graph is ``delta``-regular, so by Koenig's theorem it
splits into ``delta`` perfect matchings; matching ``k`` fixes position ``k``
of every worker.  The cyclic assignment in its natural order is already
optimal (chunk ``i`` is first at worker ``i``, second at ``i - 1``, ...).

Example::

    >>> A = graph_assignment(circulant_adjacency(6, (1,)))   # ring + identity
    >>> A.order[0], qmax(A), qmax_lower_bound(6, 3)
    ((0, 1, 5), 16, 13)
    >>> opt = optimal_order(A.A)
    >>> qmax(opt) == qmax_lower_bound(6, 3)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkAssignment:
    """Which worker holds which chunk, and in what order it processes them.

    Attributes:
        A: ``(N, m)`` 0/1 matrix, ``A[i, j] = 1`` iff worker ``j`` holds chunk ``i``.
        order: ``order[j]`` = the chunks of worker ``j`` in processing order
            (a permutation of the support of column ``j``).
    """

    A: np.ndarray
    order: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        A = np.array(self.A)
        if A.ndim != 2 or A.size == 0:
            raise ValueError(f"assignment A must be a non-empty N x m matrix, got shape {A.shape}")
        if not np.isin(A, (0, 1)).all():
            raise ValueError("assignment A must be 0/1 (chunk i on worker j iff A[i, j] = 1)")
        A = A.astype(np.int64)
        A.setflags(write=False)
        N, m = A.shape
        order = tuple(tuple(int(i) for i in o) for o in self.order)
        if len(order) != m:
            raise ValueError(f"order must list the chunks of each of the m={m} workers")
        for j, o in enumerate(order):
            held = sorted(np.flatnonzero(A[:, j]).tolist())
            if sorted(o) != held:
                raise ValueError(
                    f"order[{j}]={o} is not a permutation of worker {j}'s chunks {tuple(held)}"
                )
        if (A.sum(axis=1) == 0).any():
            raise ValueError(f"chunks {np.flatnonzero(A.sum(axis=1) == 0).tolist()} have no holder")
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "order", order)

    @classmethod
    def natural(cls, A: np.ndarray) -> ChunkAssignment:
        """Each worker processes its chunks in increasing index order."""
        A = np.asarray(A)
        if A.ndim != 2:
            raise ValueError(f"assignment A must be a 2-D matrix, got shape {A.shape}")
        return cls(A, tuple(tuple(np.flatnonzero(A[:, j]).tolist()) for j in range(A.shape[1])))

    @property
    def N(self) -> int:
        """Number of chunks."""
        return self.A.shape[0]

    @property
    def m(self) -> int:
        """Number of workers."""
        return self.A.shape[1]

    @property
    def loads(self) -> np.ndarray:
        """Chunks per worker, shape ``(m,)``."""
        return self.A.sum(axis=0)

    @property
    def replication(self) -> np.ndarray:
        """Holders per chunk, shape ``(N,)``."""
        return self.A.sum(axis=1)

    @property
    def delta(self) -> int:
        """The smallest replication: any ``l <= delta`` is decodable in principle."""
        return int(self.replication.min())

    def positions(self) -> np.ndarray:
        """``P[i, j]`` = 1-based position of chunk ``i`` in worker ``j``'s list, 0 if not held."""
        P = np.zeros((self.N, self.m), dtype=np.int64)
        for j, o in enumerate(self.order):
            P[list(o), j] = np.arange(1, len(o) + 1)
        return P


def qmax(assignment: ChunkAssignment, l: int = 1) -> float:
    """``Qmax_l`` of an assignment with its order (module docstring); ``inf`` if undecodable."""
    if l < 1:
        raise ValueError(f"l must be a positive integer, got {l}")
    P = assignment.positions()
    loads = assignment.loads
    held = P > 0
    base = np.where(held, P - 1, loads[None, :]).sum(axis=1)  # (N,)
    if l == 1:
        return int(1 + base.max())
    if assignment.replication.min() < l:
        return float("inf")
    remaining = np.where(held, loads[None, :] - P + 1, 0)
    top = -np.sort(-remaining, axis=1)[:, : l - 1].sum(axis=1)
    return int(1 + (base + top).max())


def qmax_lower_bound(m: int, delta: int) -> int:
    """Best ``Qmax`` (``N = m``, regular ``A``): ``1 + (m - delta) delta + delta (delta - 1)/2``."""
    return int(1 + (m - delta) * delta + delta * (delta - 1) // 2)


def _regular_degree(A: np.ndarray) -> int:
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.isin(A, (0, 1)).all():
        raise ValueError(
            f"optimal_order needs a square 0/1 assignment (N = m), got shape {A.shape}; "
            "use greedy_order for other assignments"
        )
    rows, cols = A.sum(axis=1), A.sum(axis=0)
    delta = int(rows[0])
    if delta < 1 or (rows != delta).any() or (cols != delta).any():
        raise ValueError(
            "optimal_order needs every row and column of A to sum to the same delta >= 1 "
            f"(row sums {sorted(set(rows.tolist()))}, column sums {sorted(set(cols.tolist()))}); "
            "use greedy_order for other assignments"
        )
    return delta


def optimal_order(A: np.ndarray) -> ChunkAssignment:
    """Order meeting :func:`qmax_lower_bound` for a square ``delta``-regular 0/1 ``A``.

    Repeatedly takes a perfect matching of the remaining (still regular)
    bipartite chunk-worker graph with SciPy's Hopcroft-Karp
    (``scipy.sparse.csgraph.maximum_bipartite_matching``, imported lazily:
    SciPy is not a core dependency of gradcode); the ``k``-th matching
    gives every worker its ``k``-th chunk.  Raises ``ValueError`` outside this
    class of assignments (use :func:`greedy_order`).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching

    delta = _regular_degree(A)
    R = np.array(A, dtype=np.int64)  # remaining edges
    m = R.shape[1]
    order: list[list[int]] = [[] for _ in range(m)]
    for _ in range(delta):
        # match[j] = chunk matched to worker j (columns of R are workers).
        match = maximum_bipartite_matching(csr_matrix(R.T), perm_type="column")
        if (match < 0).any():  # pragma: no cover - Koenig's theorem forbids this
            raise RuntimeError("regular bipartite graph without a perfect matching")
        for j in range(m):
            order[j].append(int(match[j]))
            R[match[j], j] = 0
    return ChunkAssignment(np.asarray(A), tuple(tuple(o) for o in order))


def greedy_order(A: np.ndarray) -> tuple[ChunkAssignment, int]:
    """A heuristic order for any assignment, and its ``Qmax``.

    Fills positions ``1, 2, ...`` in turn; at each position every worker (in
    index order) takes, among its unplaced chunks, the one whose bracket in
    the ``Qmax`` formula is smallest so far.  On square regular assignments
    it is often, not always, optimal; :func:`optimal_order` always is.
    """
    A = np.asarray(A)
    if A.ndim != 2 or not np.isin(A, (0, 1)).all():
        raise ValueError(f"assignment A must be a 0/1 N x m matrix, got shape {A.shape}")
    N, m = A.shape
    loads = A.sum(axis=0)
    # bracket_i = sum over non-holders of load + sum over holders of (pos - 1)
    bracket = ((1 - A) * loads[None, :]).sum(axis=1).astype(np.int64)
    left = [set(np.flatnonzero(A[:, j]).tolist()) for j in range(m)]
    order: list[list[int]] = [[] for _ in range(m)]
    for p in range(int(loads.max(initial=0))):
        for j in range(m):
            if not left[j]:
                continue
            i = min(left[j], key=lambda c: (bracket[c], c))
            left[j].remove(i)
            order[j].append(i)
            bracket[i] += p
    assignment = ChunkAssignment(A, tuple(tuple(o) for o in order))
    return assignment, int(qmax(assignment))


def random_order(A: np.ndarray, rng: np.random.Generator) -> ChunkAssignment:
    """Each worker processes its chunks in an independent uniformly random order."""
    A = np.asarray(A)
    if A.ndim != 2:
        raise ValueError(f"assignment A must be a 2-D matrix, got shape {A.shape}")
    return ChunkAssignment(
        A,
        tuple(tuple(rng.permutation(np.flatnonzero(A[:, j])).tolist()) for j in range(A.shape[1])),
    )


def cyclic_assignment(m: int, delta: int) -> ChunkAssignment:
    """``N = m``; worker ``j`` processes chunks ``j, j+1, ..., j+delta-1 (mod m)`` in that order.

    This natural order meets :func:`qmax_lower_bound`.
    """
    if not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"number of workers m must be a positive integer, got {m!r}")
    if not isinstance(delta, (int, np.integer)) or not 1 <= delta <= m:
        raise ValueError(f"delta must be an integer with 1 <= delta <= m={m}, got {delta!r}")
    order = tuple(tuple(int((j + k) % m) for k in range(delta)) for j in range(m))
    A = np.zeros((m, m), dtype=np.int64)
    for j, o in enumerate(order):
        A[list(o), j] = 1
    return ChunkAssignment(A, order)


def circulant_adjacency(m: int, offsets: Sequence[int]) -> np.ndarray:
    """Adjacency matrix of the circulant graph on ``Z_m`` joining ``v`` and ``v +- o``.

    Degree ``2 |offsets|``, minus one for an offset ``m / 2``.  For a
    ``(delta - 1)``-regular graph with odd ``delta - 1`` include ``m // 2``
    (``m`` even), e.g. ``offsets=(1, m // 2)`` is the Moebius ladder.
    """
    if not isinstance(m, (int, np.integer)) or m < 3:
        raise ValueError(f"circulant graph needs m >= 3 vertices, got {m!r}")
    offs = {int(o) % m for o in offsets}
    if not offs or 0 in offs:
        raise ValueError(f"offsets must be non-empty and non-zero mod m={m}, got {tuple(offsets)}")
    G = np.zeros((m, m), dtype=np.int64)
    v = np.arange(m)
    for o in offs:
        G[v, (v + o) % m] = 1
        G[(v + o) % m, v] = 1
    return G


def graph_assignment(adjacency: np.ndarray) -> ChunkAssignment:
    """``A = adjacency + I`` of a simple ``(delta - 1)``-regular graph, natural order.

    Worker ``j`` holds its own chunk ``j`` and its neighbours' chunks, so
    every row and column sums to ``delta``.
    """
    G = np.asarray(adjacency)
    if G.ndim != 2 or G.shape[0] != G.shape[1]:
        raise ValueError(f"adjacency must be a square matrix, got shape {G.shape}")
    if not np.isin(G, (0, 1)).all() or (G != G.T).any() or np.diag(G).any():
        raise ValueError("adjacency must be a symmetric 0/1 matrix with zero diagonal")
    deg = G.sum(axis=1)
    if (deg != deg[0]).any():
        raise ValueError(f"graph must be regular, got degrees {sorted(set(deg.tolist()))}")
    return ChunkAssignment.natural(G + np.eye(G.shape[0], dtype=np.int64))
