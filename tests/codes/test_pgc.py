"""Pipelined gradient coding: the guarantees of codes.pgc, tested round by round."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes.pgc import PGC, nnls
from gradcode.codes.pgc_variants import ISLateFold, PGCMemory, PGCReference

D = 3  # gradient dimension


def grad_table(k: int, rounds: int, seed: int = 0) -> np.ndarray:
    """g[t, p]: partition p's gradient at the weights of round t (random, distinct)."""
    return np.random.default_rng(seed).standard_normal((rounds, k, D))


def play(scheme, G, stragglers_of, late_of=lambda t: []):
    """Drive workers and master for len(G) rounds; return the updates."""
    n = scheme.n
    ws = [scheme.init_worker(w) for w in range(n)]
    master = scheme.init_master()
    updates, pending = [], []
    for t in range(len(G)):
        msgs = []
        for w in range(n):
            plan = scheme.compute_plan(ws[w], w, t)
            ws[w], m = scheme.worker_message(ws[w], w, t, {p: G[t, p] for p in plan})
            msgs.append(m)
        out = set(stragglers_of(t))
        late = [m for m in pending]
        pending = [m for m in msgs if m.worker in out and m.worker in late_of(t)]
        master, upd = scheme.master_update(
            master, t, [m for m in msgs if m.worker not in out], late
        )
        updates.append(upd)
    return updates


@pytest.mark.parametrize("placement", ["frc", "cr"])
@given(n_groups=st.integers(1, 5), s=st.integers(0, 4), t=st.integers(0, 50))
def test_each_round_computes_a_permutation_of_partitions(placement, n_groups, s, t):
    n = n_groups * (s + 1)
    scheme = PGC(n, s, placement=placement)
    computed = sorted(scheme.rotation(w, t)[0] for w in range(n))
    assert computed == list(range(n))
    for w in range(n):
        assert scheme.rotation(w, t)[0] in scheme.placement[w]


@pytest.mark.parametrize("placement", ["frc", "cr"])
@pytest.mark.parametrize("n,s", [(6, 1), (6, 2), (12, 3), (8, 1)])
def test_every_partition_weight_one_and_staleness_at_most_s(placement, n, s):
    rng = np.random.default_rng(n + s)
    scheme = PGC(n, s, placement=placement)
    G = grad_table(n, 30)
    ups = play(scheme, G, lambda t: rng.choice(n, s, replace=False).tolist())
    for t, u in enumerate(ups):
        assert u.staleness_max <= s
        if scheme.filling(t):  # fresh parts only: each weight 0 or the rescale k / covered
            pw = u.partition_weights
            assert u.staleness_max == 0 and (pw == 0).sum() <= s
            np.testing.assert_allclose(pw[pw > 0], n / (pw > 0).sum())
            continue
        np.testing.assert_allclose(u.partition_weights, 1.0, atol=1e-12)
        assert u.covered and not u.fallbacks
    # The estimate really is the weighted combination of stored gradients:
    assert all(np.all(np.isfinite(u.gradient)) for u in ups)


@pytest.mark.parametrize("placement", ["frc", "cr"])
@pytest.mark.parametrize("n,s", [(6, 2), (8, 1), (12, 3)])
def test_no_stragglers_gives_mean_of_last_s_plus_one_full_gradients(placement, n, s):
    G = grad_table(n, 20, seed=1)
    scheme = PGC(n, s, placement=placement)
    ups = play(scheme, G, lambda t: [])
    full = G.sum(axis=1)  # (rounds, D)
    for t in range(scheme.fill + 1, 20):
        np.testing.assert_allclose(ups[t].gradient, full[t - s : t + 1].mean(axis=0), atol=1e-12)
        assert ups[t].staleness_max == s
        assert ups[t].staleness_mean == pytest.approx(s / 2)
    for t in range(scheme.fill + 1):  # warm-up round 0 and the filling rounds: exact
        np.testing.assert_allclose(ups[t].gradient, full[t], atol=1e-12)
        assert ups[t].exact
    # fill = 0 (the reference script's start): full sums from round 1, ages up to t
    ups = play(PGC(n, s, placement=placement, fill=0), G, lambda t: [])
    for t in range(s, 20):
        np.testing.assert_allclose(ups[t].gradient, full[t - s : t + 1].mean(axis=0), atol=1e-12)


