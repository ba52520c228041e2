"""The partial-straggler reproduction: panels, settings, protocols with communication."""

import csv

import numpy as np
import pytest

from gradcode.codes.partial import completion_time_original, completion_time_partial
from gradcode.comm import CommModel
from gradcode.reproduce import partial_protocols as pp
from gradcode.reproduce import ramamoorthy2024 as r24
from gradcode.reproduce import ramamoorthy2024_setting as setting


def test_run_writes_all_panels(tmp_path):
    summary = r24.run(tmp_path, trials=20, rng=np.random.default_rng(0))
    stems = ("a_mse_vs_deadline", "b_completion_vs_l", "c_ordering", "d_vandermonde")
    for stem in stems + ("e_mse_ordering",):
        assert (tmp_path / f"{stem}.png").stat().st_size > 0
        with (tmp_path / f"{stem}.csv").open() as fh:
            assert len(list(csv.reader(fh))) > 2
    with (tmp_path / "traffic.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["protocol"] for r in rows} == {"stream", "original", "tandon_partial"}
    ratios = summary["completion_ratio_proposed_over_original"]
    assert all(r <= 1 for r in ratios.values() if r == r)  # proposed never later
    assert summary["ordering"]["delta=4"]["qmax_optimal_l1"] == 1 + 16 * 4 + 6
    head = summary["nmse_at_T_6_8_10_l1"]
    assert all(p <= o for p, o in zip(head["stream"], head["original"], strict=True))


def test_persistent_speed_gives_a_larger_speedup_than_iid(tmp_path):
    out = {}
    for model in ("iid", "persistent"):
        cfg = r24.config_from_options(trials=400, deltas="4", ls="1", chunk_model=model)
        out[model] = r24.run(tmp_path / model, rng=np.random.default_rng(1), cfg=cfg)["speedup"]
    key = "delta=4,circulant,l=1"
    assert 2.0 < out["iid"][key] < out["persistent"][key]


def test_more_chunks_and_other_settings_run(tmp_path):
    cfg = r24.config_from_options(trials=10, m=8, N=16, deltas="3", failures="bernoulli")
    s = r24.run(tmp_path, rng=np.random.default_rng(0), cfg=cfg)
    assert s["settings"]["N"] == 16 and s["ordering"]["delta=3"]["qmax_optimal_l1"] > 0


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"m": 9, "deltas": "4"}, "even m"),
        ({"N": 30}, "multiple of m"),
        ({"failures": "some"}, "failures must"),
        ({"chunk_model": "bursty"}, "chunk model"),
        ({"ls": "4"}, "every l"),
        ({"deltas": "4,x"}, "comma-separated"),
        ({"latency": -1.0}, "latency"),
        ({"trials": 1}, "trials"),
    ],
)
def test_bad_settings_are_one_line_value_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        r24.config_from_options(**kw)


def test_communication_time_enters_every_protocol():
    cfg = r24.Config(trials=50)
    a = r24.graphs(4, np.random.default_rng(0))["circulant"]
    d = setting.draw(cfg, a, 4, np.random.default_rng(1))
    free, L = CommModel(), 0.25
    lat = CommModel(latency=L)
    for l in (1, 2):
        tp = completion_time_partial(a, l, d.times)
        to = completion_time_original(a, l, d.times)
        np.testing.assert_allclose(pp.completion("stream", a, l, d.times, free), tp)
        np.testing.assert_allclose(pp.completion("reference", a, l, d.times, free), tp)
        np.testing.assert_allclose(pp.completion("stream", a, l, d.times, lat), tp + L)
        # ack, feedback downlink, one uplink vector: three latencies
        np.testing.assert_allclose(pp.completion("reference", a, l, d.times, lat), tp + 3 * L)
        np.testing.assert_allclose(pp.completion("original", a, l, d.times, lat), to + L)
        slow = CommModel(latency=0.0, bandwidth=1.0)  # d numbers take one time unit
        ts = pp.completion("stream", a, l, d.times, slow)
        fin = np.isfinite(tp)
        assert (ts[fin] >= tp[fin] + 1.0 / l - 1e-12).all()
        tr = pp.traffic("reference", a, l, d.times, tp)
        assert (
            tr["extra_rounds"] == 1 and pp.traffic("stream", a, l, d.times, tp)["extra_rounds"] == 0
        )
        assert pp.traffic("original", a, l, d.times, to)["messages"] >= 20 - (4 - l)
    tt = pp.completion(
        "tandon_partial", a, 1, d.times, lat, tandon=d.tandon, piece_times=d.piece_times
    )
    t0 = pp.completion(
        "tandon_partial", a, 1, d.times, free, tandon=d.tandon, piece_times=d.piece_times
    )
    fin = np.isfinite(t0)
    assert fin.any() and (tt[fin] >= t0[fin] + L - 1e-12).all()
    assert pp.traffic("tandon_partial", a, 1, d.times, t0, tandon=d.tandon,
                      piece_times=d.piece_times)["messages"] <= 40  # fmt: skip


def test_rounding_and_vandermonde_error_grow_as_expected():
    assert setting.round_sig(np.array([123.456, -0.0012345]), 3).tolist() == [123.0, -0.00123]
    rng = np.random.default_rng(0)
    err = setting.interpolation_error
    assert err(20, 6, 20, rng) > 100 * err(20, 16, 20, rng)


def test_bad_trials():
    with pytest.raises(ValueError, match="trials"):
        r24.run(".", trials=1, rng=np.random.default_rng(0))
