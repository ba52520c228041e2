"""Tandon et al.'s partial-straggler scheme: placement, exact decode, slowdown tolerance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcode.codes import TandonPartial, make_scheme
from gradcode.comm import CommModel
from gradcode.sim import simulate_chunked

VARIANTS_ONLY = ("cyclic", "replication")
VARIANTS = [
    ("cyclic", 5, 1, 4),
    ("cyclic", 6, 2, 6),
    ("replication", 6, 1, 4),
    ("replication", 6, 2, 5),
]


def build(variant, n, s, p):
    return make_scheme("tandon_partial", n, s, rng=np.random.default_rng(0), p=p, variant=variant)


def all_messages(sch, G, t=0, segments=False, skip2=(), skip1=()):
    msgs = []
    for w in range(sch.n):
        for seg, chunks in enumerate(sch.segments(w)):
            if (seg == 0 and w in skip1) or (seg == 1 and w in skip2):
                continue
            if segments:
                msgs.append(sch.segment_message(w, t, seg, {c: G[c] for c in chunks}))
            else:
                msgs += [sch.chunk_message(w, t, c, G[c]) for c in chunks]
    return msgs


@pytest.mark.parametrize(("variant", "n", "s", "p"), VARIANTS)
def test_placement_has_p_minus_s_minus_1_unique_then_an_inner_code(variant, n, s, p):
    sch = build(variant, n, s, p)
    assert sch.k == (p - s) * n and sch.load == p
    holders = np.zeros(sch.k, dtype=int)
    for w in range(n):
        uniq, shared = sch.segments(w)
        assert len(uniq) == p - s - 1 and len(shared) == s + 1
        assert sch.placement[w] == uniq + shared
        holders[list(sch.placement[w])] += 1
    assert (holders[: n * (p - s - 1)] == 1).all()  # unique pieces: one holder
    assert (holders[n * (p - s - 1) :] == s + 1).all()  # shared pieces: a GC placement
    assert sch.tolerated_slowdown == p / (p - s - 1)


@pytest.mark.parametrize(("variant", "n", "s", "p"), VARIANTS)
def test_exact_for_every_straggler_set_with_both_transports(variant, n, s, p):
    sch = build(variant, n, s, p)
    G = np.random.default_rng(1).standard_normal((sch.k, 5))
    truth = G.sum(axis=0)
    for stragglers in itertools.combinations(range(n), s):
        for segments in (False, True):
            msgs = all_messages(sch, G, segments=segments, skip2=stragglers)
            arrived = [(c, m.worker) for m in msgs for c in m.partitions]
            assert sch.ready(arrived)
            _, upd = sch.master_update(None, 0, msgs)
            assert upd.exact and upd.residual < 1e-9
            np.testing.assert_allclose(upd.gradient, truth, atol=1e-9)


@pytest.mark.parametrize(("variant", "n", "s", "p"), VARIANTS)
def test_missing_message_1_is_never_exact(variant, n, s, p):
    sch = build(variant, n, s, p)
    G = np.random.default_rng(2).standard_normal((sch.k, 3))
    msgs = all_messages(sch, G, skip1=(0,))
    assert not sch.ready([(c, m.worker) for m in msgs for c in m.partitions])
    _, upd = sch.master_update(None, 0, msgs)
    assert not upd.exact and "message 1 missing from workers [0]" in upd.fallbacks
    # a partly received message 1 is not used either
    partial = [m for m in all_messages(sch, G) if m.partitions[0] != sch.segments(0)[0][0]]
    _, upd2 = sch.master_update(None, 0, partial)
    np.testing.assert_allclose(upd2.gradient, upd.gradient)


def unit_times(sch, slow, kappa):
    T = np.ones((1, sch.n, sch.p))
    T[0, list(slow)] = kappa
    return T


@pytest.mark.parametrize(("variant", "n", "s", "p"), VARIANTS)
def test_tolerates_p_over_p_minus_s_minus_1_slowdown_and_fails_beyond(variant, n, s, p):
    """s workers slowed by kappa: the round still ends at p iff kappa <= p / (p - s - 1)."""
    sch = build(variant, n, s, p)
    limit = p / (p - s - 1)
    for slow in itertools.combinations(range(n), s):
        at = sch.chunk_completion_time(unit_times(sch, slow, limit))[0]
        assert at == pytest.approx(p)
        beyond = sch.chunk_completion_time(unit_times(sch, slow, 1.05 * limit))[0]
        assert beyond == pytest.approx(1.05 * limit * (p - s - 1)) and beyond > p
    # With a deadline of p time units: exact at the limit, not beyond (simulator).
    slow = tuple(range(s))
    ok = simulate_chunked(sch, unit_times(sch, slow, limit), deadline=p + 1e-9)
    bad = simulate_chunked(sch, unit_times(sch, slow, 1.05 * limit), deadline=p + 1e-9)
    assert ok.exact[0] and not bad.exact[0] and bad.residual[0] > 0
    # One more slow worker than s is not tolerated even at a mild slowdown.
    more = sch.chunk_completion_time(unit_times(sch, range(s + 1), 1.2))[0]
    assert more > p


def test_local_backend_trains_exactly_and_respects_the_tolerance():
    from gradcode.runtime import LocalCluster, LoopConfig, OptimizerConfig, Schedule, train
    from gradcode.stragglers import AdditivePause, PersistentSlow

    from ..runtime.helpers import oracle

    for variant in ("cyclic", "replication"):
        sch = build(variant, 6, 2, 6)  # tolerates 6 / 3 = 2x; a piece takes 1/4 time unit
        assert sch.chunk_load == 0.25
        cfg = LoopConfig(rounds=6, optimizer=OptimizerConfig(lr=1.0), eval_every=3)
        for kappa, exact in ((2.0, True), (2.5, False)):
            model = PersistentSlow(AdditivePause(1.0, 0.0, 0.0), k=2, kappa=kappa)
            orc = oracle(sch.k)
            cl = LocalCluster(sch, orc, Schedule(model, 0, cfg.rounds, 6), deadline=1.5)
            res = train(sch, cl, orc, cfg)
            assert all(h["exact"] == exact for h in res.history), (variant, kappa)
        # Without a deadline it trains to the same weights as plain gradient descent.
        orc = oracle(sch.k)
        model = PersistentSlow(AdditivePause(1.0, 0.0, 0.0), k=2, kappa=3.0)
        res = train(sch, LocalCluster(sch, orc, Schedule(model, 0, 6, 6)), orc, cfg)
        w = orc.initial_weights()
        for _ in range(6):
            w = w - 1.0 * orc.full_gradient(w)
        np.testing.assert_allclose(res.weights, w, atol=1e-9)
        assert all(h["duration"] == pytest.approx(2.25) for h in res.history)  # 3 x 3 x 1/4


@pytest.mark.parametrize(("variant", "n", "s", "p"), VARIANTS)
def test_completion_time_is_when_ready_first_holds(variant, n, s, p):
    sch = build(variant, n, s, p)
    rng = np.random.default_rng(3)
    T = 1 + rng.exponential(size=(40, n, p))
    T[rng.random((40, n)) < 0.15] = np.inf
    got = sch.chunk_completion_time(T)
    F = np.cumsum(T, axis=-1)
    for r in range(len(T)):
        events = sorted(
            (F[r, w, pos], c, w) for w in range(n) for pos, c in enumerate(sch.placement[w])
        )
        arrived, when = [], np.inf
        for time, c, w in events:
            if not np.isfinite(time):
                break
            arrived.append((c, w))
            if sch.ready(arrived):
                when = time
                break
        assert got[r] == when


def test_communication_counts_two_messages():
    sch = build("cyclic", 6, 1, 4)
    T = np.ones((1, 6, 4))
    free = simulate_chunked(sch, T)
    slow = simulate_chunked(sch, T, comm=CommModel(latency=0.5, bandwidth=1.0))
    # message 2 leaves at 4, is on the wire for 1 and lands 0.5 later
    assert free.times[0] == 4.0 and slow.times[0] == 5.5
    # message 1 (ready at 2) queues nothing: the link is idle by 4
    T[0, 0, :2] = 2.4  # worker 0's message 1 ready at 4.8 -> arrives 6.3; its message 2 queues
    assert simulate_chunked(sch, T, comm=CommModel(0.5, 1.0)).times[0] == pytest.approx(6.3)


def test_torch_payloads():
    torch = pytest.importorskip("torch")
    sch = build("cyclic", 5, 1, 4)
    G = torch.randn(sch.k, 4, dtype=torch.float64)
    msgs = [sch.chunk_message(w, 0, c, G[c]) for w in range(5) for c in sch.placement[w]]
    assert isinstance(msgs[0].vector, torch.Tensor)
    _, upd = sch.master_update(None, 0, msgs)
    assert upd.exact and torch.allclose(upd.gradient, G.sum(0))


def test_bad_parameters():
    with pytest.raises(ValueError, match="p must be"):
        TandonPartial(6, 2, p=3)
    with pytest.raises(ValueError, match="variant"):
        TandonPartial(6, 1, variant="mds")
    with pytest.raises(ValueError, match="does not divide"):
        TandonPartial(7, 2, variant="replication")
    sch = TandonPartial(4, 1)
    with pytest.raises(ValueError, match="does not hold"):
        sch.chunk_message(0, 0, 5, np.ones(2))
    with pytest.raises(ValueError, match="mixes"):
        from gradcode.codes.protocol import Message

        sch.master_update(None, 0, [Message(0, 0, np.ones(2), (0, 8), (0, 0))])


def test_partial_scheme_chunk_message_takes_torch_tensors():
    torch = pytest.importorskip("torch")
    sch = make_scheme("partial", 5, 1, rng=np.random.default_rng(0), l=2)
    g = np.random.default_rng(0).standard_normal(6)
    a = sch.chunk_message(1, 0, sch.placement[1][0], g).vector
    b = sch.chunk_message(1, 0, sch.placement[1][0], torch.from_numpy(g)).vector
    assert isinstance(b, torch.Tensor)
    np.testing.assert_allclose(b.numpy(), a)
    np.testing.assert_allclose(a, sch.code.piece(1, g))


@given(st.integers(2, 9), st.data())
@settings(max_examples=40, deadline=None)
def test_property_exact_from_any_n_minus_s_messages_2(n, data):
    s = data.draw(st.integers(0, n - 1))
    p = data.draw(st.integers(s + 2, s + 5))
    variant = data.draw(st.sampled_from(VARIANTS_ONLY))
    if variant == "replication" and n % (s + 1):
        return
    sch = TandonPartial(n, s, p=p, variant=variant, rng=np.random.default_rng(n))
    stragglers = data.draw(st.sets(st.integers(0, n - 1), max_size=s))
    G = np.random.default_rng(p).standard_normal((sch.k, 3))
    _, upd = sch.master_update(None, 0, all_messages(sch, G, skip2=stragglers))
    assert upd.exact
    np.testing.assert_allclose(upd.gradient, G.sum(axis=0), rtol=1e-6, atol=1e-6)
