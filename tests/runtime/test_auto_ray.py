"""``--scheme auto`` on the Ray backend: switching on the running actors (n = 4, a few rounds).

A switch gives the same actors the new scheme and, where the placement changes,
their new partitions (:mod:`gradcode.runtime.ray.switch`); nothing restarts.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from gradcode.runtime.auto import AutoConfig  # noqa: E402
from gradcode.runtime.config import DelaySpec, RunConfig  # noqa: E402
from gradcode.runtime.run import build_cluster, build_scheme, build_task, run  # noqa: E402

SLOW = DelaySpec("pause:base=1,pause=0,prob=0", persistent="k=1,kappa=5")


def _cfg(**kw) -> RunConfig:
    """One worker persistently 5x slow, no noise: DGD waits 5 units a round, FRC at s=1
    (load 2) 2 units, so the end of the warm-up switches dgd/0 -> frc/1 on any backend."""
    base = dict(
        scheme="auto", workers=4, stragglers=1, dataset="breast_cancer", model="logreg",
        rounds=7, eval_every=7, lr=0.5, dtype="float64", delay=SLOW, time_scale=0.05,
        auto=AutoConfig(warmup=2, every=3, warmup_scheme="dgd", candidates=("dgd", "frc")),
    )  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def _log(path):
    return [json.loads(ln) for ln in (path / "rounds.jsonl").read_text().splitlines()]


def test_ray_auto_switches_on_the_same_actors_and_follows_the_local_run(ray_session, tmp_path):
    local = run(_cfg(), tmp_path / "local")
    remote = run(_cfg(backend="ray"), tmp_path / "ray")
    recs = _log(tmp_path / "ray")
    chosen = [f"{r['scheme']}/{r['s']}" for r in recs]
    assert chosen == [f"{h['scheme']}/{h['s']}" for h in local.history]
    assert chosen == ["dgd/0"] * 2 + ["frc/1"] * 5 and remote.rounds == 7
    sw = recs[2]["switch"]
    assert (sw["from"], sw["to"]) == ("dgd/0", "frc/1") and "end of warm-up" in sw["reason"]
    assert recs[2]["reload"]["workers"] == [0, 1, 2, 3]  # DGD's {w} -> FRC's groups
    assert "startup" in recs[0] and not any("startup" in r for r in recs[1:])  # no restart
    assert all(r["exact"] and r["ready"] for r in recs) and "auto_check" in recs[5]
    # exact every round: the full gradient, up to float summation order
    np.testing.assert_allclose(remote.weights, local.weights, rtol=1e-9, atol=1e-12)
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["switches"] == [{"round": 2, "from": "dgd/0", "to": "frc/1"}]


def test_switch_ships_only_moved_partitions_and_handles_dead_actors(ray_session):
    """On one RayCluster: worker 3 is killed (no respawn) and noticed in a DGD round;
    DGD -> IS-SGD keeps every worker's data (same placement); -> FRC ships the three
    live workers their groups.  Worker 3 stays dead and FRC at s=1 decodes exactly
    without it."""
    from gradcode.runtime.auto import Choice, build_choice

    cfg = _cfg(scheme="dgd", auto=None, backend="ray", time_scale=0.0)
    task = build_task(cfg, build_scheme(cfg).k)
    cl = build_cluster(cfg, build_scheme(cfg), task)
    try:
        actors, w = list(cl.actors), task.initial_weights()
        assert cl.run_round(0, w).ready
        cl.respawn = False
        cl.kill(3)
        out = cl.run_round(1, w)  # DGD waits for every live worker: the death is noticed
        assert not out.ready and cl.dead == {3}
        assert any("worker 3 died" in n for n in out.dropped)
        cl.switch(build_choice(Choice("is_sgd", 1), 4, 0))
        assert cl.reload["workers"] == [] and cl.actors == actors
        out = cl.run_round(2, w)
        assert out.ready and out.log["reload"]["workers"] == []
        frc = build_choice(Choice("frc", 1), 4, 0)
        cl.switch(frc)
        assert cl.reload["workers"] == [0, 1, 2] and cl.dead == {3}
        out = cl.run_round(3, w)
        got = {m.worker for m in out.on_time}  # one per group, {2, 3} by worker 2 alone
        assert out.ready and 2 in got and got <= {0, 1, 2}
        _, upd = frc.master_update(frc.init_master(), 3, out.on_time)
        full = sum(task.partition_gradient(j, w) for j in range(frc.k))
        np.testing.assert_allclose(np.asarray(upd.gradient), np.asarray(full), rtol=1e-9)
    finally:
        cl.close()


def test_a_replacement_starting_at_the_switch_rejoins_with_the_new_scheme(ray_session):
    """Worker 3 is killed and its replacement is still starting (old scheme queued) when
    the cluster switches DGD -> FRC: it rejoins with FRC and its group's partitions."""
    import time

    from gradcode.runtime.auto import Choice, build_choice
    from gradcode.runtime.ray.worker import placement_of

    cfg = _cfg(scheme="dgd", auto=None, backend="ray", time_scale=0.0, rounds=400)
    task = build_task(cfg, build_scheme(cfg).k)
    cl = build_cluster(cfg, build_scheme(cfg), task)
    try:
        w = task.initial_weights()
        cl.kill(3)
        out = cl.run_round(0, w)
        assert 3 in cl.starting and any("replacement actor starting" in n for n in out.dropped)
        frc = build_choice(Choice("frc", 1), 4, 0)
        cl.switch(frc)
        end, t, notes = time.monotonic() + 120, 1, []
        while 3 in cl.dead and time.monotonic() < end and t < 398:  # its start-up, bounded
            notes += cl.run_round(t, w).dropped
            t += 1
            time.sleep(0.2)
        assert any("worker 3 rejoined" in n for n in notes)
        out = cl.run_round(t, w)
        msg = next((m for m in out.on_time if m.worker == 3), None)
        if msg is None:  # worker 2 answered first for the group {2, 3}: ask worker 3 alone
            msg = cl.get(3, cl.actors[3].round.remote(t + 1, w, 0.0), []).message
        group = sum(task.partition_gradient(j, w) for j in placement_of(frc, 3))
        np.testing.assert_allclose(np.asarray(msg.vector), np.asarray(group), rtol=1e-9)
    finally:
        cl.close()
