"""A grid of Ray cells starts its worker actors once and reuses them run after run."""

import pytest

from gradcode.grid.harness import run_experiment
from gradcode.grid.parse import parse_experiment
from gradcode.grid.results import read_csv

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

GRID = {
    "workers": 4,
    "rounds": 6,
    "eval_every": 3,
    "backend": "ray",
    "time_scale": 0.001,
    "batch_size": 8,
    "stragglers": {"se": {"base": "shifted-exp:a=1,mu=1"}},
    "grid": {
        "schemes": ["dgd", "frc", "pgc"],
        "seeds": [0],
        "tasks": ["breast_cancer/logreg"],
        "s": [1],
        "partitionings": ["iid"],
    },
}


def test_ray_cells_share_one_set_of_actors(tmp_path, monkeypatch):
    from gradcode.runtime.ray import cluster as ray_cluster
    from gradcode.runtime.ray import pool as ray_pool

    started = []  # worker ids of every actor started, by either path
    new_actor, start_early = ray_cluster.RayCluster._new_actor, ray_pool.start_early

    def counting(self, w, opts):
        started.append(w)
        return new_actor(self, w, opts)

    def counting_early(n, address=None):
        started.extend(range(n))  # a run's actors started before its task is built
        return start_early(n, address)

    monkeypatch.setattr(ray_cluster.RayCluster, "_new_actor", counting)
    monkeypatch.setattr(ray_pool, "start_early", counting_early)
    res = run_experiment(parse_experiment(GRID), tmp_path, progress=False)
    rows = read_csv(res.results_csv)
    assert not res.failed and [r["status"] for r in rows] == ["ok"] * 3
    assert all(r["retimed_from"] is None for r in rows)  # Ray cells always train
    assert sorted(started) == [0, 1, 2, 3]  # one start-up for three runs
