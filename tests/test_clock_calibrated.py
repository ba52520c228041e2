"""The calibrated clock of a real runtime: the arrival model, its fit, late-time merging."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcode.clock import Overheads, fit_overheads, merge_late_times, predict_round
from gradcode.codes import make_code, make_scheme
from gradcode.runtime.ray.calibrate import OverheadTracker


def test_arrival_is_launch_plus_the_later_of_compute_and_delay_plus_the_way_back():
    o = Overheads(message=0.01, per_byte=1e-6, launch=(0.0, 0.2, 0.1),
                  compute=(0.05, 0.05, 0.05), per_partition=(0.1, 0.1, 0.1))  # fmt: skip
    got = o.arrivals(np.array([1.0, 0.1, np.inf]), [2, 2, 2], message_bytes=1000.0)
    # worker 0: delay-bound (1.0 > 0.25); worker 1: compute-bound (0.25 > 0.1); 2: crashed
    np.testing.assert_allclose(got[:2], [0.0 + 1.0 + 0.011, 0.2 + 0.25 + 0.011])
    assert got[2] == np.inf


def test_no_overheads_predict_the_virtual_clock():
    """With every overhead 0 the calibrated prediction is the simulator's duration."""
    rng = np.random.default_rng(0)
    for name, n, s in [("frc", 8, 1), ("crc", 6, 2), ("dgd", 5, 0), ("is_sgd", 6, 2)]:
        scheme = make_scheme(name, n, s)
        for _ in range(20):
            T = rng.exponential(size=n) + 1
            assert predict_round(scheme, T, 1, Overheads()) == pytest.approx(
                float(scheme.completion_time(T[None])[0])
            )


def test_predict_round_follows_the_stop_rule_deadline_and_fallback():
    code = make_code("frc", 4, 1)  # groups {0,1} {2,3}: max over groups of the min
    o = Overheads(message=0.5, master=0.1)
    assert predict_round(code, [1.0, 3.0, 2.0, 5.0], 1, o) == pytest.approx(2.0 + 0.5 + 0.1)
    assert predict_round(code, [1.0, 3.0, 2.0, 5.0], 1, o, deadline=1.0) == pytest.approx(1.1)
    # group {2,3} crashed: never decodable -> every finite arrival is taken
    got = predict_round(code, [1.0, 3.0, np.inf, np.inf], 1, o)
    assert got == pytest.approx(3.0 + 0.5 + 0.1)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 0.05), min_size=3, max_size=6),
    st.floats(0.001, 0.02),
    st.floats(0.0, 0.01),
    st.floats(1e-9, 1e-7),
)
def test_fit_recovers_known_overheads(launch, per_part, latency, per_byte):
    """Warm-up samples generated from known overheads (two loads, two message sizes, no
    noise) are fitted back exactly."""
    n, nbytes = len(launch), 4e5
    S = [(w, L, launch[w], 0.002 + per_part * L, latency + nbytes * per_byte, nbytes)
         for w in range(n) for L in (1, 4) for _ in range(3)]  # fmt: skip
    T = [(w, 0, launch[w], 0.0, latency + 8 * per_byte, 8.0) for w in range(n)]
    o = fit_overheads(S, T, n=n)
    np.testing.assert_allclose(o.launch, launch, atol=1e-12)
    np.testing.assert_allclose(o.per_partition, [per_part] * n, rtol=1e-9)
    np.testing.assert_allclose(o.compute, [0.002] * n, atol=1e-9)
    assert o.message == pytest.approx(latency, abs=1e-9)
    assert o.per_byte == pytest.approx(per_byte, rel=1e-6)


def test_one_load_gives_compute_per_partition_and_missing_workers_zero():
    S = [(0, 4, 0.01, 0.08, 0.003, 100.0), (0, 4, 0.03, 0.12, 0.005, 100.0)]
    o = fit_overheads(S, n=2)
    assert o.per_partition == pytest.approx((0.025, 0.0)) and o.compute == (0.0, 0.0)
    assert o.launch == pytest.approx((0.02, 0.0))
    assert o.per_byte == 0.0  # one message size: the way back is all latency


def test_the_fitted_clock_predicts_a_runtime_it_was_fitted_on():
    """A toy runtime with per-worker launch and compute and a way back: fit its warm-up
    (zero delay), then predict rounds with delays -- exactly its durations."""
    rng = np.random.default_rng(3)
    n, scheme = 8, make_scheme("frc", 8, 1)
    launch, per_part, back = rng.uniform(0, 0.05, n), rng.uniform(0.01, 0.03, n), 0.004

    def runtime(targets):
        arr = launch + np.maximum(per_part * 2, targets) + back
        return float(scheme.completion_time(arr[None])[0])

    warm = [(w, 2, launch[w], per_part[w] * 2, back, 1e3) for w in range(n) for _ in range(3)]
    o = fit_overheads(warm, n=n)
    for _ in range(50):
        targets = rng.exponential(0.05, n)
        assert predict_round(scheme, targets, 2, o) == pytest.approx(runtime(targets))


def test_tracker_learns_the_way_back_from_rounds_and_keeps_warmup_for_silent_workers():
    warm = [(w, 1, 0.01 * w, 0.02, 0.050, 1e3) for w in range(4) for _ in range(3)]
    tr = OverheadTracker(4, warm, tiny=[])
    assert tr.current().message == pytest.approx(0.050)
    for _ in range(6):  # only workers 0 and 1 report in the rounds, uncongested
        for w in (0, 1):
            tr.observe((w, 1, 0.02 * w, 0.02, 0.002, 1e3))
    o = tr.current()  # 12 new replies >= 3 n: refitted
    assert o.message == pytest.approx(0.002)
    assert o.launch[3] == pytest.approx(0.03)  # never observed: the warm-up's value
    assert o.launch[1] == pytest.approx(0.02)  # median of 3 x 0.01 and 6 x 0.02


def test_merge_late_times_fills_the_right_round_and_copies():
    recs = [
        {"round": 4, "worker_times": [1.0, None, None], "worker_compute": [0.1, None, None]},
        {"round": 5, "worker_times": [None, 2.0, 2.1], "late_times": [[4, 1, 3.0, 0.2]]},
        {"round": 6, "worker_times": [1.0, 1.0, 1.0],
         "late_times": [[5, 0, 4.0, 0.3], [4, 9, 1.0, 0.1], [99, 0, 1.0, 0.1]]},
    ]  # fmt: skip
    out = merge_late_times(recs)
    assert out[0]["worker_times"] == [1.0, 3.0, None]
    assert out[0]["worker_compute"] == [0.1, 0.2, None]
    assert out[1]["worker_times"] == [4.0, 2.0, 2.1]
    assert recs[0]["worker_times"] == [1.0, None, None]  # input untouched
