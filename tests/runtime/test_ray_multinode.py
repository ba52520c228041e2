"""A real multi-node Ray cluster on one machine (``ray.cluster_utils.Cluster``).

Head (the master/driver) + 3 worker nodes, each with its own raylet and object
store and a custom resource ``node<i>``; worker ``w`` is pinned to node
``w // 2`` through that resource.  So weights (put by the driver on the head)
and messages (returned by the actors) always cross nodes through the object
store.  Removing a whole node mid-run kills its two workers: with ``s = 2``
training stays exact, with ``s = 1`` it falls back (logged) to the survivors.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

ray = pytest.importorskip("ray")
cluster_utils = pytest.importorskip("ray.cluster_utils")

from gradcode.runtime.config import RunConfig  # noqa: E402
from gradcode.runtime.loop import train  # noqa: E402
from gradcode.runtime.ray import RayCluster  # noqa: E402
from gradcode.runtime.run import build_cluster, build_scheme, build_task, loop_config  # noqa: E402

pytestmark = pytest.mark.slow

NODES = 3
FAST_FAILURE = {"health_check_period_ms": 500, "health_check_failure_threshold": 2}


@pytest.fixture(scope="module")
def nodes(tmp_path_factory):
    if ray.is_initialized():
        ray.shutdown()
    mp = pytest.MonkeyPatch()
    tmp = tmp_path_factory.mktemp("r")
    mp.setenv("RAY_TMPDIR", "/tmp/" + tmp.name[:12])  # private address file, short socket paths
    cluster = cluster_utils.Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "_system_config": FAST_FAILURE},
    )
    state = {"cluster": cluster, "workers": {}}
    try:
        for i in range(NODES):
            state["workers"][i] = cluster.add_node(num_cpus=1, resources={f"node{i}": 100})
        cluster.connect()
        yield state
    finally:
        ray.shutdown()
        cluster.shutdown()
        mp.undo()


def _pinned(n: int) -> list[dict]:
    return [{"resources": {f"node{w // 2}": 1}} for w in range(n)]


def _cluster(cfg, **kw):
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)
    cl = RayCluster(scheme, task, _schedule(cfg), actor_options=_pinned(cfg.workers), **kw)
    return scheme, task, cl


def _schedule(cfg):
    from gradcode.runtime.cluster import Schedule

    return Schedule(cfg.delay.build(), cfg.seed, cfg.rounds, cfg.workers)


def _cfg(**kw) -> RunConfig:
    base = dict(workers=6, stragglers=2, rounds=8, eval_every=8, backend="ray", time_scale=0.002)
    base.update(kw)
    return RunConfig(**base)


def _node_ids(state) -> dict[int, str]:
    return {i: n.node_id for i, n in state["workers"].items()}


def test_actors_on_intended_nodes_and_exact_across_nodes(nodes):
    cfg = _cfg(scheme="frc")
    scheme, task, cl = _cluster(cfg)
    try:
        ids = _node_ids(nodes)
        where = cl.nodes()
        assert where == [ids[w // 2] for w in range(6)]
        head = ray.get_runtime_context().get_node_id()
        assert head not in where  # every transfer crosses nodes
        res = train(scheme, cl, task, loop_config(cfg))
        local_cfg = _cfg(scheme="frc", backend="local")
        lt = build_task(local_cfg, scheme.k)
        local = train(scheme, build_cluster(local_cfg, scheme, lt), lt, loop_config(local_cfg))
        assert all(h["exact"] for h in res.history)
        lw, rw = np.asarray(local.weights), np.asarray(res.weights)
        tol = (1e-9, 1e-12) if lw.dtype == np.float64 else (1e-5, 1e-6)  # float32 currency
        np.testing.assert_allclose(rw, lw, rtol=tol[0], atol=tol[1])
    finally:
        cl.close()


def _remove_node_at(state, node: int, round_: int):
    """Kill node ``node`` at the start of round ``round_`` and wait until Ray has marked it
    dead, so calls to its actors fail from then on.  Without the wait, a round that needs only
    n - s replies can finish (and cancel the dead node's calls) before Ray's health check
    notices, and on a fast or busy machine the whole run could end before anyone saw a death."""

    def hook(cluster, t):
        if t == round_:
            gone = state["workers"].pop(node)
            state["cluster"].remove_node(gone, allow_graceful=False)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                alive = {n["NodeID"]: n["Alive"] for n in ray.nodes()}
                if not alive.get(gone.node_id, False):
                    return
                time.sleep(0.1)
            raise AssertionError(f"Ray did not mark node {node} dead within 60 s")

    return hook


def _readd(state, node: int) -> None:
    state["workers"][node] = state["cluster"].add_node(num_cpus=1, resources={f"node{node}": 100})


def test_remove_node_with_at_most_s_workers_stays_exact(nodes):
    cfg = _cfg(scheme="cyclic_mds", stragglers=3, workers=6, rounds=10)  # n + s odd
    scheme, task, cl = _cluster(cfg, respawn=False, on_round=_remove_node_at(nodes, 1, 3))
    try:
        res = train(scheme, cl, task, loop_config(cfg))
    finally:
        cl.close()
        _readd(nodes, 1)
    assert all(h["exact"] and h["ready"] for h in res.history)
    assert cl.dead == {2, 3}
    assert all(2 not in h["arrived"] and 3 not in h["arrived"] for h in res.history[5:])


def test_remove_node_with_more_than_s_workers_falls_back(nodes):
    cfg = _cfg(scheme="cyclic_mds", stragglers=1, workers=6, rounds=10)
    scheme, task, cl = _cluster(cfg, respawn=False, on_round=_remove_node_at(nodes, 0, 3))
    try:
        res = train(scheme, cl, task, loop_config(cfg))
    finally:
        cl.close()
        _readd(nodes, 0)
    notes = [n for h in res.history for n in h["notes"]]
    assert any("worker 0 died" in n for n in notes) and any("worker 1 died" in n for n in notes)
    later = [h for h in res.history if h["round"] >= 5]
    assert later and all(sorted(h["used"]) == [2, 3, 4, 5] for h in later)
    assert all(not h["exact"] and "stop rule not met" in " ".join(h["notes"]) for h in later)
