"""Per-round overhead of the Ray backend vs a bare ``ray.wait`` loop.

Both sides do the same transfers each round: ``ray.put`` of ``d`` float64
weights, one remote call per worker (``n`` actors) returning a ``d``-vector,
and ``ray.wait`` until every result is in (then ``ray.get``).  The backend
side is :meth:`RayCluster.run_round` with ``dgd`` (waits for all ``n``
workers), a fake oracle returning a constant vector (trivial compute) and
zero injected delay (``time_scale=0``).  The two alternate, round blocks of
``--rounds``, and the medians over ``--repeats`` blocks are compared.

Run:  PYTHONPATH=src .venv/bin/python bench/runtime.py [--n 8 --d 1000000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import ray

from gradcode.codes import make_scheme
from gradcode.runtime.cluster import Schedule
from gradcode.runtime.config import RunConfig
from gradcode.runtime.ray_cluster import RayCluster
from gradcode.stragglers import ShiftedExponential


class ConstOracle:
    """Trivial compute: every partition gradient is the same constant vector."""

    def __init__(self, d: int, k: int) -> None:
        self.g = np.full(d, 1e-3)
        self.num_partitions = k

    def partition_gradient(self, j, weights):
        return self.g


def make_oracle(d: int, k: int):
    def factory(cfg):
        return ConstOracle(d, k)

    return factory


@ray.remote(num_cpus=0)
class Bare:
    def __init__(self, d: int) -> None:
        self.g = np.full(d, 1e-3)

    def f(self, weights):
        return self.g


def bare_round(actors, w) -> None:
    wref = ray.put(w)
    pending = [a.f.remote(wref) for a in actors]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--d", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=10, help="rounds per timed block")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    n, d = args.n, args.d
    ray.init(include_dashboard=False, log_to_driver=False)
    total = (args.repeats + 1) * args.rounds
    scheme = make_scheme("dgd", n, 0)
    cfg = RunConfig(scheme="dgd", workers=n, stragglers=0, rounds=total, backend="ray")
    schedule = Schedule(ShiftedExponential(), 0, total, n)
    cluster = RayCluster(
        scheme, cfg, schedule, time_scale=0.0, task_factory=make_oracle(d, scheme.k)
    )
    bare = [Bare.remote(d) for _ in range(n)]
    ray.get([a.f.remote(None) for a in bare])
    w = np.zeros(d)
    t_bare, t_gc, t = [], [], 0
    for rep in range(args.repeats + 1):  # the first block is a warm-up
        t0 = time.perf_counter()
        for _ in range(args.rounds):
            bare_round(bare, w)
        tb = (time.perf_counter() - t0) / args.rounds
        t0 = time.perf_counter()
        for _ in range(args.rounds):
            out = cluster.run_round(t, w)
            assert out.ready and len(out.on_time) == n
            t += 1
        tg = (time.perf_counter() - t0) / args.rounds
        if rep:
            t_bare.append(tb)
            t_gc.append(tg)
    cluster.close()
    ray.shutdown()
    mb, mg = statistics.median(t_bare), statistics.median(t_gc)
    print(f"n={n} d={d:.0e} float64, {args.repeats} x {args.rounds} rounds, median ms/round")
    print(f"{'bare ray.wait loop':>22} {mb * 1e3:9.2f}")
    print(f"{'RayCluster.run_round':>22} {mg * 1e3:9.2f}")
    print(f"{'ratio':>22} {mg / mb:9.2f}x")


if __name__ == "__main__":
    main()
