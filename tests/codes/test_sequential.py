"""SR-SGC (Krishnan, Ebrahimi, Khisti ICLR 2023): every job decodes exactly B rounds late
under any (B, W, lambda)-conforming straggler pattern, with the reduced load."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcode.codes import make_code
from gradcode.codes.protocol import Message
from gradcode.codes.sequential import SRSGC, conforms, random_pattern
from gradcode.sim import simulate

PARAMS = [  # (n, B, W, lambda)
    (6, 1, 2, 2),
    (6, 1, 2, 3),
    (8, 2, 4, 3),
    (8, 2, 3, 4),
    (8, 1, 3, 3),
    (10, 3, 5, 4),
    (8, 3, 4, 4),
]


def drive(sch, S):
    """Run the plan over straggler pattern S (True = straggles); return lost jobs, decode rounds."""
    plan, lost, when = sch.init_plan(), [], {}
    for t in range(S.shape[0]):
        jobs = sch.jobs(plan, t)
        arrived = {}
        for w in np.flatnonzero(~S[t]):
            arrived.setdefault(int(jobs[w]), set()).add(int(w))
        plan = sch.advance(plan, t, arrived)
        lost += list(plan.lost)
        when.update({j: t for j in plan.decoded})
    return lost, when


def test_conforms_golden():
    S = np.zeros((4, 3), dtype=bool)
    S[0, 0] = S[1, 0] = True  # one burst of length 2
    assert conforms(S, B=2, W=3, lam=1) and not conforms(S, B=1, W=3, lam=1)
    S[2, 1] = True  # a second worker inside the window (rounds 0..2)
    assert not conforms(S, B=2, W=3, lam=1) and conforms(S, B=2, W=3, lam=2)
    S2 = np.zeros((5, 2), dtype=bool)
    S2[0, 0] = S2[2, 0] = True  # two bursts of one worker inside one window of 3
    assert not conforms(S2, B=1, W=3, lam=1) and conforms(S2, B=1, W=2, lam=1)


@pytest.mark.parametrize("n,B,W,lam", PARAMS)
def test_every_job_decodes_within_b_rounds_under_the_model(n, B, W, lam):
    sch = SRSGC(n, lam, B=B, W=W)
    assert sch.s_code == math.ceil(B * lam / (W - 1 + B)) and sch.s_code <= lam
    assert sch.load == sch.s_code + 1
    rng = np.random.default_rng(n * 100 + B * 10 + W)
    for _ in range(40):
        S = random_pattern(rng, 16, n, B, W, lam, p=float(rng.choice([0.3, 0.6, 0.9])))
        assert conforms(S, B, W, lam)
        lost, when = drive(sch, S)
        assert lost == []
        assert all(0 <= when[j] - j <= B for j in range(16 - B))


@pytest.mark.parametrize("n,B,W,lam", PARAMS)
def test_a_smaller_inner_tolerance_fails_some_pattern(n, B, W, lam):
    """The guarantee needs the full s' = ceil(B lam / (W - 1 + B)): one less breaks it."""
    sch = SRSGC(n, lam, B=B, W=W)
    sch.s_code -= 1
    rng = np.random.default_rng(1)
    assert any(drive(sch, random_pattern(rng, 16, n, B, W, lam, p=0.9))[0] for _ in range(40))


@settings(max_examples=25, deadline=None)
@given(st.integers(5, 9), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.data())
def test_property_random_parameters(n, B, extra, lam, data):
    W = B + extra
    lam = min(lam, n - 1)
    sch = SRSGC(n, lam, B=B, W=W)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    lost, _ = drive(sch, random_pattern(rng, 12, n, B, W, lam, p=0.7))
    assert lost == []


