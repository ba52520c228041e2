"""The partial-straggler protocol: exactness, detection, least squares, timing model."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes.ordering import (
    ChunkAssignment,
    circulant_adjacency,
    cyclic_assignment,
    graph_assignment,
    optimal_order,
    random_order,
)
from gradcode.codes.partial import (
    PartialStragglerCode,
    completion_time_original,
    completion_time_partial,
    empirical_nmse,
    nmse_formula,
    nmse_partial,
)
from gradcode.codes.partial_original import FixedCode, nmse_original, worker_finish

THREE = ChunkAssignment(np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]]), ((0, 1), (1, 2), (2, 0)))


def assignments() -> dict[str, ChunkAssignment]:
    ring = graph_assignment(circulant_adjacency(8, (1, 4)))  # Moebius ladder + I, delta 4
    return {
        "cyclic6x3": cyclic_assignment(6, 3),
        "moebius8x4": ring,
        "moebius8x4_opt": optimal_order(ring.A),
        "cyclic7x4_random": random_order(cyclic_assignment(7, 4).A, np.random.default_rng(3)),
    }


CASES = [(name, l) for name, a in assignments().items() for l in range(1, a.delta + 1)]


def random_progress(a: ChunkAssignment, rng: np.random.Generator) -> np.ndarray:
    """Partial stragglers and failures, from mild (all done) to harsh."""
    harsh = rng.integers(0, 4)
    p = a.loads - rng.integers(0, harsh + 1, size=a.m)
    p[rng.random(a.m) < 0.1 * harsh] = 0
    return np.clip(p, 0, a.loads)


def decode_error(code: PartialStragglerCode, progress, G: np.ndarray) -> tuple[float, float]:
    """Relative errors of the V1 and V2 decoded full gradient."""
    truth = G.sum(axis=0)
    dec = code.decode(progress)
    v1 = dec.combine(dec.messages(G))
    v2 = code.decode_streaming(code.pieces(progress, G)).gradient
    scale = np.linalg.norm(truth)
    return np.linalg.norm(v1 - truth) / scale, np.linalg.norm(v2 - truth) / scale


def test_three_worker_example_decodes_with_l1():
    code = PartialStragglerCode(THREE, 1, rng=np.random.default_rng(0))
    progress = [1, 2, 0]  # W1 finished only D1, W2 finished both, W3 failed
    assert code.decodable(progress)
    dec = code.decode_exact(progress)
    assert dec.exact and dec.nmse == 0.0
    G = np.random.default_rng(1).standard_normal((3, 10))
    assert max(decode_error(code, progress, G)) < 1e-12
    # The original protocol (s = delta - l = 1) needs 2 finished workers and has one.
    times = np.array([[[1.0, 100.0], [1.0, 1.0], [np.inf, np.inf]]])
    assert completion_time_partial(THREE, 1, times)[0] == 2.0
    assert completion_time_original(THREE, 1, times)[0] == 101.0
    # With l = 2 the same progress is not enough.
    two = PartialStragglerCode(THREE, 2, rng=np.random.default_rng(0))
    assert not two.decodable(progress)
    with pytest.raises(ValueError, match="fewer than l=2"):
        two.decode_exact(progress)


@pytest.mark.parametrize(("name", "l"), CASES)
def test_exact_iff_every_chunk_covered_l_times_both_transports(name, l):
    a = assignments()[name]
    rng = np.random.default_rng([len(name), ord(name[-1]), l])
    code = PartialStragglerCode(a, l, rng=rng)
    seen = {True: 0, False: 0}
    for _ in range(40):
        progress = random_progress(a, rng)
        G = rng.standard_normal((a.N, 6 * l))
        covered = bool((code.coverage(progress) >= l).all())
        dec = code.decode(progress)
        stream = code.decode_streaming(code.pieces(progress, G)) if progress.any() else None
        assert code.decodable(progress) == covered == dec.exact
        seen[covered] += 1
        if covered:
            e1, e2 = decode_error(code, progress, G)
            assert e1 < 1e-9 and e2 < 1e-9
            assert stream.exact and dec.cond < 1e6
        else:
            assert dec.nmse > 0 and dec.residual > 0.5
            assert stream is None or not stream.exact
            with pytest.raises(ValueError, match="not exactly decodable"):
                code.decode_exact(progress)
    assert seen[True] and seen[False]


def test_rank_deficient_decoding_matrix_is_detected():
    a = cyclic_assignment(5, 3)
    D = np.random.default_rng(0).standard_normal((2, 5))
    D[:, 1] = D[:, 0]  # workers 0 and 1 look alike
    code = PartialStragglerCode(a, 2, D)
    # Worker 4 (order 4, 0, 1) stops before chunk 1, so chunk 1 is finished by
    # exactly {0, 1}: coverage 2 = l everywhere, but D[:, H_1] has rank 1.
    progress = np.array([3, 3, 3, 3, 2])
    assert code.decodable(progress) and code.holders(progress)[1] == (0, 1)
    dec = code.decode(progress)
    assert not dec.exact and dec.nmse == pytest.approx(1 / (5 * 2))
    with pytest.raises(ValueError, match="rank deficient"):
        code.decode_exact(progress)
    full = code.decode_exact([3] * 5)  # with worker 4 it is fine again
    assert full.exact


@pytest.mark.parametrize("l", [2, 3])
def test_least_squares_mse_formula_matches_empirical(l):
    a = cyclic_assignment(6, 3)
    rng = np.random.default_rng(7)
    code = PartialStragglerCode(a, l, rng=rng)
    progress = np.array([1, 2, 0, 3, 1, 0])
    dec = code.decode(progress)
    formula = float(nmse_formula(code.coverage(progress), l))
    assert dec.nmse == pytest.approx(formula) and formula > 0
    assert dec.residual**2 / (a.N * l) == pytest.approx(formula)
    emp = empirical_nmse(code, progress, rng, dim=60 * l, trials=300)
    assert emp == pytest.approx(formula, rel=0.05)
    # Both transports give the same least-squares estimate.
    G = rng.standard_normal((a.N, 4 * l))
    v2 = code.decode_streaming(code.pieces(progress, G))
    assert np.allclose(dec.combine(dec.messages(G)), v2.gradient)
    assert v2.nmse == pytest.approx(formula)


def shifted_exp_times(trials, a: ChunkAssignment, rng, fail=0.1):
    times = 1.0 + rng.exponential(1.0, size=(trials, a.m, int(a.loads.max())))
    times[rng.random((trials, a.m)) < fail] = np.inf
    return times


@pytest.mark.parametrize("name", ["cyclic6x3", "moebius8x4", "moebius8x4_opt"])
def test_timing_model(name):
    a = assignments()[name]
    rng = np.random.default_rng(11)
    times = shifted_exp_times(300, a, rng)
    T = np.linspace(0, 15, 61)
    for l in range(1, a.delta + 1):
        tp = completion_time_partial(a, l, times)
        to = completion_time_original(a, l, times)
        assert (tp <= to).all()
        code = FixedCode.default(a, l, np.random.default_rng(l))
        mp = nmse_partial(a, l, times, T)
        mo = nmse_original(code, worker_finish(a, times), T)
        assert (np.diff(mp, axis=1) <= 0).all() and (np.diff(mo, axis=1) <= 1e-12).all()
        assert (mp <= mo + 1e-12).all()
        assert (mp[T[None, :] >= tp[:, None]] == 0).all()
        assert (mp[T[None, :] < tp[:, None]] > 0).all()
        assert (mo[T[None, :] >= to[:, None]] < 1e-9).all()


def test_vectorised_timing_agrees_with_the_code():
    a = assignments()["moebius8x4"]
    rng = np.random.default_rng(5)
    times = shifted_exp_times(20, a, rng, fail=0.15)
    F = np.cumsum(times, axis=-1)
    T = np.array([3.0, 6.0, 9.0])
    for l in (1, 2, 3):
        code = PartialStragglerCode(a, l, rng=rng)
        mse = nmse_partial(a, l, times, T)
        done = completion_time_partial(a, l, times)
        for t in range(len(times)):
            for k, deadline in enumerate(T):
                progress = (F[t] <= deadline).sum(axis=1)
                assert code.decode(progress).nmse == pytest.approx(mse[t, k])
            if np.isfinite(done[t]):
                at = (F[t] <= done[t]).sum(axis=1)
                just_before = (F[t] < done[t]).sum(axis=1)
                assert code.decodable(at) and not code.decodable(just_before)


CODE = PartialStragglerCode(cyclic_assignment(6, 3), 2, rng=np.random.default_rng(2))


@given(st.lists(st.integers(0, 3), min_size=6, max_size=6))
def test_property_decode_flags_agree(progress):
    progress = np.array(progress)
    dec = CODE.decode(progress)
    cov = CODE.coverage(progress)
    assert dec.exact == CODE.decodable(progress) == bool((cov >= 2).all())
    assert dec.nmse == pytest.approx(float(nmse_formula(cov, 2)))
    assert all(len(h) == c for h, c in zip(dec.holders, cov, strict=True))


def test_bad_input_raises_value_error():
    a = cyclic_assignment(5, 2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="l must be"):
        PartialStragglerCode(a, 3, rng=rng)
    with pytest.raises(ValueError, match="rng"):
        PartialStragglerCode(a, 1)
    with pytest.raises(ValueError, match="shape"):
        PartialStragglerCode(a, 1, np.ones((2, 5)))
    code = PartialStragglerCode(a, 1, rng=rng)
    with pytest.raises(ValueError, match="outside"):
        code.coverage([3, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="integers"):
        code.coverage([1, 0, 0])
    with pytest.raises(ValueError, match="permutation"):
        ChunkAssignment(a.A, ((0, 2),) + a.order[1:])
    with pytest.raises(ValueError, match="divisible"):
        PartialStragglerCode(a, 2, rng=rng).decode([2] * 5).messages(np.ones((5, 3)))
    with pytest.raises(ValueError, match="times must have shape"):
        completion_time_partial(a, 1, np.ones((4, 3, 2)))
