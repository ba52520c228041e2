"""Where the Ray backend's start-up seconds go: process start, imports, data shipping.

``bench/runtime.py`` times n actors from creation to their first answer.  This
splits that time for n fresh actors created at once on a private local Ray
instance, with three kinds of actor, each in a fresh set of processes:

* ``empty`` -- the actor class alone (Ray's worker process and its bootstrap);
* ``imports`` -- its ``__init__`` also imports torch and gradcode's task and
  Ray-worker modules (what unpickling a gradcode task triggers);
* ``task`` -- as ``imports``, then unpickles the task an actor of
  :class:`~gradcode.runtime.RayCluster` receives (``breast_cancer`` logreg, the
  task of ``bench/runtime.py``; a worker's share of the rows when
  ``worker_task`` is available).

Then the whole start-up of :class:`~gradcode.runtime.ray.RayCluster` for the
task of the calibrated-clock runs (``fashion_mnist`` MLP, batch 64, ``frc``
s = 3), both ways, alternating, each in fresh actors (``--gradcode-repeats``):

* ``after task`` (before 2026-12-06): build the task, then create the actors
  and ship each its partitions;
* ``early`` (:func:`~gradcode.runtime.ray.start_early`, what ``run`` does now):
  create the actors (they boot and import torch), build the task meanwhile,
  then ship the partitions.

"ready" is the wall time from the start (before the task is built) until every
actor has its partitions and has computed one warm-up gradient; "wait" is what
the driver waits for the actors once its task is built.

Per actor it records: *queue* -- from ``Actor.remote()`` to its process's start
(``/proc/<pid>/stat``; Ray starts at most ``min(cores, num_cpus)`` worker
processes at a time), *boot* -- from process start to the actor's ``__init__``
(interpreter, ``import ray``, connecting to the node, loading the class), with
its CPU seconds, and the wall and CPU seconds of each ``__init__`` step.  It
also times the imports in a fresh interpreter, one at a time.  Medians over the
n actors; "ready" is the wall time until all n have answered a ping.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/ray_startup.py [--n 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import statistics
import subprocess
import sys
import time

import numpy as np
import ray

from gradcode.task import Task

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: The module an actor of the Ray backend imports (it moved on 2026-12-06).
WORKER_MODULE = next(
    m
    for m in ("gradcode.runtime.ray.worker", "gradcode.runtime.ray_worker", "gradcode.runtime")
    if importlib.util.find_spec(m.rsplit(".", 1)[0]) is not None
    and importlib.util.find_spec(m) is not None
)


def boot_time() -> float:
    with open("/proc/stat") as f:
        return float(next(line.split()[1] for line in f if line.startswith("btime")))


def process_start(pid: int) -> float:
    """Epoch seconds at which process ``pid`` started (1/CLK_TCK resolution)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return boot_time() + int(fields[19]) / CLK_TCK


@ray.remote(num_cpus=0)
class Probe:
    """Times its own ``__init__`` steps (wall and process CPU seconds)."""

    def __init__(self, stages: tuple[str, ...], payload: bytes | None, module: str) -> None:
        self.rec = {"enter": time.time(), "boot_cpu": time.process_time(), "pid": os.getpid()}

        def step(name, fn):
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            self.rec[name] = (time.perf_counter() - t0, time.process_time() - c0)

        if "imports" in stages:
            step("import torch", lambda: __import__("torch"))
            step("import gradcode", lambda: __import__(module))
        if payload is not None:
            step("unpickle task", lambda: pickle.loads(payload))

    def ping(self) -> dict:
        return self.rec


def fresh_imports(modules: list[str]) -> dict[str, tuple[float, float]]:
    """(wall, CPU) seconds of importing each module in a fresh interpreter (best of 2)."""
    out = {}
    for mod in modules:
        code = (
            "import time; t = time.perf_counter(); c = time.process_time(); "
            f"import {mod}; print(time.perf_counter() - t, time.process_time() - c)"
        )
        runs = []
        for _ in range(2):
            res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
            runs.append(tuple(float(x) for x in res.stdout.split()))
        out[mod] = min(runs)
    return out


def payload(n: int) -> bytes:
    task = Task.build("breast_cancer", "logreg", n, "iid", np.random.default_rng(0))
    cut = getattr(task, "restrict", None)
    return pickle.dumps(task if cut is None else cut([0]))  # one worker's share