def test_master_decodes_the_exact_gradient_of_each_job_b_rounds_late():
    n, lam, B, W, rounds, d = 8, 3, 2, 3, 12, 4
    sch = SRSGC(n, lam, B=B, W=W)
    rng = np.random.default_rng(0)
    G = rng.standard_normal((rounds, sch.k, d))  # job j's partition gradients
    S = random_pattern(rng, rounds, n, B, W, lam, p=0.8)
    state = sch.init_master()
    plan = sch.init_plan()
    for t in range(rounds):
        jobs = sch.jobs(plan, t)
        msgs = []
        for w in np.flatnonzero(~S[t]):
            j = int(jobs[w])
            _, m = sch.worker_message(None, int(w), j, {p: G[j, p] for p in sch.placement[w]})
            msgs.append(m)
        state, upd = sch.master_update(state, t, msgs)
        plan = state.plan
        if t < B:
            assert upd.gradient is None and "pipeline filling" in upd.fallbacks
        else:
            np.testing.assert_allclose(upd.gradient, G[t - B].sum(axis=0), rtol=1e-10)
            assert upd.staleness_max == B and upd.covered and upd.residual == 0


def test_deferred_jobs_counts_the_jobs_still_waiting_for_a_reattempt():
    """``deferred_jobs`` in the log: 0 while every job decodes at once (it was -1 in every
    such round), 1 in the round that defers a job, 0 again once its reattempt arrived."""
    sch = SRSGC(6, 2, B=1, W=2)  # s' = 1: two missing results defer a job
    state, counts = sch.init_master(), []
    stragglers = {2: {4, 5}}  # round 2: workers 4 and 5 straggle; worker 4 owes job 2 in round 3
    for t in range(5):
        plan, msgs = state.plan, []
        for w, job in enumerate(sch.jobs(plan, t)):
            if w not in stragglers.get(t, ()):
                grads = {p: np.ones(2) for p in sch.placement[w]}
                msgs.append(sch.worker_message(None, w, int(job), grads)[1])
        state, upd = sch.master_update(state, t, msgs)
        counts.append(upd.stats["deferred_jobs"])
        assert counts[-1] == len(state.plan.received)
    assert counts == [0, 0, 1, 0, 0]


def test_load_is_below_gc_for_the_same_lambda():
    sch = make_code("sr_sgc", 24, 6, B=1, W=4)
    assert sch.s_code == 2 and sch.load == 3 < 6 + 1


def test_simulator_no_stragglers_and_crashes():
    sch = SRSGC(6, 2, B=1, W=2)
    res = simulate(sch, np.ones((5, 6)))
    np.testing.assert_array_equal(res.times, np.ones(5))
    assert res.exact.all() and res.used.all()
    # Worker i takes i + 1: the (n - lambda)-th arrival is at 4, patience 1.5 would wait
    # until 6, but job t is decodable at the (n - s')-th = 5th arrival: every round ends at 5.
    T = np.tile(np.arange(1.0, 7.0), (5, 1))
    res = simulate(sch, T)
    np.testing.assert_array_equal(res.times, np.full(5, 5.0))
    assert res.exact.all()
    # Patience 1: stop at the 4th arrival; job t misses 2 > s' = 1, so worker 4 recomputes it
    # next round (time 5) while job t+1 misses workers 4 and 5 again (golden, traced by hand).
    res = simulate(SRSGC(6, 2, B=1, W=2, patience=1.0), T)
    np.testing.assert_array_equal(res.times, [4.0, 5.0, 6.0, 4.0, 5.0])
    T = T.copy()
    T[2:, [4, 5]] = np.inf  # two crash: the reattempts they owe never come
    res = simulate(sch, T)
    assert np.isfinite(res.times).all() and not res.exact[3:].any()


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"B": 2, "W": 2}, "must exceed the burst length"),
        ({"B": 0}, "B must be >= 1"),
        ({"patience": 0.5}, "patience must be >= 1"),
    ],
)
def test_bad_parameters(kw, needle):
    with pytest.raises(ValueError, match=needle):
        SRSGC(6, 2, **kw)
    with pytest.raises(ValueError, match="lambda"):
        SRSGC(6, 6)


def test_message_carries_its_job():
    sch = SRSGC(4, 2)
    _, m = sch.worker_message(None, 1, 7, {p: np.ones(2) for p in sch.placement[1]})
    assert isinstance(m, Message) and m.round == 7 and m.computed == (7, 7)


