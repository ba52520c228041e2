"""The Ray backend: real actors, real kills, NaN injection, streaming (kept few and fast).

Actor start-up dominates (each actor imports torch and loads its data), so
the tests use few workers and share one Ray instance per module.
"""

from __future__ import annotations

import functools
import threading
import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from gradcode.runtime.config import RunConfig  # noqa: E402
from gradcode.runtime.loop import TrainingStopped, train  # noqa: E402
from gradcode.runtime.ray import cluster as ray_cluster  # noqa: E402
from gradcode.runtime.run import build_cluster, build_scheme, build_task, loop_config, run  # noqa: E402

RayCluster = ray_cluster.RayCluster
consume_stream = ray_cluster.consume_stream


def _cfg(**kw) -> RunConfig:
    base = dict(workers=4, stragglers=1, rounds=12, eval_every=4, dataset="breast_cancer")
    base.update(kw)
    return RunConfig(**base)


@functools.cache
def task_loss0(scheme: str) -> float:
    cfg = _cfg(scheme=scheme)
    task = build_task(cfg, build_scheme(cfg).k)
    return task.train_loss(task.initial_weights())


def _use(monkeypatch, **kw):
    """Make ``run``/``build_cluster`` build a RayCluster with test hooks."""
    monkeypatch.setattr(ray_cluster, "RayCluster", functools.partial(RayCluster, **kw))


@pytest.mark.parametrize("scheme, n", [("pgc", 2), ("frc", 2)])
def test_ray_training_matches_local(ray_session, tmp_path, scheme, n):
    local = run(_cfg(scheme=scheme, workers=n), tmp_path / "local")
    remote = run(_cfg(scheme=scheme, workers=n, backend="ray"), tmp_path / "ray")
    l_loss, r_loss = local.history[-1]["train_loss"], remote.history[-1]["train_loss"]
    assert r_loss == pytest.approx(l_loss, rel=0.05)
    assert r_loss < 0.5 * task_loss0(scheme)
    key = "covered" if scheme == "pgc" else "exact"  # pgc: once its pipeline has filled
    assert all(h[key] for h in remote.history if h["decoder"] != "pgc-filling")
    assert all(h["ready"] for h in remote.history)
    if scheme == "frc":  # exact every round: same gradients up to float summation order
        np.testing.assert_allclose(remote.weights, local.weights, rtol=1e-9, atol=1e-12)
    assert all(h["duration"] > 0 for h in remote.history)


def test_kill_s_actors_and_nan_keep_frc_exact(ray_session, tmp_path, monkeypatch):
    """Worker 1 is killed mid-round from a thread; worker 3 sends NaN.  FRC (n=4,
    s=1, groups {0,1} {2,3}) still decodes exactly from {0, 2}."""
    killed = []

    def hook(cluster, t):
        if t == 3:
            threading.Timer(0.002, cluster.kill, [1]).start()
            killed.append(t)

    _use(monkeypatch, nan_workers={3}, on_round=hook, respawn=False)
    res = run(_cfg(scheme="frc", backend="ray"), tmp_path)
    assert killed == [3]
    assert all(h["exact"] for h in res.history)
    notes = [n for h in res.history for n in h["notes"]]
    assert any("worker 1 died" in n for n in notes)
    assert any("non-finite message from worker 3" in n for n in notes)
    assert all(1 not in h["arrived"] for h in res.history[5:])


