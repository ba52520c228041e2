"""One conformance suite run over every registered scheme.

The first part checks the plain gradient codes' matrices and decoders; the
last part drives all registered schemes -- stateless, stateful (the PGC
family), chunked and sequential -- through the round protocol: state in, state
out (state is a value), exact where the registry promises exactness.  The same
schemes on both backends: tests/runtime/test_ray_conformance.py.
"""

import copy
import itertools
import pickle
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes import (
    REGISTRY,
    Decoding,
    effective_stragglers,
    make_code,
    make_scheme,
    stateless_names,
)

from .helpers import build

SCHEMES = sorted(stateless_names())
SIZES = [(3, 0), (5, 2), (6, 2), (8, 3), (9, 2), (12, 3), (24, 3)]


def _cases():
    for name in SCHEMES:
        for n, s in SIZES:
            if name == "dgd" and s:
                continue
            yield name, n, s


CASES = [c for c in _cases() if build(*c) is not None]


@pytest.mark.parametrize("name,n,s", CASES)
def test_shapes_and_placement_consistent(name, n, s):
    code = build(name, n, s)
    assert code.name == name
    assert code.B.shape == (n, code.k)
    assert not code.B.flags.writeable
    for i in range(n):
        assert code.placement[i] == tuple(np.flatnonzero(code.B[i]))
        assert set(code.work(i, round=7)) <= set(code.placement[i])
        assert code.coefficients(i).shape == (len(code.placement[i]),)
    assert (np.count_nonzero(code.B, axis=0) >= 1).all(), "every partition is stored somewhere"


@pytest.mark.parametrize("name,n,s", CASES)
def test_no_stragglers_is_exact(name, n, s):
    code = build(name, n, s)
    d = code.decode(range(n))
    if name != "is_sgd" and name != "sgc":
        assert d.exact
    assert isinstance(d, Decoding)
    assert d.weights.shape == (n,)
    assert d.residual == pytest.approx(np.linalg.norm(d.weights @ code.B - 1))


@pytest.mark.parametrize("name,n,s", CASES)
def test_decode_reports_residual_and_conditioning(name, n, s):
    code = build(name, n, s)
    rng = np.random.default_rng(0)
    arrived = sorted(rng.choice(n, n - s, replace=False).tolist())
    assert code.ready(arrived) or name in ("dgd", "frc")
    d = code.decode(arrived)
    assert set(np.flatnonzero(d.weights)) <= set(arrived)
    assert d.residual >= 0 and d.max_abs_weight >= 0
    assert d.cond >= 1 or np.isnan(d.cond)
    assert d.exact == (d.residual <= 1e-8 * np.sqrt(code.k))
    assert code.decode(list(reversed(arrived))) is d, "cached per pattern, order-free"


@pytest.mark.parametrize("name", SCHEMES)
def test_same_seed_same_code(name):
    a = make_code(name, 9, 2, rng=np.random.default_rng(7))
    b = make_code(name, 9, 2, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.B, b.B)


def test_crc_seed_changes_matrix():
    a = make_code("crc", 9, 2, rng=np.random.default_rng(7))
    b = make_code("crc", 9, 2, rng=np.random.default_rng(8))
    assert not np.allclose(a.B, b.B)


@pytest.mark.parametrize(
    "name,n,s,msg",
    [
        ("nope", 4, 1, "unknown scheme"),
        ("frc", 7, 2, "does not divide"),
        ("crc", 4, 4, "0 <= s < n"),
        ("crc", 0, 0, "positive integer"),
        ("cyclic_mds", 6, 2, r"n \+ s is odd"),
        ("sgc", 6, 2, "replication"),
    ],
)
def test_bad_parameters_raise_clear_value_error(name, n, s, msg):
    opts = {"d": 0} if name == "sgc" else {}
    with pytest.raises(ValueError, match=msg):
        make_code(name, n, s, **opts)


def test_unknown_option_is_value_error():
    with pytest.raises(ValueError, match="bad options"):
        make_code("frc", 4, 1, colour="red")


def test_out_of_range_worker_rejected():
    with pytest.raises(ValueError, match="out of range"):
        make_code("crc", 4, 1).decode([0, 1, 9])


@given(
    name=st.sampled_from(SCHEMES),
    n=st.integers(2, 16),
    data=st.data(),
)
def test_decode_is_linear_in_messages(name, n, data):
    """combine() is the linear map sum_i a_i m_i, and encode() is B's row."""
    s = data.draw(st.integers(0, n - 1))
    code = build(name, n, effective_stragglers(name, s))
    if code is None:
        return
    arrived = data.draw(st.sets(st.integers(0, n - 1), min_size=1))
    rng = np.random.default_rng(n)
    G = rng.standard_normal((code.k, 3))
    M = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(n)])
    np.testing.assert_allclose(M, code.B @ G, atol=1e-12)
    d = code.decode(sorted(arrived))
    np.testing.assert_allclose(d.combine(M), (d.weights @ code.B) @ G, atol=1e-9)
    as_dict = d.combine({i: M[i] for i in arrived})
    np.testing.assert_allclose(as_dict, d.combine(M), atol=1e-12)


