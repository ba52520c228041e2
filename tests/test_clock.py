"""Replays, fit checks and regimes (gradcode.clock)."""

import numpy as np
import pytest

from gradcode.clock import Overheads, check_fit, linear_reading, predict_duration, regimes, replay
from gradcode.codes import make_code
from gradcode.stragglers import LoadTrace

from .trace_files import own_table

LOADS = (0.0, 1.0, 2.0, 4.0)


def test_block_replay_is_every_block_of_workers():
    table = own_table(rounds=3, workers=17, loads=LOADS)
    trace = LoadTrace(table, LOADS)
    code = make_code("dgd", 8, 0)
    blocks = replay(code, trace, blocks=True)
    assert blocks.shape == (6,)  # two blocks of 8 (worker 16 left out), 3 rounds each
    np.testing.assert_array_equal(blocks[:3], table[:, :8, 1].max(axis=1))
    np.testing.assert_array_equal(blocks[3:], table[:, 8:16, 1].max(axis=1))
    np.testing.assert_array_equal(replay(code, trace), blocks[:3])
    with pytest.raises(ValueError, match="17 workers, the scheme needs n=24"):
        replay(make_code("dgd", 24, 0), trace)


def test_check_fit_of_the_trace_itself_is_exact():
    trace = LoadTrace(own_table(rounds=4, workers=8, loads=LOADS), LOADS)
    rows = check_fit(trace, trace, cells=4 * 8)  # the trace as its own model: the same rounds
    assert [(r.scheme, r.s, r.n) for r in rows] == [("dgd", 0, 8), ("frc", 3, 8)]
    assert all(r.ratio == 1.0 for r in rows)


def test_regimes_latency_bound_vs_compute_bound():
    """A trace whose time does not grow with load: redundancy is free as measured and
    costs (s + 1)x read as time ∝ load."""
    rng = np.random.default_rng(0)
    flat = np.repeat(1.0 + rng.random((5, 12, 1)), 4, axis=2)
    rows = regimes(LoadTrace(flat, LOADS), n=12, s_values=range(4), schemes=("frc",))
    get = {(r["regime"], r["scheme"], r["s"]): r["mean_round_time"] for r in rows}
    assert ("measured", "frc", 2) in get and ("linear", "frc", 3) in get
    for s in (1, 2, 3):
        assert get["measured", "frc", s] <= get["measured", "dgd", 0]
        assert get["linear", "frc", s] > get["measured", "frc", s]
    k = linear_reading(LoadTrace(flat, LOADS))
    np.testing.assert_array_equal(k.sample(None, 5, 12, load=3), 3 * flat[..., 1])


def test_predict_duration_adds_message_and_master_overheads():
    T = np.array([[1.0, 3.0, 2.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    got = predict_duration(make_code("dgd", 4, 0), T, Overheads(message=0.5, master=0.25))
    assert got.tolist() == [5.75, 1.75]
