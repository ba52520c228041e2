"""Long-format traces: the replay rule, exact replays for dgd/is_sgd/frc/crc, clear errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes import make_code, make_scheme
from gradcode.runtime import LocalCluster, Schedule
from gradcode.runtime.config import DelaySpec, parse_delay
from gradcode.sim import simulate_model
from gradcode.stragglers import LoadTrace, PersistentSlow, TraceReplay, read_trace
from gradcode.stragglers.traces import at_loads

from .runtime.helpers import oracle
from .trace_files import SHARED_NAMES, own_table, shared_trace, write_long

LOADS = (0.0, 1.0, 2.0, 4.0)


@pytest.fixture
def own(tmp_path):
    table = own_table(loads=LOADS)
    return write_long(tmp_path / "long.csv", table, LOADS), table


def test_format_detected_and_table_read_exactly(own):
    path, table = own
    trace = read_trace(path)
    assert isinstance(trace, LoadTrace) and trace.loads == LOADS
    np.testing.assert_array_equal(trace.table, table)
    assert isinstance(parse_delay(f"trace:path={path}"), LoadTrace)


def test_measured_loads_exact_interpolated_between_extrapolated_beyond(own):
    path, table = own
    t = read_trace(path)
    for k, L in enumerate(LOADS):  # round r -> trace round r mod R, worker i -> worker i
        np.testing.assert_array_equal(t.sample(None, 7, 8, load=L), table[np.arange(7) % 3, :, k])
    mid = table[..., 2] + 0.5 * (table[..., 3] - table[..., 2])  # load 3: halfway from 2 to 4
    np.testing.assert_allclose(t.sample(None, 3, 8, load=3), mid, rtol=1e-15)
    beyond = table[..., 3] + 0.5 * (table[..., 3] - table[..., 2])  # load 5: the 2-4 slope on
    np.testing.assert_allclose(t.sample(None, 3, 8, load=5), beyond, rtol=1e-15)
    per_worker = t.sample(None, 3, 8, load=[1, 4, 1, 4, 0, 0, 2, 2])
    np.testing.assert_array_equal(per_worker[:, 1], table[:, 1, 3])
    np.testing.assert_array_equal(per_worker[:, 4], table[:, 4, 0])


def test_extrapolation_below_and_clipping():
    t = LoadTrace(np.array([[[2.0, 3.0]]]), loads=(1.0, 2.0))
    assert t.sample(None, 1, 1, load=0)[0, 0] == 1.0
    assert at_loads(np.array([[[1.0, 3.0]]]), (1.0, 2.0), [0.0])[0, 0] == 0.0  # -1 clipped to 0


def test_crash_cells_stay_crashed():
    t = LoadTrace(np.array([[[1.0, np.inf, 2.0]]]), loads=(0.0, 1.0, 2.0))
    assert t.sample(None, 1, 1, load=0)[0, 0] == 1.0
    assert np.isinf(t.sample(None, 1, 1, load=0.5)[0, 0])
    assert np.isinf(t.sample(None, 1, 1, load=1)[0, 0])


def test_chunks_are_increments_of_the_load_curve():
    table = np.array([[[1.0, 2.0, 1.8, 3.0]]])
    t = LoadTrace(table, loads=(0.0, 1.0, 2.0, 3.0))
    np.testing.assert_allclose(t.chunk_times(None, 1, 1, 3)[0, 0], [2.0, 0.0, 1.0])
    half = t.chunk_times(None, 1, 1, 2, chunk_load=0.5)[0, 0]  # loads 0.5 and 1
    np.testing.assert_allclose(np.cumsum(half), [1.5, 2.0])


def _expected(name, n, s, table_at):
    """Round times by the documented rule, written out per scheme (no simulator)."""
    if name == "dgd":
        return table_at(1).max(axis=1)
    if name == "is_sgd":  # the (n - s)-th arrival at load 1
        return np.sort(table_at(1), axis=1)[:, n - s - 1]
    if name == "frc":  # fastest of each group of s + 1, slowest group, at load s + 1
        return table_at(s + 1).reshape(-1, n // (s + 1), s + 1).min(axis=2).max(axis=1)
    if name == "crc":  # any n - s workers, at load s + 1
        return np.sort(table_at(s + 1), axis=1)[:, n - s - 1]
    raise AssertionError(name)


SCHEMES = [("dgd", 0), ("is_sgd", 3), ("frc", 3), ("crc", 3)]


@pytest.mark.parametrize("name,s", SCHEMES)
def test_replay_is_exact_in_the_simulator(own, name, s):
    path, table = own
    rounds, n = 7, 8
    res = simulate_model(make_code(name, n, s), read_trace(path), np.random.default_rng(0), rounds)
    expect = _expected(name, n, s, lambda L: table[np.arange(rounds) % 3, :, LOADS.index(L)])
    np.testing.assert_array_equal(res.times, expect)


@pytest.mark.parametrize("name,s", SCHEMES)
def test_replay_is_exact_in_the_local_cluster(own, name, s):
    path, table = own
    n, rounds = 8, 5
    scheme = make_scheme(name, n, s, rng=np.random.default_rng(0))
    orc = oracle(n)
    cluster = LocalCluster(scheme, orc, Schedule(read_trace(path), 3, rounds, n))
    w = orc.initial_weights()
    got = [cluster.run_round(t, w).duration for t in range(rounds)]
    expect = _expected(name, n, s, lambda L: table[np.arange(rounds) % 3, :, LOADS.index(L)])
    np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("trace_name", SHARED_NAMES)
@pytest.mark.parametrize("n", [24, 256])
def test_shared_traces_replay_exactly(trace_name, n):
    path = shared_trace(trace_name)
    raw = np.genfromtxt(path, delimiter=",", names=True)  # an independent reader
    R = int(raw["round"].max()) + 1
    table = np.zeros((R, 256, 5))
    table[raw["round"].astype(int), raw["worker"].astype(int), raw["load"].astype(int)] = raw[
        "seconds"
    ]
    trace = read_trace(path)
    rounds = 2 * R
    for name, s in SCHEMES:
        res = simulate_model(make_code(name, n, s), trace, np.random.default_rng(0), rounds)
        expect = _expected(name, n, s, lambda L: table[np.arange(rounds) % R, :n, int(L)])
        np.testing.assert_array_equal(res.times, expect, err_msg=f"{name} s={s} n={n}")


def test_wrappers_compose_with_long_traces(own):
    path, table = own
    m = PersistentSlow(read_trace(path), k=1, kappa=3.0, layout="aligned")
    t = m.sample(None, 3, 8, load=2)
    np.testing.assert_array_equal(t[:, 0], 3.0 * table[:, 0, 2])
    built = DelaySpec(f"trace:path={path}", crash="workers=1").build()
    assert np.isinf(built.sample(np.random.default_rng(0), 3, 8, load=1)[:, 1]).all()
    assert (
        built.load_aware and built.chunk_times(None, 3, 8, 2)[:, 1].tolist() == [[np.inf] * 2] * 3
    )


def test_wide_format_unchanged(tmp_path):
    f = tmp_path / "wide.csv"
    f.write_text("w0,w1\n1.0,2.0\n")
    m = read_trace(f)
    assert isinstance(m, TraceReplay) and not m.load_aware
    np.testing.assert_array_equal(m.sample(None, 1, 2, load=3), [[3.0, 6.0]])
    with pytest.raises(ValueError, match="line 3: missing or non-numeric"):
        TraceReplay.from_csv(_write(tmp_path, "w0,w1\n1,2\n1,x\n"))


def _write(tmp_path, text, name="t.csv"):
    f = tmp_path / name
    f.write_text(text)
    return f


HEAD = "round,worker,load,seconds\n"
GOOD = "0,0,0,1.0\n0,0,1,1.5\n0,1,0,1.1\n0,1,1,1.6\n"


@pytest.mark.parametrize(
    "text,msg",
    [
        ("round,worker,seconds\n0,0,1\n", "line 1: header lacks column.s. load"),
        (HEAD + "0,0,0,1.0\n0,0,1,abc\n", "line 3: seconds 'abc' is not a number"),
        (HEAD + "0,0,0,1.0\n0,0,1,-2\n", "line 3: seconds must be >= 0"),
        (HEAD + "0,0,-1,1.0\n", "line 2: load must be >= 0"),
        (HEAD + "0,0,0,nan\n", "line 2: seconds must be a finite number"),
        (HEAD + "0,0.5,0,1\n", "line 2: worker must be an integer"),
        (HEAD + "0,0,0\n", "line 2: expected 4 fields, got 3"),
        (
            HEAD + GOOD + "0,1,1,1.7\n",
            "line 6: repeats round 0, worker 1, load 1 .first at line 5.",
        ),
        (HEAD + GOOD + "1,0,0,1.0\n", "no row for round 1, worker 0, load 1"),
        (HEAD + "0,0,0,1\n0,0,1,1\n0,2,0,1\n0,2,1,1\n", "no row for worker 1"),
        (HEAD + "0,0,1,1\n0,1,1,1\n", "needs at least two measured loads"),
        (HEAD, "no measurements"),
    ],
)
def test_malformed_long_traces_name_the_row(tmp_path, text, msg):
    with pytest.raises(ValueError, match=msg) as err:
        read_trace(_write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_too_few_workers_and_trace_load_on_long(tmp_path):
    path = _write(tmp_path, HEAD + GOOD)
    with pytest.raises(ValueError, match="has 2 workers, asked for n=3"):
        read_trace(path).sample(None, 1, 3)
    with pytest.raises(ValueError, match="trace_load applies to the wide format only"):
        parse_delay(f"trace:path={path},trace_load=2")
    with pytest.raises(ValueError, match="not found"):
        parse_delay(f"trace:path={tmp_path / 'missing.csv'}")


@given(
    values=st.lists(st.floats(0, 100), min_size=2, max_size=6),
    gaps=st.lists(st.floats(0.25, 3), min_size=5, max_size=5),
    u=st.floats(0, 1),
)
def test_interpolation_is_exact_at_and_between_measured_loads(values, gaps, u):
    loads = np.cumsum([0.0, *gaps])[: len(values)]
    table = np.array(values)[None, None, :]
    for k, L in enumerate(loads):
        assert at_loads(table, loads, L)[0, 0] == values[k]
    for k in range(len(values) - 1):  # between two loads: between their two values
        L = loads[k] + u * (loads[k + 1] - loads[k])
        got = at_loads(table, loads, L)[0, 0]
        assert min(values[k : k + 2]) - 1e-9 <= got <= max(values[k : k + 2]) + 1e-9
    t = LoadTrace(table, tuple(loads))
    inc = t.chunk_times(None, 1, 1, 4, chunk_load=0.7)[0, 0]
    assert (inc >= 0).all()
    finish = [t.sample(None, 1, 1, load=0.7 * c)[0, 0] for c in range(1, 5)]
    np.testing.assert_allclose(np.cumsum(inc), np.maximum.accumulate(finish), rtol=1e-12, atol=1e-9)
