"""Ray start-up: actors created before the task is built, and reused across fit() calls."""

from __future__ import annotations

import pytest
import torch
from torch import nn

ray = pytest.importorskip("ray")

import gradcode  # noqa: E402
from gradcode.runtime.cluster import Schedule  # noqa: E402
from gradcode.runtime.config import RunConfig  # noqa: E402
from gradcode.runtime.ray import RayActorPool, RayCluster, start_early  # noqa: E402
from gradcode.runtime.run import build_scheme, build_task  # noqa: E402
from gradcode.stragglers import ShiftedExponential  # noqa: E402


def test_early_actors_are_configured_with_the_task_built_after_them(ray_session):
    cfg = RunConfig(scheme="frc", workers=4, stragglers=1, rounds=3, backend="ray")
    early = start_early(4)
    assert not early.owns_ray  # the module's instance was already running
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)  # built while the actors boot
    cl = RayCluster(scheme, task, Schedule(ShiftedExponential(), 0, 3, 4), time_scale=0.0,
                    actors=early)  # fmt: skip
    try:
        assert cl.actors == early.actors
        assert cl.startup["actors_since_created"] >= cl.startup["actors"]
        out = cl.run_round(0, task.initial_weights())
        assert out.ready and len(out.on_time) >= 2
        assert out.log["startup_seconds"] == cl.startup["total"]
    finally:
        cl.close()


def _blobs(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    return torch.utils.data.TensorDataset(torch.randn(n, 6, generator=g) + 1.5 * y[:, None], y)


def test_fit_reuses_a_pools_actors(ray_session):
    pool = RayActorPool()
    try:
        runs = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
            res = gradcode.fit(model, _blobs(120, seed), scheme="frc", workers=4, stragglers=1,
                               rounds=4, backend="ray", seed=seed, actor_pool=pool)  # fmt: skip
            runs.append(res.history[0]["startup"])
            assert len(pool.actors[4, None]) == 4  # given back after each run
        # the second call reloads the running actors: no process start, no import
        assert "actors_since_created" in runs[0] and "actors_since_created" not in runs[1]
    finally:
        pool.close()


def test_fit_refuses_a_pool_for_the_local_backend():
    with pytest.raises(ValueError, match="actor_pool needs backend='ray'"):
        gradcode.fit(nn.Linear(6, 2), _blobs(20, 0), workers=4, actor_pool=RayActorPool())
    with pytest.raises(ValueError, match="actor_pool must be"):
        gradcode.fit(nn.Linear(6, 2), _blobs(20, 0), backend="ray", actor_pool=object())
