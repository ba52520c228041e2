"""The simulator against order statistics, faults and the codes' own ready()."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes import REGISTRY, effective_stragglers, make_code, stateless_names
from gradcode.sim import simulate, simulate_model
from gradcode.stragglers import CrashStop, ShiftedExponential

N, S = 12, 3


def times(rounds=2000, seed=0):
    return ShiftedExponential(1.0, 1.0).sample(np.random.default_rng(seed), rounds, N)


def test_dgd_completion_is_max():
    T = times()
    np.testing.assert_array_equal(simulate(make_code("dgd", N, 0), T).times, T.max(axis=1))


def test_is_sgd_completion_is_order_statistic_and_uses_first_arrivals():
    T = times()
    res = simulate(make_code("is_sgd", N, S), T)
    np.testing.assert_array_equal(res.times, np.sort(T, axis=1)[:, N - S - 1])
    assert (res.used.sum(axis=1) == N - S).all()
    first = np.argsort(T, axis=1)[:, : N - S]
    assert all(set(np.flatnonzero(u)) == set(f) for u, f in zip(res.used, first, strict=True))


def test_frc_completion_is_max_over_groups_of_group_min():
    T = times()
    res = simulate(make_code("frc", N, S), T)
    expect = T.reshape(-1, N // (S + 1), S + 1).min(axis=2).max(axis=1)
    np.testing.assert_array_equal(res.times, expect)
    assert res.exact.all()


@pytest.mark.parametrize("name", ["crc", "cyclic_mds", "frc"])
def test_exact_schemes_always_exact_without_deadline(name):
    s = 3 if name != "cyclic_mds" else 3  # N + s = 15 odd
    res = simulate(make_code(name, N, s), times())
    assert res.exact.all() and res.decodable.all()
    assert np.allclose(res.residual, 0, atol=1e-8)


@pytest.mark.parametrize(
    "name", sorted(n for n in REGISTRY if n not in ("partial", "tandon_partial", "sr_sgc"))
)
def test_completion_time_agrees_with_ready(name):
    """The vectorised stop rule is the code's own ready(), checked round by round."""
    code = make_code(name, N, effective_stragglers(name, S))
    T = times(200, seed=1)
    t = code.completion_time(T)
    for row, tr in zip(T, t, strict=True):
        order = np.argsort(row)
        arrived = [int(i) for i in order if row[i] <= tr]
        assert code.ready(arrived)
        assert not code.ready(arrived[:-1]), "stops at the first time ready() holds"


@pytest.mark.parametrize("name", sorted(stateless_names()))
def test_decode_batch_matches_decode(name):
    code = make_code(name, N, effective_stragglers(name, S))
    used = np.random.default_rng(2).random((300, N)) < 0.75
    exact, residual = code.decode_batch(used)
    for u, e, r in zip(used, exact, residual, strict=True):
        d = code.decode(np.flatnonzero(u).tolist())
        assert d.exact == e and d.residual == pytest.approx(r, abs=1e-9)


@pytest.mark.parametrize("name", ["frc", "crc", "cyclic_mds"])
def test_crash_of_up_to_s_never_blocks_exact_schemes(name):
    model = CrashStop(ShiftedExponential(), count=S, at_round=10)
    res = simulate_model(make_code(name, N, S), model, np.random.default_rng(0), 100)
    assert res.decodable.all() and res.exact.all()


def test_more_than_s_crashes_is_explicitly_not_decodable():
    model = CrashStop(ShiftedExponential(), workers=(0, 1, 2, 3, 4), at_round=10)
    res = simulate_model(make_code("crc", N, S), model, np.random.default_rng(0), 30)
    assert res.decodable[:10].all() and not res.decodable[10:].any()
    assert not res.exact[10:].any()
    assert np.isinf(res.times[10:]).all()
    assert (res.used[10:].sum(axis=1) == N - 5).all()
    assert res.summary()["decodable_fraction"] == pytest.approx(10 / 30)


def test_deadline_gives_partial_approximate_rounds():
    code = make_code("cyclic_mds", N, S)
    T = times()
    res = simulate(code, T, deadline=1.5)
    assert (res.times <= 1.5).all()
    early = np.sort(T, axis=1)[:, N - S - 1] <= 1.5
    assert res.exact[early].all()
    # With fewer than n - s arrivals 1 is usually (not always) outside the span.
    assert res.exact[~early].mean() < 0.05
    assert (res.residual[~res.exact] > 1e-6).all()


def test_same_seed_same_schedule_across_schemes():
    model = ShiftedExponential()
    a = simulate_model(make_code("crc", N, S), model, np.random.default_rng(5), 100)
    b = simulate_model(make_code("cyclic_mds", N, S), model, np.random.default_rng(5), 100)
    # Same load (s+1) and same draws: the any-(n-s) rule gives identical times.
    np.testing.assert_array_equal(a.times, b.times)


def test_trials_axis_is_flattened():
    T = ShiftedExponential().sample(np.random.default_rng(0), 60, N).reshape(3, 20, N)
    assert simulate(make_code("is_sgd", N, S), T).rounds == 60


@pytest.mark.parametrize(
    "T,kw,msg",
    [
        (np.ones((2, 5)), {}, "columns"),
        (np.full((2, N), np.nan), {}, "non-negative"),
        (np.ones((2, N)), {"deadline": 0}, "deadline"),
    ],
)
def test_bad_input(T, kw, msg):
    with pytest.raises(ValueError, match=msg):
        simulate(make_code("crc", N, S), T, **kw)


@given(st.integers(0, 2**31), st.integers(2, 16), st.data())
def test_order_statistic_property(seed, n, data):
    s = data.draw(st.integers(0, n - 1))
    T = np.random.default_rng(seed).exponential(size=(20, n))
    res = simulate(make_code("is_sgd", n, s), T)
    # exactly n - s workers are no later than the round's end, all others later
    assert (res.used.sum(axis=1) == n - s).all()
    later = np.where(res.used, -np.inf, T).max(axis=1)
    assert (np.where(res.used, T, -np.inf).max(axis=1) == res.times).all()
    assert (later < np.inf).all()


def test_codes_do_not_import_the_simulator():
    """Layering: sim -> codes, never back (sequential schemes return arrays to sim)."""
    import subprocess
    import sys

    code = "import sys, gradcode.codes; assert 'gradcode.sim' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lstsq_and_sgc_batches_at_n_96_match_decode():
    """The vectorised residuals at a size where nearly every pattern is new."""
    T = ShiftedExponential().sample(np.random.default_rng(3), 300, 96)
    for name in ("lstsq", "sgc"):
        code = make_code(name, 96, 3)
        res = simulate(code, T)
        for u, e, r in list(zip(res.used, res.exact, res.residual, strict=True))[:60]:
            d = code.decode(np.flatnonzero(u).tolist())
            assert d.exact == e and d.residual == pytest.approx(r, abs=1e-9)