def test_kill_more_than_s_falls_back_or_stops(ray_session, tmp_path):
    """Killing both workers of n=2, s=1 FRC (> s): fallback keeps going (skipping
    steps), 'stop' stops; no hang."""
    cfg = _cfg(scheme="frc", backend="ray", rounds=6, workers=2)
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)
    cluster = build_cluster(cfg, scheme, task)

    def hook(c, t):
        if t == 2:
            c.kill(0)
            c.kill(1)

    cluster.on_round, cluster.respawn = hook, False
    try:
        # Streaming per-chunk results (partial-straggler transport), before the kills.
        w = task.initial_weights()
        gen = cluster.stream_chunks(0, 0, w, parts=(1, 0), delays=(0.0, 50.0))
        got, ok = consume_stream({0: gen}, lambda r: len(r) >= 1, timeout=10)
        assert ok and [(a, b) for a, b, _ in got] == [(0, 1)]
        np.testing.assert_allclose(got[0][2], task.partition_gradient(1, w), rtol=1e-12)
        gens = {v: cluster.stream_chunks(v, 0, w, parts=(0, 1)) for v in (0, 1)}
        got, ok = consume_stream(gens, lambda r: False, timeout=10)
        assert not ok and sorted((a, b) for a, b, _ in got) == [(0, 0), (0, 1), (1, 0), (1, 1)]

        t0 = time.perf_counter()
        res = train(scheme, cluster, task, loop_config(cfg))
        assert [h["ready"] for h in res.history] == [True, True, False, False, False, False]
        assert not any(h["exact"] for h in res.history[2:])
        assert all("stop rule not met" in " ".join(h["notes"]) for h in res.history[2:])
        assert cluster.dead == {0, 1}
        assert all("no usable gradient" in " ".join(h["notes"]) for h in res.history[2:])
        stop = loop_config(_cfg(scheme="frc", rounds=6, workers=2, on_undecodable="stop"))
        with pytest.raises(TrainingStopped, match="more than s=1"):
            train(scheme, cluster, task, stop)
        assert time.perf_counter() - t0 < 30
        # Worker states can still be checkpointed (dead workers: None).
        assert cluster.state()["worker_states"][:2] == [None, None]
        # A dead worker's stream just ends.
        got, ok = consume_stream({0: cluster.stream_chunks(0, 0, w, parts=(0,))}, bool, timeout=10)
        assert (got, ok) == ([], False)
    finally:
        cluster.close()


def test_worker_payloads_keep_only_their_partitions():
    from gradcode.runtime.ray.worker import placement_of, worker_payloads

    cfg = _cfg(scheme="frc")
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)
    w = task.initial_weights() + 0.01
    wt = worker_payloads(task, scheme, scheme.n)[2]
    assert wt.kept == {2, 3} and wt._X.shape[0] == sum(len(task.partitions[j]) for j in (2, 3))
    for j in (2, 3):
        np.testing.assert_allclose(wt.partition_gradient(j, w), task.partition_gradient(j, w))
    with pytest.raises(ValueError, match="does not store partition 0"):
        wt.partition_gradient(0, w)
    assert placement_of(build_scheme(_cfg(scheme="pgc")), 1) == (0, 1)
    assert worker_payloads(object(), scheme, scheme.n) is None  # cannot be cut: shared whole


def test_bad_time_scale_is_a_value_error():
    cfg = _cfg(scheme="frc", backend="ray")
    with pytest.raises(ValueError, match="time_scale"):
        RayCluster(build_scheme(cfg), None, None, time_scale=-1)


def test_unreachable_address_is_a_quick_value_error():
    cfg = _cfg(scheme="frc", backend="ray", address="127.0.0.1:1")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="cannot reach the Ray cluster at 127.0.0.1:1"):
        ray_cluster.check_address(cfg.address)
    assert time.perf_counter() - t0 < 6


class _TorchOracle:
    """Gradients as torch tensors (the coming runtime currency): g_j = (j + 1) * w."""

    num_partitions = 4

    def partition_gradient(self, j, weights):
        import torch

        assert isinstance(weights, torch.Tensor), type(weights)  # shipped unchanged
        return (j + 1) * weights


def test_torch_weights_travel_unchanged(ray_session):
    """RayCluster ships whatever weights object it is given (here a float32 tensor)."""
    import sys

    import torch

    from gradcode.runtime.cluster import Schedule
    from gradcode.stragglers import ShiftedExponential

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cfg = _cfg(scheme="frc")
    scheme = build_scheme(cfg)
    cl = RayCluster(scheme, _TorchOracle(), Schedule(ShiftedExponential(), 0, 2, 4), time_scale=0.0)
    try:
        w = torch.arange(3, dtype=torch.float32)
        out = cl.run_round(0, w)
        assert out.ready and out.predicted is not None and out.predicted > 0
        _, upd = scheme.master_update(scheme.init_master(), 0, out.on_time)
        np.testing.assert_allclose(np.asarray(upd.gradient), (1 + 2 + 3 + 4) * w.numpy())
    finally:
        cl.close()
