"""PGC's worker messages alone: what ``release`` + ``worker_message`` cost per round.

n = 24 workers, s = 3, d = 110k float32 (the fashion_mnist MLP), fresh partition
gradients every round as one ``(n, d)`` block (as the local backend computes them);
per steady round, every worker releases the gradient it recomputes and builds its
message (``codes/pgc.py``: a running sum re-summed exactly every ``r`` rounds for
``r = s + 1 >= 4``, before 2026-12-06 an exact ``r``-term sum every round).  Thread
CPU time, median over rounds ``10 ..``.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/pgc_messages.py [--n 24 --s 3 --d 110000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradcode.codes.pgc import PGC


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--s", type=int, default=3)
    ap.add_argument("--d", type=int, default=110_000)
    ap.add_argument("--rounds", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n, scheme = args.n, PGC(args.n, args.s)
    states = [scheme.init_worker(w) for w in range(n)]
    times = []
    for t in range(args.rounds):
        block = torch.randn(n, args.d)
        t0 = time.thread_time()
        plans = [scheme.compute_plan(states[w], w, t) for w in range(n)]
        for w in range(n):
            states[w] = scheme.release(states[w], w, plans[w])
        for w in range(n):
            states[w], _ = scheme.worker_message(states[w], w, t, {p: block[p] for p in plans[w]})
        times.append(time.thread_time() - t0)
    ms = statistics.median(times[10:]) * 1e3
    print(f"pgc n={n} s={args.s} d={args.d}: {ms:.2f} ms of worker messages per round")


if __name__ == "__main__":
    main()