# --- chunked (streaming) schemes: one battery for every scheme with ``chunked = True`` ---
CHUNKED = [
    ("partial", 6, 1, {"l": 1}),
    ("partial", 6, 1, {"l": 2}),
    ("tandon_partial", 6, 1, {"variant": "cyclic"}),
    ("tandon_partial", 6, 2, {"variant": "replication"}),
    ("tandon_partial", 5, 2, {"variant": "cyclic", "p": 7}),
]


def _chunked(name, n, s, opts, seed=0):
    return make_scheme(name, n, s, rng=np.random.default_rng(seed), **opts)


@pytest.mark.parametrize("name,n,s,opts", CHUNKED)
def test_chunked_scheme_protocol(name, n, s, opts):
    """Placement covers every partition; ready() and chunk_completion_time agree; every
    arrival pattern the stop rule accepts decodes exactly; same seed, same scheme."""
    sch = _chunked(name, n, s, opts)
    assert sch.chunked and sch.name == name
    covered = sorted({c for plan in sch.placement for c in plan})
    assert covered == list(range(sch.k))
    width = max(len(p) for p in sch.placement)
    assert all(0 <= pos < len(sch.placement[w]) for w in range(n) for pos, _ in sch.message_ends(w))
    rng = np.random.default_rng(1)
    G = rng.standard_normal((sch.k, 2 * opts.get("l", 1)))
    T = 1 + rng.exponential(size=(30, n, width))
    T[rng.random((30, n)) < 0.1] = np.inf
    stop = sch.chunk_completion_time(T)
    F = np.cumsum(T, axis=-1)
    for r in range(len(T)):
        if not np.isfinite(stop[r]):
            continue
        done = [(w, pos) for w in range(n) for pos in range(width) if F[r, w, pos] <= stop[r]]
        msgs = [
            sch.chunk_message(w, 0, sch.placement[w][p], G[sch.placement[w][p]]) for w, p in done
        ]
        assert sch.ready([(m.partitions[0], m.worker) for m in msgs])
        _, upd = sch.master_update(sch.init_master(), 0, msgs)
        assert upd.exact and upd.partition_weights.shape == (sch.k,)
        np.testing.assert_allclose(upd.gradient[: G.shape[1]], G.sum(axis=0), atol=1e-8)
        exact, res = sch.decode_chunks_batch((F[r] <= stop[r])[None])
        assert exact[0] and res[0] < 1e-8
    other = _chunked(name, n, s, opts)
    assert other.placement == sch.placement
    np.testing.assert_array_equal(other.chunk_completion_time(T), stop)


# --- the round protocol, for all registered schemes (stateful, chunked, sequential too) ---
#
# One driver runs any scheme the way the local backend does (NumPy payloads, float64):
# every worker computes its plan each round (a straggler's work still advances its own
# state, as a late worker's does), and the messages of the workers in ``stragglers`` do
# not reach the master.  Chunked schemes stream one message per piece; a straggler sends
# only its first message's pieces (partial work).  Sequential schemes compute the job
# each worker owes at that job's partition gradients.

ALL_SCHEMES = sorted(REGISTRY)
SMALL_SIZES = [(6, 2), (7, 2), (6, 1), (4, 1)]


def _scheme(name, n, s, seed=0):
    try:
        return make_scheme(name, n, effective_stragglers(name, s), rng=np.random.default_rng(seed))
    except ValueError:
        return None


def _small(name):
    """The first small (n, s) the scheme exists for, and the scheme."""
    for n, s in SMALL_SIZES:
        sch = _scheme(name, n, s)
        if sch is not None:
            return n, sch
    raise AssertionError(f"{name} exists for none of {SMALL_SIZES}")