def test_under_bursty_stragglers_sr_sgc_rounds_beat_gc():
    """The paper's regime: a (B, W, lambda) pattern of 10x-slow bursts.  SR-SGC's smaller
    load (s' + 1 = 3 vs lambda + 1 = 5) makes its rounds shorter than CRC's, all exact."""
    n, lam, B, W, rounds = 24, 4, 1, 3, 300
    rng = np.random.default_rng(0)
    S = random_pattern(rng, rounds, n, B, W, lam, p=0.05)
    unit = (1 + rng.exponential(0.1, (rounds, n))) * np.where(S, 10.0, 1.0)
    sr = SRSGC(n, lam, B=B, W=W)
    crc = make_code("crc", n, lam, rng=np.random.default_rng(0))
    a, b = simulate(sr, unit * sr.load), simulate(crc, unit * crc.load)
    assert a.exact.all() and b.exact.all()
    assert a.times.mean() < 0.8 * b.times.mean()


def reference_simulation(sch, T):
    """The plan-object loop (stop / advance / by_job, as the local backend drives it)."""
    plan = sch.init_plan()
    dur, ok = np.empty(len(T)), np.ones(len(T), dtype=bool)
    for t in range(len(T)):
        dur[t], _ = sch.stop(plan, t, T[t])
        plan = sch.advance(plan, t, sch.by_job(plan, t, np.flatnonzero(T[t] <= dur[t])))
        ok[t] = not plan.lost
    return dur, ok


@pytest.mark.parametrize(
    "n,lam,B,W,patience",
    [(6, 2, 1, 2, 1.0), (6, 2, 1, 2, 1.5), (8, 3, 2, 3, 1.2), (12, 4, 1, 3, 1), (24, 6, 3, 5, 1.1)],
)
def test_array_simulation_equals_the_plan_loop(n, lam, B, W, patience):
    """The array-based simulator is the round rule of stop/advance, round for round,
    including crashes (inf), ties and bursts that force reattempts."""
    sch = SRSGC(n, lam, B=B, W=W, patience=patience)
    rng = np.random.default_rng(n + B)
    for trial in range(6):
        T = 1 + rng.exponential(1.0, (80, n))
        T[rng.random(T.shape) < 0.15] *= 5  # bursts: deferrals and reattempts
        if trial % 2:
            T[rng.random(T.shape) < 0.03] = np.inf
            T[rng.integers(80), :] = np.inf  # nobody reports in one round
        if trial == 4:
            T = np.round(T)  # ties
        dur, ok = reference_simulation(sch, T)
        res = simulate(sch, T)
        np.testing.assert_array_equal(res.times, dur)
        np.testing.assert_array_equal(res.exact, ok)
        np.testing.assert_array_equal(res.used, T <= dur[:, None])


def test_each_trial_starts_from_a_fresh_plan():
    """(trials, rounds, n) are independent trials: a reattempt owed at the end of one
    trial must not carry into the next (it did when trials were one long sequence)."""
    sch = SRSGC(6, 2, B=1, W=2, patience=1.0)
    T = np.tile(np.arange(1.0, 7.0), (5, 1))  # golden above: times 4, 5, 6, 4, 5
    alone = simulate(sch, T)
    both = simulate(sch, np.stack([T, T]))
    np.testing.assert_array_equal(both.times, np.concatenate([alone.times, alone.times]))
    np.testing.assert_array_equal(both.times[:5], [4.0, 5.0, 6.0, 4.0, 5.0])
    rng = np.random.default_rng(0)
    trials = 1 + rng.exponential(1.0, (4, 30, 12))
    sch = SRSGC(12, 4, B=2, W=3)
    res = simulate(sch, trials)
    for k in range(4):
        one = simulate(sch, trials[k])
        np.testing.assert_array_equal(res.times[30 * k : 30 * (k + 1)], one.times)
        np.testing.assert_array_equal(res.exact[30 * k : 30 * (k + 1)], one.exact)
