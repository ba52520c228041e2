"""Per-worker times in every round record (local backend), their replay, and the advisor.

Each record of ``rounds.jsonl`` carries ``worker_times`` (every worker's finishing time
on the round's clock, ``null`` for a worker that never reported) and ``worker_load``
(partitions computed).  On the local backend they are the seeded schedule's times at
each worker's load -- stragglers that finished after the round included -- so a grid
cell re-timed from its replay gets exactly the values a trained run logs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gradcode.runtime.cluster import Schedule
from gradcode.runtime.config import DelaySpec, RunConfig
from gradcode.runtime.run import build_scheme, run
from gradcode.runtime.signature import sketch_run


def _cfg(**kw):
    base = dict(scheme="frc", workers=6, stragglers=1, dataset="digits", model="logreg",
                rounds=8, eval_every=4, batch_size=16, lr=0.2)  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def _records(path):
    return [json.loads(ln) for ln in (path / "rounds.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("scheme,s", [("frc", 1), ("pgc", 1), ("partial", 1), ("sr_sgc", 1)])
def test_records_hold_every_workers_time_and_load_from_the_schedule(tmp_path, scheme, s):
    cfg = _cfg(scheme=scheme, stragglers=s)
    run(cfg, tmp_path)
    recs = _records(tmp_path)
    sch = build_scheme(cfg)
    schedule = Schedule(cfg.delay.build(), cfg.seed, cfg.rounds, cfg.workers)
    for r in recs:
        assert len(r["worker_times"]) == len(r["worker_load"]) == cfg.workers
        assert all(x is not None and x > 0 for x in r["worker_times"])
        # stragglers' times beyond the round's end are logged too
        if not getattr(sch, "chunked", False):
            expected = schedule.times(r["round"], r["worker_load"])
            if getattr(sch, "stateful", False):
                # busy workers (runtime.cluster): a worker still computing an earlier
                # round starts late, so it finishes no sooner than the schedule says
                assert np.all(np.asarray(r["worker_times"]) >= expected - 1e-9)
            else:
                np.testing.assert_allclose(r["worker_times"], expected, rtol=1e-9)
    late = [x for r in recs for x in r["worker_times"] if x > r["duration"] + 1e-9]
    assert late, "some worker finishes after its round ends"


def test_a_crashed_worker_is_null():
    cfg = _cfg(delay=DelaySpec(crash="workers=2,at_round=3"), rounds=6)
    res = run(cfg, None)
    for h in res.history:
        assert (h["worker_times"][2] is None) == (h["round"] >= 3)


def test_a_replay_logs_the_same_worker_times_as_the_trained_run(tmp_path):
    """Re-timed grid cells take their timing fields from the replay (signature.sketch_run):
    worker_times and worker_load depend on the schedule only, so they must agree."""
    cfg = _cfg(scheme="is_sgd", delay=DelaySpec(persistent="k=1,kappa=5"))
    run(cfg, tmp_path)
    real = _records(tmp_path)
    _, replay = sketch_run(cfg)
    for a, b in zip(real, replay, strict=True):
        assert a["worker_times"] == b["worker_times"]
        assert a["worker_load"] == b["worker_load"]


def test_advise_replays_a_local_run_folder(tmp_path):
    from gradcode.advising import advise

    cfg = _cfg(workers=8, rounds=20, delay=DelaySpec(persistent="k=1,kappa=5"))
    run(cfg, tmp_path)
    advice = advise(run=tmp_path)
    assert any("replayed the per-worker times" in note for note in advice.notes)
    # the persistently slow worker is identified from the logged times
    slow = advice.regime.to_dict().get("slow_workers")
    assert slow