def _grads(sch, rounds, d=3, seed=1, constant=False):
    """``G[t]``: the partition gradients of round (job) ``t``, shape (rounds, k, d)."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((1 if constant else rounds, sch.k, d))
    return np.broadcast_to(G, (rounds, sch.k, d)) if constant else G


def _init(sch):
    return [sch.init_worker(w) for w in range(sch.n)], sch.init_master()


def _drive(sch, G, stragglers, state, start, rounds):
    """Rounds ``start .. start + rounds - 1`` from ``state = (workers, master)``; returns the
    new state and each round's update (gradient copied: message buffers get reused)."""
    workers, master = list(state[0]), state[1]
    ups = []
    for t in range(start, start + rounds):
        msgs = []
        if getattr(sch, "chunked", False):
            for w, plan in enumerate(sch.placement):
                stop = sch.message_ends(w)[0][0] + 1 if w in stragglers else len(plan)
                msgs += [sch.chunk_message(w, t, c, G[t][c]) for c in plan[:stop]]
        elif getattr(sch, "sequential", False):
            jobs = sch.jobs(master.plan, t)
            for w in range(sch.n):
                job = int(jobs[w])
                grads = {p: G[job][p] for p in sch.compute_plan(None, w, t)}
                msg = sch.worker_message(None, w, job, grads)[1]
                msgs += [] if w in stragglers else [msg]
        else:
            for w in range(sch.n):
                plan = sch.compute_plan(workers[w], w, t)
                if hasattr(sch, "release"):
                    workers[w] = sch.release(workers[w], w, plan)
                workers[w], msg = sch.worker_message(workers[w], w, t, {p: G[t][p] for p in plan})
                if w not in stragglers:
                    msgs.append(replace(msg, vector=np.array(msg.vector)))
        master, upd = sch.master_update(master, t, msgs)
        grad = None if upd.gradient is None else np.array(upd.gradient)
        ups.append(replace(upd, gradient=grad))
    return (workers, master), ups


@pytest.mark.parametrize("name", ALL_SCHEMES)
def test_scheme_speaks_the_round_protocol(name):
    """Every scheme: describes itself, pickles (backends ship it), and each update is
    consistent (weights per partition, exact => covered, used workers exist)."""
    n, sch = _small(name)
    assert sch.name == name and sch.n == n and sch.k >= 1
    lines = sch.describe()
    assert lines and all(isinstance(x, str) for x in lines) and name in lines[0]
    assert pickle.loads(pickle.dumps(sch)).describe() == lines
    _, ups = _drive(sch, _grads(sch, 8), (), _init(sch), 0, 8)
    for u in ups:
        assert u.partition_weights.shape == (sch.k,) and u.residual >= 0
        assert set(u.used) <= set(range(n)) and (u.covered or not u.exact)
        assert u.gradient is None or np.isfinite(np.asarray(u.gradient)).all()


@pytest.mark.parametrize("name", ALL_SCHEMES)
def test_state_is_a_value(name):
    """Continuing from a state twice, and from a deep copy of it, gives bit-identical
    updates: nothing outside the state carries over between rounds, and no round changes
    the state it was given in a way that matters."""
    n, sch = _small(name)
    G = _grads(sch, 12)
    stragglers = {n - 1}
    state, _ = _drive(sch, G, stragglers, _init(sch), 0, 5)
    snapshot = copy.deepcopy(state)
    _, ups = _drive(sch, G, stragglers, state, 5, 7)
    _, reused = _drive(sch, G, stragglers, state, 5, 7)
    _, again = _drive(sch, G, stragglers, snapshot, 5, 7)
    for a, b in [*zip(ups, again, strict=True), *zip(reused, again, strict=True)]:
        assert (a.gradient is None) == (b.gradient is None)
        if a.gradient is not None:
            np.testing.assert_array_equal(a.gradient, b.gradient)
        assert (a.exact, a.used, a.decoder) == (b.exact, b.used, b.decoder)
        np.testing.assert_array_equal(a.partition_weights, b.partition_weights)


def _tolerance(sch) -> int:
    """Stragglers per round under which the registry promises the exact sum every round
    (SR-SGC: its inner code's s', so no job needs a reattempt)."""
    return sch.s_code if getattr(sch, "sequential", False) else sch.s


@pytest.mark.parametrize("name", [nm for nm in ALL_SCHEMES if REGISTRY[nm].exact])
def test_exact_where_promised_for_every_small_straggler_set(name):
    """Every set of at most s stragglers (the same ones every round), float64: once the
    scheme's pipeline is full, each update is the full gradient sum to 1e-10 (gradients
    that do not change between rounds, so stale parts are exact too)."""
    n, sch = _small(name)
    rounds = 2 * sch.s + 6  # past PGC's warm-up and filling rounds, SR-SGC's delay
    G = _grads(sch, rounds, constant=True)
    truth = G[0].sum(axis=0)
    for size in range(_tolerance(sch) + 1):
        for stragglers in itertools.combinations(range(n), size):
            _, ups = _drive(sch, G, set(stragglers), _init(sch), 0, rounds)
            for u in ups[-3:]:
                assert u.covered and u.gradient is not None, (stragglers, u.fallbacks)
                got = np.asarray(u.gradient)[: truth.size]
                np.testing.assert_allclose(got, truth, rtol=0, atol=1e-10)
