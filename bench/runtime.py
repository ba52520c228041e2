"""Ray backend: per-round overhead vs a bare ``ray.wait`` loop, actor start-up, memory.

1. **Overhead.** Both sides do the same transfers each round: ``ray.put`` of
   ``d`` float32 weights, one call per worker (``n`` actors) returning a
   ``d``-vector, ``ray.wait`` until every result is in, ``ray.get``.  The
   backend side is :meth:`RayCluster.run_round` with ``dgd`` (waits for all
   ``n``), a constant-vector oracle (no compute) and no injected delay
   (``time_scale=0``).  The two alternate in blocks of ``--rounds``; medians
   over ``--repeats`` blocks are compared (goal: ratio <= 1.5).  A third loop,
   ``bare+enc``, has the bare actors do the worker-side work gradcode's
   actors do per message (the scheme's encode and the finiteness check), so
   ``vs +enc`` isolates the Ray backend's own machinery.
2. **Start-up.** Wall time from creating ``n`` actors (concurrently) to all of
   them answering, for the no-torch oracle and for a real torch task
   (``breast_cancer`` logreg, each actor gets only its partitions), and the
   proportional memory (PSS, so the shared object store is not counted ``n``
   times) of the worker processes.
3. **Peak memory** of all processes (driver + Ray daemons + actors), PSS,
   sampled every 50 ms during the run.
4. **Scale** (``--train N``): ``N`` worker actors + the master train
   ``pgc`` (s = 3) on ``breast_cancer`` logreg for 30 rounds with injected
   shifted-exponential delays (``time_scale`` 0.01): start-up + training wall
   time, coverage, and the median of measured / predicted round times.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/runtime.py [--n 8 24 --d 1000000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import ray

from gradcode.codes import make_scheme
from gradcode.runtime.cluster import Schedule
from gradcode.runtime.config import RunConfig
from gradcode.runtime.ray import RayCluster
from gradcode.runtime.run import build_scheme, build_task
from gradcode.stragglers import ShiftedExponential


class ConstOracle:
    """No compute: every partition gradient is the same constant float32 vector."""

    def __init__(self, d: int, k: int) -> None:
        self.d, self.num_partitions = d, k
        self.g = None

    def partition_gradient(self, j, weights):
        if self.g is None:
            self.g = np.full(self.d, 1e-3, dtype=np.float32)
        return self.g


@ray.remote(num_cpus=0)
class Bare:
    def __init__(self, d: int) -> None:
        self.g = np.full(d, 1e-3, dtype=np.float32)
        self.scheme = make_scheme("dgd", 1, 0)

    def f(self, weights):
        return self.g

    def encoded(self, weights):
        """The same transfer after the worker-side work gradcode does (dgd encode, check)."""
        return encoded_message(self.scheme, self.g)


def encoded_message(scheme, g):
    """What a gradcode actor does to a partition gradient ``g`` before sending it: the
    scheme's encode and the finiteness check (as in ``gradcode.runtime.ray.worker``)."""
    from gradcode.runtime.ray import worker

    if not hasattr(worker, "as_tensors"):  # before 2026-12-06: the NumPy encode
        _, msg = scheme.worker_message(None, 0, 0, {0: g})
        worker.finite(msg.vector)
        return msg.vector
    grads, _ = worker.as_tensors({0: g})
    _, msg = scheme.worker_message(None, 0, 0, grads)
    worker.finite(msg.vector)
    return worker.as_array(msg.vector)


def bare_round(actors, w, encoded: bool = False) -> None:
    wref = ray.put(w)
    pending = [(a.encoded if encoded else a.f).remote(wref) for a in actors]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        ray.get(done[0])


# ---------------------------------------------------------------- memory


def _children() -> dict[int, int]:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                out[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def tree(root: int) -> list[int]:
    """``root`` and all its descendants (a private Ray instance lives under the driver)."""
    parent = _children()
    kids: dict[int, list[int]] = {}
    for p, pp in parent.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def pss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_pids() -> list[int]:
    out = []
    for p in tree(os.getpid()):
        try:
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        if b"WorkerActor" in cmd or b"default_worker" in cmd or b"Bare" in cmd:
            out.append(p)
    return out


class PeakMemory:
    """Sample the PSS of the driver's process tree every ``every`` seconds."""

    def __init__(self, every: float = 0.05) -> None:
        self.every, self.peak, self._stop = every, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(pss_mb(p) for p in tree(os.getpid())))
            self._stop.wait(self.every)

    def __enter__(self) -> PeakMemory:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


# ---------------------------------------------------------------- measurements


def startup(n: int, torch_task: bool) -> tuple[float, float]:
    """(seconds until n fresh actors answer, mean PSS MB per worker process)."""
    cfg = RunConfig(scheme="frc", workers=n, stragglers=1, rounds=2, backend="ray")
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k) if torch_task else ConstOracle(10, scheme.k)
    schedule = Schedule(ShiftedExponential(), 0, 2, n)
    t0 = time.perf_counter()
    cl = RayCluster(scheme, task, schedule, time_scale=0.0)
    secs = time.perf_counter() - t0 - getattr(cl, "startup", {}).get("calibrate", 0.0)
    cl.run_round(0, task.initial_weights() if torch_task else np.zeros(10, np.float32))
    pids = worker_pids()
    per = statistics.mean(pss_mb(p) for p in pids) if pids else float("nan")
    cl.close()
    time.sleep(1.0)  # let the killed actors' processes exit before the next measurement
    return secs, per