def test_message_is_the_exact_sum_of_stored_gradients_after_a_spike():
    """Issue 13.7: a running sum drifted (1.8e-4 relative error after one 1e12 spike until a
    refresh every 100 rounds); the worker now recomputes its s+1-term sum every round."""
    scheme = PGC(4, 1, fill=0)
    rng = np.random.default_rng(2)
    st_ = scheme.init_worker(0)
    for t in range(30):
        plan = scheme.compute_plan(st_, 0, t)
        grads = {p: rng.standard_normal(D) for p in plan}
        if t == 5:
            grads = {p: v * 1e12 for p, v in grads.items()}
        st_, m = scheme.worker_message(st_, 0, t, grads)
        exact = st_.grads[0] + st_.grads[1]
        assert np.array_equal(m.vector, exact)
        if t > 7:  # the spike has left the window
            assert np.abs(m.vector).max() < 100


def test_frc_more_than_s_stragglers_uses_cache_then_omits_and_rescales():
    n, s = 6, 1  # groups {0,1} {2,3} {4,5}
    scheme = PGC(n, s, cache_cap=2, staleness_cap=3, fill=0)
    G = grad_table(n, 8, seed=3)
    # Group {2,3} disappears from round 3 on.
    ups = play(scheme, G, lambda t: [2, 3] if t >= 3 else [])
    assert any("cached sum from round 2" in f for f in ups[3].fallbacks)
    assert ups[3].covered  # the cached sum still covers partitions 2, 3
    late = ups[6]  # cache now 4 rounds old > cap 2: omitted
    assert any("omitted" in f for f in late.fallbacks) and any(
        "rescaled" in f for f in late.fallbacks
    )
    np.testing.assert_allclose(late.partition_weights, [1.5, 1.5, 0, 0, 1.5, 1.5])
    assert not late.covered
    for u in ups:
        assert u.staleness_max <= 3


@pytest.mark.parametrize("placement", ["frc", "cr"])
def test_staleness_stays_at_most_s_with_more_than_s_stragglers(placement):
    """Issue 13.7: the cached-sum fallback used to reach staleness 2 s.  At the defaults no
    gradient older than s enters an update, whatever straggles."""
    n, s = 12, 2  # FRC groups of 3; one whole group (and more) straggles
    scheme = PGC(n, s, placement=placement)
    rng = np.random.default_rng(7)
    G = grad_table(n, 40, seed=7)
    ups = play(scheme, G, lambda t: [3, 4, 5, *rng.choice(n, 2).tolist()] if t % 3 else [0])
    assert max(u.staleness_max for u in ups) == s
    assert scheme.cache_cap == 0
    assert any("omitted" in f for u in ups for f in u.fallbacks) or placement == "cr"
    # an explicit larger cap allows cached sums, and the bound moves with it
    ups = play(PGC(n, s, staleness_cap=2 * s), G, lambda t: [3, 4, 5] if t >= 10 else [])
    assert any("cached sum" in f for u in ups for f in u.fallbacks)
    assert max(u.staleness_max for u in ups) <= 2 * s


def test_stale_messages_dropped_and_rejoining_worker_warms_up():
    n, s = 4, 1
    scheme = PGC(n, s)
    st_ = scheme.init_worker(0)
    st_, _ = scheme.worker_message(st_, 0, 0, {0: np.ones(D), 1: np.ones(D)})
    # Worker 0 crashed for rounds 1..4 and rejoins at 5: its memory is too old.
    assert scheme.compute_plan(st_, 0, 5) == scheme.placement[0]
    assert scheme.compute_plan(st_, 0, 1) == scheme.rotation(0, 1)
    old = scheme.worker_message(st_, 0, 0, {})[1]
    _, upd = scheme.master_update(scheme.init_master(), 5, [old])
    assert any("age 5 > cap 1" in f for f in upd.fallbacks)


def test_cr_without_tiling_uses_nnls_with_residual():
    n, s = 7, 2  # r = 3 does not divide 7: no tiling classes
    scheme = PGC(n, s, placement="cr")
    G = grad_table(n, 6, seed=4)
    ups = play(scheme, G, lambda t: [0, 3])
    assert ups[-1].decoder == "pgc-cr-nnls"
    assert ups[-1].residual >= 0
    assert (ups[-1].partition_weights >= -1e-12).all()


def test_nnls_matches_known_solution():
    A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = nnls(A, np.array([1.0, -1.0, 0.5]))
    assert (x >= 0).all()
    np.testing.assert_allclose(x, [0.75, 0.0], atol=1e-9)


