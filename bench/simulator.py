"""Simulator throughput: every scheme over one rounds x n delay matrix, for several n.

The floor for finding order statistics is one ``np.partition`` pass over the
same matrix; each scheme's full simulation (completion time, workers used,
exactness and residual of every round) is reported as a ratio to it, measured
side by side in one run (median of alternated repeats).  "cold" is the first
call on a fresh code object: for ``lstsq`` it includes the one SVD of ``B``
behind the null-space decoder.  ``sr_sgc`` is sequential (round ``t`` depends
on round ``t - B``) and runs its array-based plan loop over all the rounds.

Run:  .venv/bin/python bench/simulator.py [--n 24 96 384 1000] [--rounds 100000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradcode.codes import REGISTRY, effective_stragglers, make_code
from gradcode.sim import simulate
from gradcode.stragglers import ShiftedExponential


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def table(n: int, s: int, rounds: int, repeats: int, only: list[str] | None) -> None:
    T = ShiftedExponential(1.0, 1.0).sample(np.random.default_rng(0), rounds, n)
    k = n - s - 1

    def floor():
        np.partition(T, k, axis=1)

    floor_ms = 1e3 * min(timed(floor) for _ in range(repeats))
    print(f"\nn={n} s={s} rounds={rounds}; ratio = scheme time / one np.partition pass")
    print(f"{'scheme':<14}{'cold ms':>10}{'warm ms':>10}{'warm ratio':>12}")
    for name in REGISTRY:
        if only and name not in only:
            continue
        code = make_code(name, n, effective_stragglers(name, s), rng=np.random.default_rng(0))
        if getattr(code, "chunked", False):
            continue  # per-chunk timing: see codes.partial's vectorised helpers
        cold = timed(lambda code=code: simulate(code, T))
        ratios, times = [], []
        for _ in range(repeats):  # alternate floor and scheme against noise
            f = timed(floor)
            t = timed(lambda code=code: simulate(code, T))
            ratios.append(t / f)
            times.append(t)
        print(
            f"{name:<14}{cold * 1e3:>10.1f}{np.median(times) * 1e3:>10.1f}"
            f"{np.median(ratios):>11.2f}x"
        )
    print(f"floor: np.partition {floor_ms:.1f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[24, 96, 384, 1000])
    ap.add_argument("--rounds", type=int, default=100_000)
    ap.add_argument("-s", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--schemes", nargs="*", help="only these schemes (default: all)")
    args = ap.parse_args()
    for n in args.n:
        table(n, args.s, args.rounds, args.repeats, args.schemes)


if __name__ == "__main__":
    main()
