"""Trajectory reuse in the harness: re-timed cells equal cells trained for real.

The grid below is run twice, with ``reuse = true`` (each distinct trajectory
trains once) and ``reuse = false`` (every cell trains); every cell's clock,
rounds and log must agree exactly, and its metrics to float32 round-off (two
exact codes add the same partition gradients in another order).
"""

import json

import pytest

from gradcode.grid import pool
from gradcode.grid.harness import run_experiment
from gradcode.grid.parse import parse_experiment
from gradcode.grid.results import read_csv

GRID = {
    "workers": 6,
    "rounds": 40,
    "eval_every": 4,
    "batch_size": 8,
    "momentum": 0.9,
    "lr": 0.3,
    "target_accuracy": 0.8,
    "stragglers": {
        "se": {"base": "shifted-exp:a=1,mu=1"},
        "pareto": {"base": "pareto:alpha=1.5"},
        "slow": {"base": "shifted-exp:a=1,mu=1", "persistent": "k=1,kappa=5"},
    },
    "grid": {
        "schemes": ["dgd", "frc", "crc", "is_sgd", "pgc"],
        "seeds": [0],
        "tasks": ["digits/mlp"],
        "s": [1],
        "partitionings": ["iid"],
    },
}

TIMING = ("round", "time", "duration", "arrived", "late", "ready", "exact", "decoder", "notes")
METRICS = ("train_loss", "test_loss", "test_accuracy")


def _run(tmp_path, name, **over):
    cfg = parse_experiment({**GRID, **over}, default_name=name)
    res = run_experiment(cfg, tmp_path / name, progress=False)
    return cfg, res, {r["cell_id"]: r for r in read_csv(res.results_csv)}


def _log(out, cell_id):
    lines = (out / "runs" / cell_id / "rounds.jsonl").read_text().splitlines()
    return [json.loads(ln) for ln in lines]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reuse")
    return tmp, _run(tmp, "on"), _run(tmp, "off", reuse=False)


def test_exact_codes_are_retimed_from_dgd(both):
    _, (_, res, rows), _ = both
    assert not res.failed
    for cid, r in rows.items():
        if r["scheme"] in ("frc", "crc") or (r["scheme"] == "dgd" and r["straggler"] != "se"):
            assert r["retimed_from"] == cid.replace(r["scheme"], "dgd").replace(
                r["straggler"], "se"
            ), cid
        elif r["scheme"] == "dgd":
            assert r["retimed_from"] is None  # the class's representative trains
    # IS-SGD under Pareto sees shifted-exp's arrival order (same draws): re-timed too;
    # under persistent slow workers it trains itself.
    by = {(r["scheme"], r["straggler"]): r for r in rows.values()}
    assert by["is_sgd", "pareto"]["retimed_from"] == by["is_sgd", "se"]["cell_id"]
    assert by["is_sgd", "slow"]["retimed_from"] is None


def test_retimed_cells_equal_cells_trained_for_real(both):
    tmp, (_, _, on), (_, _, off) = both
    assert set(on) == set(off)
    for cid in on:
        a, b = on[cid], off[cid]
        assert b["retimed_from"] is None
        assert a["rounds"] == b["rounds"] and a["reached_target"] == b["reached_target"], cid
        assert a["wall_clock"] == pytest.approx(b["wall_clock"], rel=1e-9), cid  # log: 9 digits
        for key in METRICS:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-4), (cid, key)
        la, lb = _log(tmp / "on", cid), _log(tmp / "off", cid)
        assert len(la) == len(lb)
        for ra, rb in zip(la, lb, strict=True):
            assert {k: ra.get(k) for k in TIMING} == {k: rb.get(k) for k in TIMING}, cid
            for key in METRICS:
                if key in rb:
                    assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-4), (cid, key)


def test_some_runs_stop_at_the_target_and_their_class_stops_with_them(both):
    _, (_, _, on), _ = both
    stopped = [r for r in on.values() if r["reached_target"] and r["rounds"] < 40]
    assert any(r["retimed_from"] for r in stopped)


def test_resume_trains_nothing_again(both):
    tmp, (cfg, _, _), _ = both
    res = run_experiment(cfg, tmp / "on", progress=False)
    assert res.ran == [] and len(res.reused) == len(cfg.cells())


def test_a_failed_representative_makes_its_class_train_itself(tmp_path, monkeypatch):
    real = pool.JOBS["run"]

    def flaky(rc, run_dir):
        if rc.scheme == "dgd":
            raise RuntimeError("injected failure")
        return real(rc, run_dir)

    def guarded(rc, run_dir):
        try:
            return flaky(rc, run_dir)
        except RuntimeError as exc:
            return "error", str(exc), 0.0

    monkeypatch.setitem(pool.JOBS, "run", guarded)
    grid = {**GRID["grid"], "schemes": ["dgd", "frc"]}
    _, res, rows = _run(tmp_path, "flaky", grid=grid, stragglers={"se": GRID["stragglers"]["se"]})
    assert [rows[c]["scheme"] for c in res.failed] == ["dgd"]
    frc = next(r for r in rows.values() if r["scheme"] == "frc")
    assert frc["status"] == "ok" and frc["retimed_from"] is None


def test_retimed_rounds_take_every_metric_field_of_their_trained_run(both):
    """One list (signature.METRIC_FIELDS) says what a replay drops and what a re-timed
    round takes over: compute_seconds included, round by round from the trained run."""
    from gradcode.runtime.signature import METRIC_FIELDS

    assert "compute_seconds" in METRIC_FIELDS
    tmp, (_, _, on), _ = both
    retimed = [r for r in on.values() if r["retimed_from"]]
    assert retimed
    for r in retimed:
        own, ref = _log(tmp / "on", r["cell_id"]), _log(tmp / "on", r["retimed_from"])
        for mine, theirs in zip(own, ref, strict=False):
            assert "compute_seconds" in mine, r["cell_id"]
            for key in METRIC_FIELDS:
                assert mine.get(key) == theirs.get(key), (r["cell_id"], key)


def test_each_phase_builds_one_scheme_per_replay_and_reads_each_sketch_once(tmp_path, monkeypatch):
    from gradcode.grid import reuse

    builds, reads = [], []
    real_build, real_read = reuse.build_scheme, reuse.read_sketch
    monkeypatch.setattr(reuse, "build_scheme", lambda rc: builds.append(rc) or real_build(rc))
    monkeypatch.setattr(reuse, "read_sketch", lambda rc, p: reads.append(p) or real_read(rc, p))
    grid = {**GRID["grid"], "schemes": ["dgd", "frc", "is_sgd"]}
    cfg, res, _ = _run(tmp_path, "once", grid=grid, rounds=8)
    cells = len(cfg.cells())
    assert not res.failed and len(res.retimed) > 0
    assert len(builds) == cells  # one replay per cell, one scheme per replay
    # every cell: one read before the replays (missing), one of the sketch just written
    assert len(reads) == 2 * cells and len(set(reads)) == cells
    reads.clear()
    run_experiment(cfg, tmp_path / "once", progress=False)  # resumed: nothing to do
    assert reads == []