def gradcode_startup(n: int, early: bool) -> dict:
    """Seconds from the start (before the task is built) until ``n`` worker actors are
    ready, ``early`` or after the task; no calibration (timed apart)."""
    from gradcode.runtime.cluster import Schedule
    from gradcode.runtime.config import RunConfig
    from gradcode.runtime.ray import RayCluster
    from gradcode.runtime.run import build_scheme, build_task

    cfg = RunConfig(scheme="frc", workers=n, stragglers=min(3, n - 1), dataset="fashion_mnist",
                    model="mlp", batch_size=64, rounds=2, backend="ray")  # fmt: skip
    t0 = time.perf_counter()
    actors = None
    if early:
        from gradcode.runtime.ray import start_early

        actors = start_early(n)
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)
    built = time.perf_counter() - t0
    cl = RayCluster(scheme, task, Schedule(cfg.delay.build(), 0, 2, n), time_scale=0.0,
                    actors=actors, calibrate=False)  # fmt: skip
    ready = time.perf_counter() - t0
    cl.close()
    time.sleep(2.0)
    return {"task": built, "wait": ready - built, "ready": ready}


def start(n: int, stages: tuple[str, ...], blob) -> tuple[float, list[dict]]:
    t0 = time.time()
    actors = [Probe.remote(stages, blob, WORKER_MODULE) for _ in range(n)]
    recs = ray.get([a.ping.remote() for a in actors])
    ready = time.time() - t0
    for r in recs:
        r["queue"] = process_start(r["pid"]) - t0
        r["boot"] = r["enter"] - process_start(r["pid"])
    for a in actors:
        ray.kill(a)
    time.sleep(2.0)  # let the processes exit before the next set starts
    return ready, recs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--num-cpus", type=int, default=2)
    ap.add_argument("--gradcode-repeats", type=int, default=2)
    ap.add_argument("--startup-concurrency", type=int, default=0,
                    help="Ray's worker_maximum_startup_concurrency (0: Ray's default)")  # fmt: skip
    args = ap.parse_args()
    imports = fresh_imports(["ray", "torch", "gradcode.task", WORKER_MODULE])
    print("fresh interpreter, one import at a time (wall s / CPU s):")
    for mod, (w, c) in imports.items():
        print(f"  import {mod:<30} {w:6.2f} / {c:5.2f}")
    blob = payload(args.n)
    t0 = time.perf_counter()
    system = {"worker_maximum_startup_concurrency": args.startup_concurrency}
    ray.init(
        address="local",
        num_cpus=args.num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        _system_config=system if args.startup_concurrency else None,
    )
    print(
        f"ray.init (private local instance, num_cpus={args.num_cpus}): "
        f"{time.perf_counter() - t0:.2f} s; task payload {len(blob) / 1e3:.0f} kB"
    )
    ref = ray.put(blob)
    steps = ["import torch", "import gradcode", "unpickle task"]
    print(f"n = {args.n} actors created at once; medians over actors (wall s, CPU s in brackets)")
    print(
        f"{'actors':>8} {'ready':>7} {'queue':>7} {'boot':>13}" + "".join(f"{s:>17}" for s in steps)
    )
    for kind, stages, pay in [
        ("empty", (), None),
        ("imports", ("imports",), None),
        ("task", ("imports",), ref),
    ]:
        ready, recs = start(args.n, stages, pay)
        cols = ""
        for s in ["queue", "boot", *steps]:
            if s == "queue":
                cols += f"{statistics.median(r[s] for r in recs):7.2f}"
            elif s in recs[0]:
                w = statistics.median(r[s] if s == "boot" else r[s][0] for r in recs)
                c = statistics.median(r["boot_cpu"] if s == "boot" else r[s][1] for r in recs)
                cols += f"{w:{8 if s == 'boot' else 12}.2f} [{c:4.2f}]"
            else:
                cols += f"{'-':>19}"
        print(f"{kind:>8} {ready:7.2f}" + cols, flush=True)
        queue = sorted(round(r["queue"], 1) for r in recs)
        print(f"{'':>8} process starts after creation (s): {queue}")
    if args.gradcode_repeats:
        print(f"RayCluster start-up, n = {args.n}, fashion_mnist MLP (s): task build, then the "
              "wait for the actors, = ready")  # fmt: skip
        for rep in range(args.gradcode_repeats):
            for early in (False, True):
                r = gradcode_startup(args.n, early)
                kind = "early" if early else "after task"
                print(f"  {rep}  {kind:>10}  task {r['task']:5.2f} + wait {r['wait']:5.2f} "
                      f"= ready {r['ready']:5.2f}", flush=True)  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main()
