"""Exact schemes: every straggler set of size <= s recovers the full gradient."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .helpers import EXACT_SCHEMES, build, decoded_error

GRID = [(name, n, s) for name in EXACT_SCHEMES for n in range(1, 13) for s in range(n)]
GRID = [(name, n, s) for name, n, s in GRID if name != "dgd" or s == 0]


@pytest.mark.parametrize("name", EXACT_SCHEMES)
@pytest.mark.parametrize("n", range(1, 13))
def test_every_straggler_set_up_to_s_decodes_exactly(name, n):
    rng = np.random.default_rng(n)
    checked = 0
    for s in range(n if name != "dgd" else 1):
        code = build(name, n, s)
        if code is None:
            continue
        G = rng.standard_normal((n, 5))
        truth = G.sum(axis=0)
        M = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(n)])
        for size in range(s + 1):
            for stragglers in itertools.combinations(range(n), size):
                arrived = [i for i in range(n) if i not in stragglers]
                d = code.decode(arrived)
                assert d.exact, (name, n, s, stragglers, d.residual)
                err = np.linalg.norm(d.combine(M) - truth) / np.linalg.norm(truth)
                assert err < 1e-9, (name, n, s, stragglers, err)
                assert np.all(d.weights[list(stragglers)] == 0)
                checked += 1
    assert checked > 0


@pytest.mark.parametrize("n,s", [(4, 1), (6, 2), (6, 1), (12, 3), (12, 5)])
def test_frc_fails_when_a_whole_group_straggles(n, s):
    code = build("frc", n, s)
    group0 = list(range(s + 1))  # s + 1 stragglers: the whole first group
    d = code.decode([i for i in range(n) if i not in group0])
    assert not d.exact
    assert d.residual == pytest.approx(np.sqrt(s + 1))
    assert (
        decoded_error(code, [i for i in range(n) if i not in group0], np.random.default_rng(0))
        > 1e-3
    )


@pytest.mark.parametrize("name", ["crc", "cyclic_mds"])
def test_cyclic_codes_fail_with_s_plus_one_stragglers(name):
    # n - s - 1 rows span at most an (n-s-1)-dim space: 1 is generically not in it.
    for n, s in [(5, 2), (7, 2), (8, 3), (9, 4)]:
        code = build(name, n, s)
        if code is None:
            continue
        fails = sum(
            not code.decode([i for i in range(n) if i not in S]).exact
            for S in itertools.combinations(range(n), s + 1)
        )
        assert fails > 0


@pytest.mark.parametrize("name", EXACT_SCHEMES)
def test_each_partition_is_stored_by_s_plus_one_workers(name):
    for n in range(1, 13):
        for s in range(n):
            code = build(name, n, s)
            if code is None or (name == "dgd" and s):
                continue
            expect = 1 if name == "dgd" else s + 1
            assert (np.count_nonzero(code.B, axis=0) == expect).all(), (name, n, s)
            assert code.load == expect


@given(
    name=st.sampled_from(["frc", "crc", "cyclic_mds"]),
    n=st.integers(2, 30),
    s_frac=st.floats(0, 0.99),
    data=st.data(),
)
def test_random_n_s_and_straggler_set_decode_exactly(name, n, s_frac, data):
    s = int(s_frac * n)
    code = build(name, n, s, seed=data.draw(st.integers(0, 2**16)))
    if code is None:
        return
    stragglers = data.draw(st.sets(st.integers(0, n - 1), max_size=s))
    arrived = [i for i in range(n) if i not in stragglers]
    assert code.ready(arrived)
    assert code.decode(arrived).exact
    tol = 1e-9 if name != "crc" else 1e-6  # random H: cond(B_K) can reach 1e6 at n = 30
    assert decoded_error(code, arrived, np.random.default_rng(n)) < tol