def overhead(n: int, d: int, rounds: int, repeats: int) -> tuple[float, float, float]:
    total = (repeats + 1) * rounds
    scheme = make_scheme("dgd", n, 0)
    schedule = Schedule(ShiftedExponential(), 0, total, n)
    cluster = RayCluster(scheme, ConstOracle(d, scheme.k), schedule, time_scale=0.0)
    bare = [Bare.remote(d) for _ in range(n)]
    ray.get([a.f.remote(None) for a in bare])
    w = np.zeros(d, dtype=np.float32)
    t_bare, t_enc, t_gc, t = [], [], [], 0
    for rep in range(repeats + 1):  # the first block is a warm-up
        t0 = time.perf_counter()
        for _ in range(rounds):
            bare_round(bare, w)
        tb = (time.perf_counter() - t0) / rounds
        t0 = time.perf_counter()
        for _ in range(rounds):
            bare_round(bare, w, encoded=True)
        te = (time.perf_counter() - t0) / rounds
        t0 = time.perf_counter()
        for _ in range(rounds):
            out = cluster.run_round(t, w)
            assert out.ready and len(out.on_time) == n
            t += 1
        tg = (time.perf_counter() - t0) / rounds
        if rep:
            t_bare.append(tb)
            t_enc.append(te)
            t_gc.append(tg)
    cluster.close()
    for a in bare:
        ray.kill(a)
    return statistics.median(t_bare), statistics.median(t_enc), statistics.median(t_gc)


def worker_side_ms(d: int, reps: int = 20) -> float:
    """What an actor does per dgd message beyond the bare actor: encode + finiteness."""
    scheme, g = make_scheme("dgd", 8, 0), np.full(d, 1e-3, dtype=np.float32)
    t0 = time.perf_counter()
    for _ in range(reps):
        encoded_message(scheme, g)
    return (time.perf_counter() - t0) / reps * 1e3


def train_scale(n: int, tmp: Path) -> None:
    from gradcode.runtime.run import run

    cfg = RunConfig(
        scheme="pgc", workers=n, stragglers=3, rounds=30, eval_every=30, backend="ray",
        time_scale=0.01,
    )  # fmt: skip
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        res = run(cfg, tmp / f"train{n}")
        wall = time.perf_counter() - t0
    rounds = sum(h["duration"] for h in res.history) * 0.01
    ratio = statistics.median(h["duration"] / h["predicted_duration"] for h in res.history)
    sim = [h["duration"] / h["simulated_duration"] for h in res.history
           if "simulated_duration" in h]  # fmt: skip
    covered = sum(h["covered"] for h in res.history)
    start = res.history[0].get("startup_seconds")
    print(
        f"train n={n} pgc s=3: {wall:.1f} s in all ({rounds:.1f} s in rounds"
        + ("" if start is None else f", start-up {start:.1f} s")
        + f"), {covered}/{len(res.history)} rounds covered, median measured/predicted "
        f"{ratio:.2f}"
        + (f" (measured/simulated {statistics.median(sim):.2f})" if sim else "")
        + f", peak {mem.peak:.0f} MB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[8, 24])
    ap.add_argument("--d", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=5, help="rounds per timed block")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train", type=int, default=0, help="also train with this many workers")
    args = ap.parse_args()
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        log_to_driver=False,
        num_cpus=2,
    )
    print(f"Ray {ray.__version__}, {os.cpu_count()} cores, d={args.d:.0e} float32")
    print(
        f"{'n':>3} {'bare ms':>9} {'bare+enc ms':>12} {'gradcode ms':>12} {'ratio':>6} "
        f"{'vs +enc':>8} "
        f"{'start s (no torch)':>19} {'start s (torch)':>16} {'MB/actor torch':>15} {'peak MB':>8}"
    )
    for n in args.n:
        with PeakMemory() as mem:
            mb, me, mg = overhead(n, args.d, args.rounds, args.repeats)
            s0, _ = startup(n, torch_task=False)
            s1, per = startup(n, torch_task=True)
        print(
            f"{n:>3} {mb * 1e3:9.1f} {me * 1e3:12.1f} {mg * 1e3:12.1f} {mg / mb:6.2f} "
            f"{mg / me:8.2f} "
            f"{s0:19.1f} {s1:16.1f} {per:15.0f} {mem.peak:8.0f}"
        )
    enc = worker_side_ms(args.d)
    print(
        f"worker-side work per message (dgd encode + finiteness, in-process): {enc:.2f} ms; "
        f"on {os.cpu_count()} cores n messages serialise to >= n x {enc:.2f} / cores ms per round"
    )
    if args.train:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            train_scale(args.train, Path(tmp))
    ray.shutdown()


if __name__ == "__main__":
    main()
