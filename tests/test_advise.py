"""The advisor (gradcode.advisor, gradcode.advise): regimes with a known answer, brute force.

Brute force (tests/advise_oracle.py) times every buildable (scheme, s) through
the simulator on the same trace or model draws, independently of the
advisor's code, and multiplies by the documented convergence factor; the
recommendation must be its argmin.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

import gradcode
from gradcode.advisor import (
    STUDY_FACTORS,
    STUDY_FILES,
    advise,
    as_measured,
    characterise,
    factor_for,
    read_factors,
)
from gradcode.advisor.candidates import Timing, time_candidate
from gradcode.advisor.factors import derive_factors
from gradcode.codes import REGISTRY, make_code
from gradcode.stragglers import (
    CrashStop,
    LoadTrace,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
)

from .advise_oracle import argmin_set, brute_force, model_times, replay_times
from .trace_files import REPO, shared_trace, write_long

LOADS = (0.0, 1.0, 2.0, 3.0, 5.0)


def latency_bound_table(R=20, W=48, seed=0) -> np.ndarray:
    """~2 s of latency with a heavy tail (rare 10x spikes, not persistent), 0.03 s per partition."""
    rng = np.random.default_rng(seed)
    base = 1.8 + 0.4 * rng.random((R, W, 1))
    spikes = np.where(rng.random((R, W, 1)) < 0.03, 10 + 10 * rng.random((R, W, 1)), 0.0)
    return base + spikes + 0.03 * np.asarray(LOADS) + 0.01 * rng.random((R, W, len(LOADS)))


def _assert_is_argmin(advice, costs):
    best, winners = argmin_set(costs, rtol=1e-5)
    rec = advice.recommendation
    assert (rec.scheme, rec.s) in winners, (rec.scheme, rec.s, winners, best)
    assert rec.time_to_target == pytest.approx(best, rel=1e-5)


# ------------------------------------------------------------------ factors


def test_embedded_factors_are_the_studys():
    """STUDY_FACTORS is what derive_factors computes from the study's CSVs (no drift)."""
    assert derive_factors([REPO / p for p in STUDY_FILES]) == STUDY_FACTORS


def test_factor_rules():
    assert factor_for("frc", 3).value == 1.0  # exact, fresh: DGD's trajectory by definition
    assert factor_for("crc", 7).value == 1.0
    assert factor_for("pgc", 0).value == 1.0  # s = 0 is DGD
    assert factor_for("pgc", 3).value == STUDY_FACTORS["pgc"][3][0]  # stale: measured
    assert factor_for("pgc", 3).caveat  # missed the target on some study task
    assert not factor_for("is_sgd", 3).caveat
    lo, hi = STUDY_FACTORS["is_sgd"][1][0], STUDY_FACTORS["is_sgd"][3][0]
    assert factor_for("is_sgd", 2).value == pytest.approx((lo + hi) / 2, abs=1e-6)
    assert factor_for("is_sgd", 4).value == hi
    assert "extrapolated" in factor_for("is_sgd", 4).origin
    assert factor_for("lstsq", 2).value is None  # not in the study: no factor, a caveat
    user = {("is_sgd", None): 1.5, ("lstsq", 2): 1.1}
    assert factor_for("is_sgd", 3, user).value == 1.5
    assert factor_for("lstsq", 2, user).value == 1.1
    assert factor_for("lstsq", 2, user).origin == "user file"


