"""Peak memory and gradcode's own per-round work on the local backend, zero compute.

n = 24 workers, s = 3, d float32 weights, 14 rounds (timed: the steady state,
after pgc's ``2 s`` fresh-only filling rounds and one more; each round's
oracle time is subtracted from that round); the oracle returns a fresh constant
d-vector per partition per round (allocating it is all it does), so what is
measured is gradcode's message path: the workers' encode / PGC memory, the
finiteness checks, the decode and the optimizer step.  Each (scheme, d) runs
in its own process so its peak RSS (``ru_maxrss``) is its own, measured from
the RSS after a warm-up run at d = 1000 (torch's first operations fault in
60-80 MiB of kernel code and buffers, which is not the run's data).  Reported:

* peak RSS (minus the interpreter's after imports) over the unavoidable
  ``n (s+1) 4 d`` bytes for pgc (its workers hold s+1 partition gradients
  each) and over ``n 4 d`` for crc (n messages);
* the round's time minus the oracle's, over one ``copy_`` of the n messages
  (an ``(n, d)`` tensor, ``n 4 d`` bytes) in the same process, timed after the
  peak was read (timed before the run, its ``2 n 4 d`` bytes of buffers set the
  crc peak: the earlier 3.96x was mostly the reference itself);
* of that work, "workers": the time inside the workers' ``worker_message``
  (crc's encode, pgc's ``s+1``-term sums; on a real cluster each worker does
  its own, in parallel) and "master": the rest (finiteness checks, decode,
  optimizer step) over the memcpy.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/runtime_memory.py [--d 1000000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


class ZeroOracle:
    """Partition gradients: fresh constant vectors (no model, no data)."""

    def __init__(self, d: int, k: int) -> None:
        self.d, self.num_partitions, self.spent = d, k, {}

    def initial_weights(self):
        return torch.zeros(self.d)

    def partition_gradients(self, weights, t, parts):
        t0 = time.perf_counter()
        out = {j: torch.full((self.d,), 1e-6 * (j + 1)) for j in parts}
        self.spent[t] = self.spent.get(t, 0.0) + time.perf_counter() - t0
        return out

    def train_loss(self, weights):
        return 0.0

    def evaluate(self, weights):
        return {}


def one(scheme_name: str, d: int, rounds: int, n: int = 24, s: int = 3, quiet=False) -> None:
    from gradcode.codes import make_scheme
    from gradcode.runtime import LocalCluster, LoopConfig, OptimizerConfig, Schedule, train
    from gradcode.stragglers import ShiftedExponential

    torch.set_num_threads(1)
    if d > 1000:  # warm-up at tiny d: torch's first ops fault in ~60-80 MiB of kernels
        one(scheme_name, 1000, rounds, n, s, quiet=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # interpreter, imports
    scheme = make_scheme(scheme_name, n, s, rng=np.random.default_rng(0))
    orc = ZeroOracle(d, scheme.k)
    enc: dict[int, float] = {}  # per round: time in the workers' worker_message (encode/sums)
    message = scheme.worker_message

    def timed_message(state, w, t, grads, **kw):
        t0 = time.perf_counter()
        out = message(state, w, t, grads, **kw)
        enc[t] = enc.get(t, 0.0) + time.perf_counter() - t0
        return out

    scheme.worker_message = timed_message
    cluster = LocalCluster(scheme, orc, Schedule(ShiftedExponential(), 0, rounds, n))
    cfg = LoopConfig(rounds=rounds, optimizer=OptimizerConfig(lr=0.01), eval_every=10**9)
    res = train(scheme, cluster, orc, cfg)
    steady = getattr(scheme, "fill", 0) + 2  # pgc: after its fresh-only filling rounds
    rows = res.history[steady:]
    work = statistics.median(h["compute_seconds"] - orc.spent[h["round"]] for h in rows)
    workers = statistics.median(enc[h["round"]] for h in rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    del res, cluster
    src, dst = torch.ones(n, d), torch.empty(n, d)  # the memcpy reference, after the peak
    copies = []
    for _ in range(5):
        t0 = time.perf_counter()
        dst.copy_(src)
        copies.append(time.perf_counter() - t0)
    need = n * (s + 1 if scheme_name.startswith("pgc") else 1) * 4 * d
    cp = statistics.median(copies)
    if quiet:
        return
    print(
        f"{scheme_name:>5} {d:9.0e} {peak / 2**20:9.0f} {need / 2**20:9.0f} {peak / need:6.2f} "
        f"{work * 1e3:9.1f} {cp * 1e3:8.1f} {work / cp:6.2f} {workers * 1e3:8.1f} "
        f"{(work - workers) / cp:7.2f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", default="1000000", help="comma-separated sizes, e.g. 1000000,10000000")
    ap.add_argument("--rounds", type=int, default=14, help="pgc's first 2 s + 1 are not timed")
    ap.add_argument("--one", nargs=2, metavar=("SCHEME", "D"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one[0], int(float(args.one[1])), args.rounds)
        return
    print("n=24 s=3 float32, zero-compute oracle; RSS in MiB, times in ms per round")
    print(
        f"{'scheme':>5} {'d':>9} {'peak':>9} {'needed':>9} {'ratio':>6} "
        f"{'gc work':>9} {'memcpy':>8} {'ratio':>6} {'workers':>8} {'master':>7}"
    )
    for d in args.d.split(","):
        for scheme in ("pgc", "crc"):
            subprocess.run(
                [sys.executable, __file__, "--one", scheme, d, "--rounds", str(args.rounds)],
                check=True,
            )


if __name__ == "__main__":
    main()