def test_pgc_reference_uniform_decoder_is_biased_under_persistent_stragglers():
    n, s = 6, 2
    ups = play(PGCReference(n, s), grad_table(n, 10), lambda t: [0, 1])
    pw = ups[-1].partition_weights
    assert not ups[-1].covered
    assert pw.min() < 1 < pw.max() or not np.allclose(pw, 1)
    # With no stragglers it over-counts by n / (n - s).
    ups = play(PGCReference(n, s), grad_table(n, 10), lambda t: [])
    np.testing.assert_allclose(ups[-1].partition_weights, n / (n - s))


def test_pgc_memory_folds_late_results_and_caps_staleness():
    n, s = 4, 1
    scheme = PGCMemory(n, s)
    G = grad_table(n, 10, seed=5)
    # Worker 3 is late every round; its results arrive one round later.
    ups = play(scheme, G, lambda t: [3], late_of=lambda t: [3])
    for u in ups[2:]:
        np.testing.assert_allclose(u.partition_weights, 1.0)
        assert u.staleness_max <= s
    # Without late delivery its partitions age out and are rescaled.
    ups = play(scheme, G, lambda t: [3] if t > 0 else [])
    assert ups[-1].staleness_max <= s


def test_is_latefold_owns_one_partition_each():
    scheme = ISLateFold(5, 1)
    assert scheme.placement == tuple((i,) for i in range(5))
    assert all(scheme.compute_plan(None, w, 3) == (w,) for w in range(5))
    ups = play(scheme, grad_table(5, 6), lambda t: [2], late_of=lambda t: [2])
    np.testing.assert_allclose(ups[-1].partition_weights, 1.0)


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"placement": "grid"}, "placement"),
        ({"stop": "never"}, "stop"),
        ({"placement": "cr", "stop": "groups"}, "FRC"),
        ({"staleness_cap": 0}, "staleness_cap"),
        ({"cache_cap": -1}, "cache_cap"),
        ({"fill": -2}, "fill"),
    ],
)
def test_bad_options(kw, msg):
    with pytest.raises(ValueError, match=msg):
        PGC(6, 2, **kw)


def test_frc_placement_needs_divisibility():
    with pytest.raises(ValueError, match="divide"):
        PGC(7, 2)


@pytest.mark.parametrize("scheme", [PGC(8, 1, placement="cr"), ISLateFold(8, 1)])
def test_decode_batch_matches_the_master_on_fresh_messages(scheme):
    """The simulator hook (one solve per distinct pattern, or a closed form) reports the
    residual of the master's own partition weights when only on-time messages exist."""
    rng = np.random.default_rng(3)
    used = rng.random((40, scheme.n)) < 0.7
    used[0] = False
    used[1] = used[2]  # repeated pattern
    _, res = scheme.decode_batch(used)
    for row, r in zip(used, res, strict=True):
        K = np.flatnonzero(row)
        if isinstance(scheme, ISLateFold):  # the master itself, round 0, fresh messages
            msgs = [scheme.worker_message(None, int(w), 0, {int(w): np.ones(D)})[1] for w in K]
            _, upd = scheme.master_update(scheme.init_master(), 0, msgs)
            expect = upd.residual if K.size else np.sqrt(scheme.k)
        else:
            a = nnls(scheme.B[K].T, np.ones(scheme.k)) if K.size else np.zeros(0)
            expect = np.linalg.norm(a @ scheme.B[K] - 1.0) if K.size else np.sqrt(scheme.k)
        assert r == pytest.approx(expect, abs=1e-12)


@pytest.mark.parametrize("n,s", [(6, 2), (8, 1), (24, 3)])
def test_reference_decode_batch_matches_the_uniform_decoder(n, s):
    """Closed form vs the partition weights of the uniform decoder; exact where it tiles."""
    sch = PGCReference(n, s)
    rng = np.random.default_rng(n)
    used = rng.random((200, n)) < 0.8
    used[0] = True
    exact, res = sch.decode_batch(used)
    ref = np.linalg.norm(used.astype(float) @ sch.B * (n / ((n - s) * (s + 1))) - 1, axis=1)
    np.testing.assert_allclose(res, ref, atol=1e-9)
    np.testing.assert_array_equal(exact, ref <= 1e-9)
    if (n, s) == (6, 2):  # workers {0, 1, 3, 4} hold every partition twice; c = 1/2: exact
        ok, r = sch.decode_batch(np.array([[True, True, False, True, True, False]]))
        assert ok[0] and r[0] == 0.0
        ok, _ = sch.decode_batch(np.array([[True, True, True, True, False, False]]))
        assert not ok[0]
