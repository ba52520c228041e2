"""The null-space decoder against an independent least-squares computation.

``np.linalg.lstsq`` on ``B_K^T`` (an SVD of the arrived rows, nothing shared
with :mod:`gradcode.codes.nullspace`) is the oracle: same residual, same
exactness, and the same minimum-norm weights, for every straggler set at small
n and sampled sets at n = 1000.
"""

import itertools
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcode.codes import EXACT_TOL, make_code
from gradcode.codes.nullspace import NullSpaceDecoder, null_space_of, residual_batch

from .helpers import build


def oracle(B: np.ndarray, arrived) -> tuple[np.ndarray, float]:
    """Minimum-norm least-squares weights by numpy's own lstsq, and their residual."""
    a = np.zeros(B.shape[0])
    if len(arrived):
        a[list(arrived)] = np.linalg.lstsq(B[list(arrived)].T, np.ones(B.shape[1]), rcond=None)[0]
    return a, float(np.linalg.norm(a @ B - 1))


SMALL = [
    (name, n, s)
    for name in ("crc", "cyclic_mds", "lstsq")
    for n in range(2, 10)
    for s in range(1, n)
    if build(name, n, s) is not None
]


@pytest.mark.parametrize("name,n,s", SMALL)
def test_every_straggler_set_matches_least_squares(name, n, s):
    """All 2^n - 1 arrival sets: residual, exactness and min-norm weights agree."""
    code = build(name, n, s)
    G = np.random.default_rng(n).standard_normal((n, 3))
    M = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(n)])
    for size in range(1, n + 1):
        for arrived in itertools.combinations(range(n), size):
            d = code.decode(arrived)
            a, res = oracle(code.B, arrived)
            stragglers = [i for i in range(n) if i not in arrived]
            assert np.all(d.weights[stragglers] == 0)
            assert d.residual == pytest.approx(res, abs=1e-9)
            assert d.exact == (res <= EXACT_TOL * np.sqrt(n))
            np.testing.assert_allclose(d.weights @ code.B, a @ code.B, atol=1e-9)
            if d.exact:
                np.testing.assert_allclose(d.combine(M), G.sum(axis=0), atol=1e-9)
            if name != "crc":  # random crc: the min-norm weights are ill-conditioned
                np.testing.assert_allclose(d.weights, a, atol=1e-8)
        if size >= n - s and name != "lstsq":  # the design: any n - s workers decode
            assert all(code.decode(k).exact for k in itertools.combinations(range(n), size))


@pytest.mark.parametrize("name,n,s", SMALL[::3])
def test_batch_residual_matches_least_squares(name, n, s):
    """The weight-free residual formula used by the simulator, over every pattern."""
    code = build(name, n, s)
    masks = np.array([[(m >> i) & 1 for i in range(n)] for m in range(1, 2**n)], dtype=bool)
    residual, done = residual_batch(null_space_of(code), masks)
    assert done.all()
    expect = [oracle(code.B, np.flatnonzero(m))[1] for m in masks]
    np.testing.assert_allclose(residual, expect, atol=1e-9)
    exact, res2 = code.decode_batch(masks)
    np.testing.assert_array_equal(exact, np.array(expect) <= EXACT_TOL * np.sqrt(n))


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["crc", "cyclic_mds", "lstsq"]),
    n=st.integers(2, 40),
    s_frac=st.floats(0, 0.9),
    seed=st.integers(0, 2**16),
    data=st.data(),
)
def test_property_random_codes_and_arrivals(name, n, s_frac, seed, data):
    s = int(s_frac * n)
    code = build(name, n, s, seed=seed)
    if code is None:
        return
    arrived = sorted(data.draw(st.sets(st.integers(0, n - 1), min_size=1)))
    d = code.decode(arrived)
    _, res = oracle(code.B, arrived)
    assert d.residual == pytest.approx(res, abs=1e-7)
    if name != "lstsq" and len(arrived) >= n - s:
        assert d.exact


@pytest.mark.parametrize("name", ["crc", "cyclic_mds"])
def test_sampled_straggler_sets_at_n_1000(name):
    """n = 1000, s = 3: sampled sets decode exactly, like numpy's lstsq (a few, it is slow)."""
    n, s = 1000, 3
    code = make_code(name, n, s, rng=np.random.default_rng(0))
    rng = np.random.default_rng(1)
    G = rng.standard_normal((n, 4))
    M = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(n)])
    sets = [rng.choice(n, s, replace=False) for _ in range(40)]
    sets += [np.arange(s), np.arange(n - s, n), np.array([0, n // 2, n - 1])]  # bursts, spread
    for k, stragglers in enumerate(sets):
        arrived = np.setdiff1d(np.arange(n), stragglers)
        d = code.decode(arrived)
        assert d.exact and np.all(d.weights[stragglers] == 0)
        assert d.residual == pytest.approx(np.linalg.norm(d.weights @ code.B - 1), abs=1e-10)
        np.testing.assert_allclose(d.combine(M), G.sum(axis=0), rtol=1e-9, atol=1e-9)
        if k < 2:  # independent least squares (one SVD of a 997 x 1000 matrix each)
            a, res = oracle(code.B, arrived)
            assert res <= EXACT_TOL * np.sqrt(n)
            np.testing.assert_allclose(d.weights @ code.B, a @ code.B, atol=1e-9)
    d = code.decode(np.setdiff1d(np.arange(n), [5, 6, 7, 500]))  # s + 1 stragglers
    assert not d.exact and d.residual > 1e-6


def test_cond_is_lazy_and_remembered():
    code = make_code("cyclic_mds", 9, 2)
    d = code.decode([0, 1, 3, 4, 5, 6, 8])
    assert callable(d._cond), "not computed by decode itself"
    c = d.cond
    assert c == d.cond and isinstance(c, float) and not callable(d._cond)
    BK = code.B[list(d.used)]
    sv = np.linalg.svd(BK, compute_uv=False)
    assert c == pytest.approx(sv[0] / sv[-1])
    fresh = make_code("cyclic_mds", 9, 2).decode([0, 1, 3, 4, 5, 6, 8])
    assert pickle.loads(pickle.dumps(fresh)).cond == pytest.approx(c), "lazy cond pickles"


def test_cache_size_follows_the_memory_budget():
    small, large = make_code("crc", 24, 3), make_code("crc", 1000, 3)
    assert small.cache_size > 20 * large.cache_size >= 20 * 1024
    assert large.cache_size * (64 * 1000 + 1024) <= large.cache_bytes


def test_fig1_example_and_null_space_shape():
    B = np.array([[0.5, 1, 0], [0, 1, -1], [0.5, 0, 1]])
    dec = NullSpaceDecoder(B)
    assert dec.m == 1 and np.allclose(dec.N.T @ B, 0)
    np.testing.assert_allclose(dec.weights(np.array([0])), [0, 1, 2], atol=1e-12)
    np.testing.assert_allclose(dec.weights(np.array([1])), [1, 0, 1], atol=1e-12)