def test_read_factors_csv_and_json(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("scheme,s,rounds_factor\nis_sgd,,1.2\nlstsq,2,1.05\n")
    assert read_factors(p) == {("is_sgd", None): 1.2, ("lstsq", 2): 1.05}
    j = tmp_path / "f.json"
    j.write_text(json.dumps({"is_sgd": 1.2, "sgc": {"3": 1.4}}))
    assert read_factors(j) == {("is_sgd", None): 1.2, ("sgc", 3): 1.4}
    for text, where in [
        ("scheme,s,rounds_factor\nnope,1,1.0\n", "line 2"),
        ("scheme,s,rounds_factor\nis_sgd,1,-1\n", "line 2"),
        ("scheme,s,rounds_factor\nis_sgd,1,1\nis_sgd,x,1\n", "line 3"),
        ("scheme,factor\n", "line 1"),
    ]:
        p.write_text(text)
        with pytest.raises(ValueError, match=where) as err:
            read_factors(p)
        assert str(p) in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------ regime


def test_regime_latency_bound_and_not_persistent():
    t = latency_bound_table()
    r = characterise(t, LOADS, max_load=5)
    assert r.kind == "latency-bound"
    assert r.per_partition == pytest.approx(0.03, abs=0.005)
    assert r.ratio(4.0) == pytest.approx((r.median + 0.09) / r.median, rel=0.02)
    assert r.slow_workers == () and abs(r.rank_correlation) < 0.2
    assert r.crashes == ()


def test_regime_compute_bound_persistent_slow_and_crash():
    rng = np.random.default_rng(1)
    unit = 1.0 + rng.exponential(0.2, (30, 16, 1))
    unit[:, [3, 11]] *= 4.0  # persistently slow workers 3 and 11
    t = unit * np.array([1.0, 2.0, 4.0])  # time ∝ load
    t[12:, 6, :] = np.inf  # worker 6 crashes at round 12
    r = characterise(t, (1.0, 2.0, 4.0), max_load=4)
    assert r.kind == "compute-bound" and r.ratio(4.0) == pytest.approx(4.0, rel=0.01)
    assert [w for w, _ in r.slow_workers] == [3, 11]
    assert all(x == pytest.approx(4.0, rel=0.2) for _, x in r.slow_workers)
    assert r.rank_correlation > 0.3 and r.persistent
    assert r.crashes == ({"worker": 6, "from_round": 12, "rounds": 18, "permanent": True},)


# ------------------------------------------------------------------ brute force


def test_latency_bound_trace_recommends_an_exact_code_the_brute_force_argmin():
    """(i) Redundancy is nearly free: an exact code wins, and it is the simulator's argmin."""
    t = latency_bound_table()
    trace = LoadTrace(t, LOADS)
    a = advise(trace, 12)
    rec = a.recommendation
    assert REGISTRY[rec.scheme].exact and rec.fresh and rec.s > 0
    _assert_is_argmin(a, brute_force(12, 4, lambda code: replay_times(code, t, LOADS)))
    assert "nearly free" in a.reason
    for c in a.candidates:  # every round time is the exact replay
        if c.scheme != "dgd" and "replay" in c.estimate:
            assert c.estimate.startswith("replay: 80 measured rounds (4 blocks of 12")


def test_compute_bound_heavy_tails_recommend_the_brute_force_argmin():
    """(ii) Time ∝ load, Pareto tails: whatever brute force says."""
    model = Pareto(alpha=1.5, xm=1.0)
    a = advise(model, 12, rounds=3000)
    assert a.regime.kind == "compute-bound"
    _assert_is_argmin(a, brute_force(12, 4, lambda code: model_times(code, model, 3000)))
    for c in a.candidates:
        assert c.estimate == "model: 3000 drawn rounds"


def test_persistent_slow_workers_are_named_and_the_argmin_recommended():
    """(iii) Two workers 5x slower in every round: identified by id."""
    model = PersistentSlow(ShiftedExponential(1.0, 1.0), k=2, kappa=5.0)
    a = advise(model, 12, rounds=2000)
    assert [w for w, _ in a.regime.slow_workers] == model.slow_workers(12).tolist()
    assert a.regime.persistent
    _assert_is_argmin(a, brute_force(12, 4, lambda code: model_times(code, model, 2000)))
    assert "persistently slow" in a.reason


def test_a_crash_rules_out_dgd_and_recommends_a_tolerant_argmin():
    """(iv) Worker 5 never reports from round 3: DGD never finishes; the pick tolerates it."""
    model = CrashStop(ShiftedExponential(1.0, 1.0), workers=(5,), at_round=3)
    a = advise(model, 12, rounds=500)
    assert [c["worker"] for c in a.regime.crashes] == [5]
    dgd = next(c for c in a.candidates if c.scheme == "dgd")
    assert dgd.decodable < 1 and not dgd.recommendable and dgd.time_to_target is None
    assert a.recommendation.s >= 1 and a.recommendation.decodable == 1.0
    _assert_is_argmin(a, brute_force(12, 4, lambda code: model_times(code, model, 500)))
    assert "stop reporting" in a.reason


# ------------------------------------------------------------------ inputs


def test_measured_table_with_compute_times_is_load_aware():
    """A runtime's per-worker times at load 1 plus compute seconds: load s + 1 adds s x compute."""
    rng = np.random.default_rng(2)
    T = 2.0 + rng.random((40, 12))
    comp = np.full_like(T, 0.05)
    m = as_measured(T, loads=1.0, compute=comp)
    assert m.sample(None, 40, 12, load=4.0) == pytest.approx(T + 0.15)
    a = advise(T, 12, loads=1.0, compute=comp)
    b = advise(T, 12)  # no compute: time ∝ load, redundancy expensive
    assert a.regime.kind == "latency-bound" and b.regime.kind == "compute-bound"
    assert "assumed" in b.regime.load_basis
    frc_a = next(c for c in a.candidates if (c.scheme, c.s) == ("frc", 3))
    frc_b = next(c for c in b.candidates if (c.scheme, c.s) == ("frc", 3))
    assert frc_b.round_time > 3 * frc_a.round_time


def test_more_rounds_than_measured_draw_from_the_fitted_model():
    t = latency_bound_table(R=10, W=24)
    a = advise(LoadTrace(t, LOADS), 12, rounds=50, schemes=["frc"])
    frc = next(c for c in a.candidates if (c.scheme, c.s) == ("frc", 3))
    assert (
        frc.estimate
        == "replay: 20 measured rounds (2 blocks of 12 workers) + model: 30 drawn rounds"
    )
    b = advise(LoadTrace(t, LOADS), 12, rounds=5, schemes=["frc"])
    assert all(c.estimate.startswith("replay: 5 measured rounds") for c in b.candidates)
    c = advise(LoadTrace(t, LOADS), 30, schemes=["frc"])  # more workers than measured
    assert all(x.estimate == "model: 6666 drawn rounds" for x in c.candidates)
    with pytest.raises(ValueError, match="need a model"):
        time_candidate(make_code("dgd", 12, 0), Timing(LoadTrace(t, LOADS), rounds=21))


def test_approximate_candidates_carry_a_residual():
    a = advise(LoadTrace(latency_bound_table(), LOADS), 12, schemes=["is_sgd", "frc"])
    for c in a.candidates:
        if c.scheme == "is_sgd":
            assert c.residual is not None and c.residual > 0
        else:
            assert c.residual is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1}, "n must be"),
        ({"n": 1001}, "n must be"),
        ({"n": 12, "max_s": 12}, "max_s"),
        ({"n": 12, "max_s": -1}, "max_s"),
        ({"n": 12, "schemes": ["nope"]}, "unknown scheme"),
        ({"n": 12, "target_rounds": float("nan")}, "target"),
        ({"n": 12, "rounds": 0}, "rounds"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        advise(ShiftedExponential(), **kwargs)
    assert "\n" not in str(err.value)


def test_package_root_exports_advise_and_resolves_inputs(tmp_path):
    path = write_long(tmp_path / "t.csv", latency_bound_table(R=6, W=24), LOADS)
    a = gradcode.advise(12, trace=path)
    assert a.source == str(path) and a.n == 12
    d = gradcode.advise(6, delay="pareto:alpha=1.5", persistent="k=1,kappa=4", rounds=300)
    assert d.regime.slow_workers[0][0] == 0 and "persistent" in d.source
    assert gradcode.advise(6, rounds=200).notes[0].startswith("no input")
    with pytest.raises(ValueError, match="one input"):
        gradcode.advise(12, trace=path, delay="shifted-exp")
    with pytest.raises(ValueError, match="needs run=DIR"):
        gradcode.advise(12, trace=path, target=0.8)


def _run_folder(path: Path, cfg: dict, recs: list[dict]) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(cfg))
    (path / "rounds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_run_folder_with_worker_times_is_replayed(tmp_path):
    rng = np.random.default_rng(3)
    T = 1.0 + rng.random((15, 6))
    T[4, 2] = np.inf
    recs = [{"round": r, "duration": 1.0, "worker_times": [None if np.isinf(x) else x for x in row],
             "test_accuracy": 0.5 + 0.03 * r} for r, row in enumerate(T)]  # fmt: skip
    run = _run_folder(tmp_path / "run", {"scheme": "dgd", "workers": 6, "stragglers": 0}, recs)
    a = gradcode.advise(run=run, target=0.8)
    assert a.n == 6 and "replayed the per-worker times" in a.notes[0]
    assert a.target_rounds == 11  # first round with accuracy >= 0.8 is round 10
    dgd = next(c for c in a.candidates if c.scheme == "dgd")
    assert dgd.decodable == pytest.approx(14 / 15)
    ok = np.isfinite(T).all(axis=1)
    assert dgd.round_time == pytest.approx(T[ok].max(axis=1).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="never reached accuracy 0.99"):
        gradcode.advise(run=run, target=0.99)


def test_run_folder_without_worker_times_uses_its_delay_model_and_ray_overhead(tmp_path):
    cfg = {"scheme": "frc", "workers": 6, "stragglers": 1, "backend": "ray",
           "delay": {"base": "shifted-exp:a=1,mu=2", "persistent": None, "bursty": None,
                     "crash": None}}  # fmt: skip
    recs = [{"round": r, "duration": 3.0 + 0.5, "predicted_duration": 3.0} for r in range(5)]
    a = gradcode.advise(run=_run_folder(tmp_path / "ray", cfg, recs), rounds=400)
    assert "no per-worker times" in a.notes[0] and "overhead 0.5" in a.notes[0]
    b = gradcode.advise(6, delay="shifted-exp:a=1,mu=2", rounds=400)
    for c in a.candidates:
        other = next(x for x in b.candidates if (x.scheme, x.s) == (c.scheme, c.s))
        assert c.round_time == pytest.approx(other.round_time + 0.5, rel=1e-9)
    for bad, match in [({}, "not a gradcode run"), ({"scheme": "frc", "workers": 6}, "no delay")]:
        d = _run_folder(tmp_path / f"bad{len(bad)}", bad, recs)
        with pytest.raises(ValueError, match=match):
            gradcode.advise(run=d)
    with pytest.raises(ValueError, match="is missing"):
        gradcode.advise(run=tmp_path)


def test_shared_trace_n256_is_fast():
    """n = 256 on the 20-round Sydney trace: well under a minute (a few seconds here)."""
    path = shared_trace("aws_lambda_sydney_256w_20r.csv")
    t0 = time.process_time()
    a = gradcode.advise(256, trace=path)
    assert time.process_time() - t0 < 60
    assert a.recommendation.fresh


def test_wide_trace_is_time_proportional_to_load_for_chunked_schemes_too(tmp_path):
    """A wide table (1 s per partition everywhere): load L costs L seconds, chunk by chunk."""
    p = tmp_path / "wide.csv"
    p.write_text("\n".join(",".join(["1.0"] * 6) for _ in range(3)) + "\n")
    a = gradcode.advise(6, trace=p, max_s=2)
    got = {(c.scheme, c.s): c.round_time for c in a.candidates}
    assert got["dgd", 0] == 1.0 and got["frc", 1] == 2.0 and got["crc", 2] == 3.0
    # partial GC: every worker's first chunk (one partition, 1 s) covers each partition once
    assert got["partial", 1] == pytest.approx(1.0)
    # Tandon's partial scheme: p = 4 pieces of 1/(p - s) = 1/3 partition; message 2 after all 4
    assert got["tandon_partial", 1] == pytest.approx(4 / 3)
    assert a.regime.kind == "compute-bound" and "assumed" in a.regime.load_basis


def test_model_size_costs_message_time_through_the_bandwidth_part():
    """1e7 parameters x 4 bytes over 1e8 B/s: every round 0.4 s longer; no bandwidth: a note."""
    spec = "parts:latency=2,compute=0.05,bandwidth=1e8"
    a = gradcode.advise(12, delay=spec, model_size=1e7, rounds=50, schemes=["frc"])
    b = gradcode.advise(12, delay=spec, rounds=50, schemes=["frc"])
    for x, y in zip(a.candidates, b.candidates, strict=True):
        assert x.round_time == pytest.approx(y.round_time + 0.4)
    c = gradcode.advise(12, delay="shifted-exp", model_size=1e7, rounds=50, schemes=["frc"])
    assert "no effect" in c.notes[-1]
