"""Straggler models: moments and tails match theory; seeds reproduce; bad input is clear."""

import numpy as np
import pytest
from scipy import stats

from gradcode.stragglers import (
    AdditivePause,
    Bursty,
    CrashStop,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
    TraceReplay,
)

R, N = 40000, 5


def draw(model, load=1.0, seed=0):
    return model.sample(np.random.default_rng(seed), R, N, load)


def test_shifted_exponential_mean_and_tail():
    m = ShiftedExponential(a=0.5, mu=2.0)
    t = draw(m, load=3.0)
    assert t.min() >= 1.5
    assert t.mean() == pytest.approx(m.mean(3.0), rel=0.01)
    # P(T > load (a + x)) = exp(-mu x)
    assert np.mean(t > 3 * (0.5 + 1.0)) == pytest.approx(np.exp(-2.0), abs=0.005)


def test_shifted_exponential_ks_against_scipy():
    t = draw(ShiftedExponential(a=1.0, mu=0.5))[:, 0]
    assert stats.kstest(t, stats.expon(loc=1.0, scale=2.0).cdf).pvalue > 1e-3


def test_additive_pause_mean_and_atom():
    m = AdditivePause(base=1.0, pause=2.0, prob=0.25)
    t = draw(m, load=2.0)
    assert t.mean() == pytest.approx(m.mean(2.0), rel=0.02)
    assert np.mean(t == 2.0) == pytest.approx(0.75, abs=0.01)  # no pause: exactly load*base


def test_pareto_tail_index():
    m = Pareto(alpha=3.0, xm=1.0)
    t = draw(m)
    assert t.min() >= 1.0
    assert t.mean() == pytest.approx(1.5, rel=0.03)
    for x in (2.0, 4.0):  # P(T > x) = x^-alpha
        assert np.mean(t > x) == pytest.approx(x**-3.0, rel=0.1)


def test_persistent_slow_layouts():
    base = ShiftedExponential(1.0, 1.0)
    spread = PersistentSlow(base, k=3, kappa=4.0).slow_workers(12)
    aligned = PersistentSlow(base, k=3, kappa=4.0, layout="aligned").slow_workers(12)
    assert spread.tolist() == [0, 4, 8] and aligned.tolist() == [0, 1, 2]
    plain = draw(base)
    slow = draw(PersistentSlow(base, k=2, kappa=4.0))
    np.testing.assert_allclose(slow[:, [0, 2]] / plain[:, [0, 2]], 4.0)  # same draws, x kappa
    np.testing.assert_array_equal(slow[:, [1, 3, 4]], plain[:, [1, 3, 4]])


def test_bursty_stationary_fraction_and_burst_length():
    m = Bursty(ShiftedExponential(), p_slow=0.1, p_recover=0.4, kappa=10.0)
    slow = m.states(np.random.default_rng(1), R, N)
    assert slow.mean() == pytest.approx(0.2, abs=0.01)
    # Mean burst length 1 / p_recover = 2.5 rounds.
    col = slow[:, 0].astype(int)
    starts = np.sum(np.diff(col) == 1)
    assert col.sum() / starts == pytest.approx(2.5, rel=0.1)


def test_crash_stop_with_rejoin():
    m = CrashStop(ShiftedExponential(), workers=(1, 3), at_round=5, rejoin_after=10)
    t = m.sample(np.random.default_rng(0), 30, 4)
    assert np.isinf(t[5:15, [1, 3]]).all()
    assert np.isfinite(t[:5]).all() and np.isfinite(t[15:]).all()
    assert np.isfinite(t[:, [0, 2]]).all()


def test_crash_stop_random_count_is_seeded():
    m = CrashStop(ShiftedExponential(), count=2)
    a = m.sample(np.random.default_rng(3), 4, 8)
    b = m.sample(np.random.default_rng(3), 4, 8)
    np.testing.assert_array_equal(a, b)
    assert np.isinf(a[0]).sum() == 2


def test_trace_replay_from_csv(tmp_path):
    f = tmp_path / "trace.csv"
    f.write_text("w0,w1,w2\n1.0,2.0,3.0\n4.0,5.0,6.0\n")
    m = TraceReplay.from_csv(f)
    t = m.sample(np.random.default_rng(0), 3, 2, load=2.0)
    np.testing.assert_allclose(t, [[2, 4], [8, 10], [2, 4]])
    chunks = m.sample_chunks(np.random.default_rng(0), 1, 3, chunks=2)
    np.testing.assert_allclose(chunks[0], [[0.5, 0.5], [1, 1], [1.5, 1.5]])


@pytest.mark.parametrize(
    "content,msg", [(None, "not found"), ("1,x\n2,3\n", "non-numeric"), ("1,-2\n", "positive")]
)
def test_trace_replay_bad_files(tmp_path, content, msg):
    f = tmp_path / "t.csv"
    if content is not None:
        f.write_text(content)
    with pytest.raises(ValueError, match=msg):
        TraceReplay.from_csv(f)


def test_trace_too_few_workers():
    with pytest.raises(ValueError, match="workers"):
        TraceReplay(np.ones((2, 2))).sample(np.random.default_rng(0), 2, 3)


MODELS = [
    ShiftedExponential(1.0, 1.0),
    AdditivePause(1.0, 2.0, 0.2),
    Pareto(2.5, 1.0),
    PersistentSlow(ShiftedExponential(), k=2, kappa=3.0),
    Bursty(Pareto(), 0.1, 0.5, 4.0),
    CrashStop(AdditivePause(), count=1, at_round=2, rejoin_after=3),
]


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_same_seed_same_schedule_and_load_scaling(model):
    a = model.sample(np.random.default_rng(9), 50, 6, load=1.0)
    b = model.sample(np.random.default_rng(9), 50, 6, load=1.0)
    np.testing.assert_array_equal(a, b)
    c = model.sample(np.random.default_rng(10), 50, 6, load=1.0)
    assert not np.array_equal(a, c)
    chunks = model.sample_chunks(np.random.default_rng(9), 50, 6, chunks=3)
    assert chunks.shape == (50, 6, 3) and (chunks > 0).all()


@pytest.mark.parametrize(
    "factory,msg",
    [
        (lambda: ShiftedExponential(mu=0), "rate mu"),
        (lambda: ShiftedExponential(a=-1), "shift a"),
        (lambda: AdditivePause(prob=1.5), "probability"),
        (lambda: Pareto(alpha=-1), "alpha"),
        (lambda: PersistentSlow(kappa=0.5), "kappa"),
        (lambda: PersistentSlow(layout="diagonal"), "layout"),
        (lambda: Bursty(p_slow=0, p_recover=0), "both be 0"),
        (lambda: CrashStop(rejoin_after=0), "rejoin_after"),
        (lambda: CrashStop(workers=(9,)).sample(np.random.default_rng(0), 2, 4), "out of range"),
        (lambda: PersistentSlow(k=5).sample(np.random.default_rng(0), 2, 4), "k=5"),
        (lambda: ShiftedExponential().sample(np.random.default_rng(0), 0, 4), "rounds"),
    ],
)
def test_bad_parameters(factory, msg):
    with pytest.raises(ValueError, match=msg):
        factory()
