"""Fitting the clock model: known synthetic parts come back; the shared traces are matched (c)."""

import numpy as np
import pytest

from gradcode.clock import check_fit
from gradcode.stragglers import ClockModel, ClockSamples, LoadTrace, Stall, fit_clock, read_trace
from gradcode.stragglers.distributions import Constant, Empirical, LogNormal, Normal
from gradcode.stragglers.fit import stall_threshold

from .trace_files import SHARED_NAMES, shared_trace

LOADS = (0.0, 1.0, 2.0, 4.0)


def synthetic(model, rounds=40, workers=64, seed=0) -> LoadTrace:
    """A long trace drawn from ``model``: each (round, load) row its own draw, as measured."""
    rng = np.random.default_rng(seed)
    table = np.stack([model.sample(rng, rounds, workers, load=L) for L in LOADS], axis=-1)
    return LoadTrace(table, LOADS, source="synthetic")


TRUE = ClockModel(
    latency=LogNormal(1.0, 0.5, 0.25),
    compute=Constant(0.2),
    common=Normal(0.0, 0.05),
    stall=Stall((0.0, 0.25, 0.25, 0.25), LOADS, Constant(0.05), Constant(20.0)),
)


def test_fit_recovers_known_parts():
    fit = fit_clock(ClockSamples.from_trace(synthetic(TRUE)))
    m = fit.model
    assert m.compute.value == pytest.approx(0.2, abs=0.01)
    assert m.bandwidth is None
    assert isinstance(m.common, Normal) and m.common.sd == pytest.approx(0.05, abs=0.02)
    assert m.stall.prob[0] == 0.0 and np.mean(m.stall.prob[1:]) == pytest.approx(0.25, abs=0.1)
    assert m.stall.size.quantile(0.5) == pytest.approx(20.0, abs=0.5)
    assert 2 < fit.stall_threshold - 1.5 < 19.5  # between the body and the stalls
    body = m.latency.draw(np.random.default_rng(0).random(100_000))
    truth = TRUE.latency.draw(np.random.default_rng(1).random(100_000))
    for q in (0.1, 0.5, 0.9, 0.99):
        assert np.quantile(body, q) == pytest.approx(np.quantile(truth, q), abs=0.05)


def test_few_rounds_choose_the_parametric_body():
    m = ClockModel(LogNormal(1.0, 0.5, 0.4), Constant(0.1))
    few = fit_clock(ClockSamples.from_trace(synthetic(m, rounds=2, workers=6)), knots=101)
    many = fit_clock(ClockSamples.from_trace(synthetic(m, rounds=40, workers=64)))
    assert set(few.heldout_ks) == {"empirical", "lognormal"}
    assert few.body == "lognormal" and isinstance(few.model.latency, LogNormal)
    assert many.body in ("empirical", "lognormal")


def test_recorded_compute_and_comm_are_read_off():
    rng = np.random.default_rng(0)
    size = 20_000
    r, w = rng.integers(0, 30, size), rng.integers(0, 8, size)
    load = rng.integers(1, 4, size).astype(float)
    comp = load * rng.uniform(0.09, 0.11, size)
    comm = 1e6 / rng.uniform(0.9e7, 1.1e7, size)  # 1 MB at ~10 MB/s
    sec = 0.5 + comp + comm
    fit = fit_clock(ClockSamples(r, w, load, sec, comp, comm, message_bytes=1e6))
    m = fit.model
    assert m.compute.quantile(0.5) == pytest.approx(0.1, rel=0.02)
    assert m.bandwidth.quantile(0.5) == pytest.approx(1e7, rel=0.02) and m.message_bytes == 1e6
    assert m.latency.quantile(0.5) == pytest.approx(0.5, abs=1e-6)


def test_fit_errors():
    one = ClockSamples(np.arange(4), np.zeros(4), np.ones(4), np.ones(4), source="x")
    with pytest.raises(ValueError, match="x: every measurement has load 1; fitting"):
        fit_clock(one)
    with pytest.raises(ValueError, match="comm times need message_bytes"):
        ClockSamples(np.arange(2), np.zeros(2), np.ones(2), np.ones(2), comm=np.ones(2))
    with pytest.raises(ValueError, match="seconds has 3 entries, expected 2"):
        ClockSamples(np.arange(2), np.zeros(2), np.ones(2), np.ones(3))


def test_stall_threshold_keeps_a_continuous_tail_in_the_body():
    rng = np.random.default_rng(0)
    gauss = rng.standard_normal(100_000)
    assert stall_threshold(gauss) == np.inf  # nothing beyond 8 sigma
    gap = np.r_[gauss, 15.0, 16.0, 200.0, 210.0]
    assert 16.0 < stall_threshold(gap) < 200.0
    assert stall_threshold(np.zeros(10)) == np.inf


def test_empirical_body_from_a_bimodal_latency_beats_the_lognormal():
    """A fast mode and a slow mode (as on AWS Lambda): only the empirical body fits."""
    rng = np.random.default_rng(2)
    x = np.where(rng.random(20_000) < 0.15, 1.4, 2.0) + 0.05 * rng.standard_normal(20_000)
    lat = Empirical.of(x, 1001)
    fit = fit_clock(ClockSamples.from_trace(synthetic(ClockModel(lat, Constant(0.05)))))
    assert fit.body == "empirical" and fit.heldout_ks["lognormal"] > 2 * fit.heldout_ks["empirical"]


@pytest.mark.parametrize("trace_name", SHARED_NAMES)
def test_fitted_model_matches_the_shared_trace_replay(trace_name):
    """Done-when (c): DGD and FRC (s = 3) at the trace's n = 256, within 10 % of the replay."""
    trace = read_trace(shared_trace(trace_name))
    fit = fit_clock(ClockSamples.from_trace(trace))
    for row in check_fit(trace, fit.model, schemes=(("dgd", 0), ("frc", 3))):
        assert row.n == 256
        assert 0.9 <= row.ratio <= 1.1, (row.scheme, row.replay, row.model)
