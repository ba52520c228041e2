"""The fixed-code original protocol: supports, exact from any m - s, NMSE = least squares."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gradcode.codes.crc import crc_matrix
from gradcode.codes.ordering import circulant_adjacency, cyclic_assignment, graph_assignment
from gradcode.codes.partial_original import (
    FixedCode,
    nmse_original,
    polynomial_code,
    tandon_matrix,
    worker_finish,
)

SMALL = {
    "cyclic7x3": cyclic_assignment(7, 3),
    "moebius8x4": graph_assignment(circulant_adjacency(8, (1, 4))),
}


def codes(a):
    yield FixedCode.tandon(a, np.random.default_rng(0))
    for l in range(1, a.delta + 1):
        yield FixedCode.polynomial(a, l)


@pytest.mark.parametrize("name", SMALL)
def test_support_and_exact_from_any_m_minus_s(name):
    a = SMALL[name]
    for code in codes(a):
        held = np.repeat(a.A.T, code.l, axis=1)
        assert (code.E[held == 0] == 0).all(), "a worker only encodes chunks it holds"
        for F in itertools.combinations(range(a.m), a.m - code.s):
            assert code.nmse(F) < 1e-9, (code, F)
        if code.s < a.m - 1:  # one worker fewer: not exact (generic code)
            assert code.nmse(range(a.m - code.s - 1)) > 1e-6


def independent_nmse(E, l, N, F):
    """min_D ||D E_F - J||_F^2 / (N l) by numpy's lstsq."""
    J = np.kron(np.ones((1, N)), np.eye(l))
    EF = E[list(F)]
    D = np.linalg.lstsq(EF.T, J.T, rcond=None)[0].T
    return float(np.sum((D @ EF - J) ** 2) / (N * l))


@pytest.mark.parametrize("name", SMALL)
def test_nmse_is_least_squares_and_matches_real_vectors(name):
    a = SMALL[name]
    rng = np.random.default_rng(4)
    for code in codes(a):
        for size in range(1, a.m):
            F = sorted(rng.choice(a.m, size, replace=False).tolist())
            assert code.nmse(F) == pytest.approx(independent_nmse(code.E, code.l, a.N, F), abs=1e-9)
        F = sorted(rng.choice(a.m, a.m - code.s - 1, replace=False).tolist())
        D = code.decode_weights(F)
        err = norm = 0.0
        for _ in range(300):  # push Gaussian chunk gradients through the messages
            G = rng.standard_normal((a.N * code.l, 8))  # row i l + k = part k of chunk i
            msgs = code.E[F] @ G
            truth = np.kron(np.ones((1, a.N)), np.eye(code.l)) @ G
            err += np.sum((D @ msgs - truth) ** 2)
            norm += np.sum(truth**2)
        assert err / norm == pytest.approx(code.nmse(F), rel=0.1)


def test_reference_numbers_with_tandon_cyclic_b():
    """m = 20, delta = 4, l = 1, Tandon's cyclic B: NMSE at T = 6 / 8 / 10 ~ 0.885 / 0.488 / 0.106.

    Chunk times 1 + Exp(1), 0..2 failed workers per trial (the reproduction's model),
    least squares on the finished workers computed independently with numpy's lstsq.
    """
    from gradcode.reproduce.ramamoorthy2024_setting import chunk_times

    a = cyclic_assignment(20, 4)
    B = crc_matrix(20, 3, np.random.default_rng(0))
    code = FixedCode(a, 1, B, "crc")
    times = chunk_times(1500, 20, 4, np.random.default_rng(0))
    T = np.array([6.0, 8.0, 10.0])
    W = worker_finish(a, times)
    got = nmse_original(code, W, T).mean(axis=0)
    ref = np.array(
        [
            [
                independent_nmse(B, 1, 20, np.flatnonzero(w <= t)) if (w <= t).any() else 1.0
                for t in T
            ]
            for w in W[:200]
        ]
    )
    np.testing.assert_allclose(nmse_original(code, W[:200], T), ref, atol=1e-9)
    np.testing.assert_allclose(got, [0.885, 0.488, 0.106], atol=0.03)


def test_bad_input():
    a = cyclic_assignment(5, 2)
    with pytest.raises(ValueError, match="l must"):
        polynomial_code(a, 3)
    with pytest.raises(ValueError, match="shape"):
        FixedCode(a, 1, np.ones((5, 4)), "x")
    with pytest.raises(ValueError, match="times must"):
        worker_finish(a, np.ones((2, 4, 2)))
    assert tandon_matrix(a, np.random.default_rng(0)).shape == (5, 5)
    assert FixedCode.tandon(a, np.random.default_rng(0)).nmse([]) == 1.0
