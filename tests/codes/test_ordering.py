"""Chunk orders: Qmax, the matching-based optimal order (brute force), assignments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes.ordering import (
    ChunkAssignment,
    circulant_adjacency,
    cyclic_assignment,
    graph_assignment,
    greedy_order,
    optimal_order,
    qmax,
    qmax_lower_bound,
    random_order,
)
from gradcode.codes.partial import PartialStragglerCode


def random_regular(m: int, delta: int, rng: np.random.Generator) -> np.ndarray:
    """A random square 0/1 matrix with all row and column sums ``delta``.

    Relabels rows and columns of a circulant support and then applies random
    2-switches (which preserve all degrees), so it is not always cyclic.
    """
    A = cyclic_assignment(m, delta).A.copy()
    A = A[rng.permutation(m)][:, rng.permutation(m)]
    for _ in range(20 * m):
        (i1, i2), (j1, j2) = rng.choice(m, 2, replace=False), rng.choice(m, 2, replace=False)
        if A[i1, j1] and A[i2, j2] and not A[i1, j2] and not A[i2, j1]:
            A[i1, j1] = A[i2, j2] = 0
            A[i1, j2] = A[i2, j1] = 1
    return A


def brute_force_min_qmax(A: np.ndarray) -> int:
    """Smallest Qmax over all (delta!)^m orders, vectorised over the product."""
    N, m = A.shape
    loads = A.sum(axis=0)
    sums = np.zeros((1, N), dtype=np.int64)
    for j in range(m):
        held = np.flatnonzero(A[:, j])
        options = []
        for perm in itertools.permutations(held):
            v = np.full(N, loads[j])
            v[list(perm)] = np.arange(len(perm))
            options.append(v)
        sums = (sums[:, None, :] + np.array(options)[None, :, :]).reshape(-1, N)
    return int(1 + sums.max(axis=1).min())


def brute_force_qmax_l(a: ChunkAssignment, l: int) -> int:
    """``1 +`` the most total finished work that leaves some chunk with < l holders."""
    code = PartialStragglerCode(a, l, np.ones((l, a.m)))
    worst = -1
    for progress in itertools.product(*[range(k + 1) for k in a.loads]):
        if not code.decodable(np.array(progress)):
            worst = max(worst, sum(progress))
    return worst + 1


SMALL = [(m, delta, kind) for m in (4, 5, 6) for delta in (2, 3) for kind in ("cyclic", "random")]


@pytest.mark.parametrize(("m", "delta", "kind"), SMALL)
def test_optimal_order_matches_brute_force_and_bound(m, delta, kind):
    rng = np.random.default_rng(m * 10 + delta)
    A = cyclic_assignment(m, delta).A if kind == "cyclic" else random_regular(m, delta, rng)
    best = brute_force_min_qmax(A)
    assert best == qmax_lower_bound(m, delta)
    opt = optimal_order(A)
    assert np.array_equal(opt.A, A)
    assert qmax(opt) == best
    # Every chunk appears exactly once at each position 1..delta.
    P = opt.positions()
    assert all(sorted(P[i][P[i] > 0].tolist()) == list(range(1, delta + 1)) for i in range(m))


@pytest.mark.parametrize("l", [1, 2, 3])
def test_qmax_l_formula_matches_brute_force(l):
    rng = np.random.default_rng(l)
    for a in (
        cyclic_assignment(5, 3),
        random_order(cyclic_assignment(5, 3).A, rng),
        random_order(random_regular(5, 3, rng), rng),
    ):
        assert qmax(a, l) == brute_force_qmax_l(a, l)
    assert qmax(cyclic_assignment(5, 3), 4) == float("inf")


@pytest.mark.parametrize("delta", [4, 5])
def test_optimal_order_reaches_bound_at_m20(delta):
    rng = np.random.default_rng(delta)
    bound = qmax_lower_bound(20, delta)
    graph = circulant_adjacency(20, (1, 10) if delta == 4 else (1, 2))
    for A in (graph_assignment(graph).A, random_regular(20, delta, rng)):
        assert qmax(optimal_order(A)) == bound
        rand = [qmax(random_order(A, rng)) for _ in range(20)]
        assert min(rand) >= bound and np.mean(rand) > bound
        greedy, q = greedy_order(A)
        assert q == qmax(greedy) >= bound
    assert qmax(cyclic_assignment(20, delta)) == bound  # natural cyclic order is optimal


@given(st.integers(3, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_property_optimal_order_is_optimal(m, delta, seed):
    delta = min(delta, m)
    A = random_regular(m, delta, np.random.default_rng(seed))
    assert qmax(optimal_order(A)) == qmax_lower_bound(m, delta)


def test_optimal_order_rejects_other_assignments():
    with pytest.raises(ValueError, match="square"):
        optimal_order(np.ones((3, 4), dtype=int))
    A = cyclic_assignment(5, 2).A.copy()
    A[0, 3] = 1  # one worker and one chunk now have degree 3
    with pytest.raises(ValueError, match="greedy_order"):
        optimal_order(A)
    greedy, q = greedy_order(A)  # the fallback still works and reports its Qmax
    assert q == qmax(greedy)


def test_assignments_and_validation():
    a = graph_assignment(circulant_adjacency(10, (1, 5)))
    assert a.delta == 4 and (a.loads == 4).all() and (a.replication == 4).all()
    assert a.order[0] == (0, 1, 5, 9)
    with pytest.raises(ValueError, match="regular"):
        G = circulant_adjacency(6, (1,))
        G[0, 3] = G[3, 0] = 1
        graph_assignment(G)
    with pytest.raises(ValueError, match="symmetric"):
        graph_assignment(np.triu(circulant_adjacency(6, (1,))))
    with pytest.raises(ValueError, match="non-zero"):
        circulant_adjacency(6, (6,))
    with pytest.raises(ValueError, match="0/1"):
        ChunkAssignment.natural(2 * np.eye(3))
    with pytest.raises(ValueError, match="no holder"):
        ChunkAssignment.natural(np.array([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="delta"):
        cyclic_assignment(4, 5)
    with pytest.raises(ValueError, match="l must"):
        qmax(cyclic_assignment(4, 2), 0)


def test_position_condition_is_sufficient_not_necessary():
    """The 'each chunk once at each position' condition is not necessary (m = delta = 4)."""
    A = np.ones((4, 4), dtype=int)
    a = ChunkAssignment(A, ((0, 2, 3, 1), (0, 2, 3, 1), (1, 3, 2, 0), (1, 3, 2, 0)))
    assert qmax(a) == qmax_lower_bound(4, 4) == 7
    P = a.positions()
    assert sorted(P[0].tolist()) != [1, 2, 3, 4]  # chunk 0 is first at two workers
    assert qmax(optimal_order(A)) == 7  # the matching order meets it too
