"""Per-round decode time: pattern-cached null-space decoder vs a plain per-round lstsq.

The reference implementation of Tandon et al. solves ``a B_K = 1`` with
``np.linalg.lstsq`` in every round (an SVD of ``B_K``: ``O(n^3)``).  gradcode
decodes each new straggler pattern through the left null space of ``B`` (one
``s x s`` solve plus one refinement step, see ``gradcode.codes.nullspace``)
and caches the result per pattern, so a pattern seen before costs a dict
lookup.  Both run side by side in one process on the same sequence of random
straggler sets, for several n.

* setup: the one SVD of ``B`` behind the null-space decoder (first decode);
* cold: a first pass over the rounds with an empty cache (a fresh code);
* warm: a second pass (every pattern cached, when they fit);
* lstsq: per-round ``np.linalg.lstsq`` on a prefix of the same rounds
  (it is too slow for all of them at large n); us per round throughout.

Run:  .venv/bin/python bench/decode.py [--n 24 96 384 1000] [-s 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradcode.codes import make_code

ROUNDS = {24: 20000, 96: 20000, 384: 5000, 1000: 2000}


def patterns(n: int, s: int, rounds: int, rng: np.random.Generator) -> list[list[int]]:
    out = []
    for _ in range(rounds):
        stragglers = set(rng.choice(n, s, replace=False).tolist())
        out.append([i for i in range(n) if i not in stragglers])
    return out


def time_cached(name: str, n: int, s: int, rounds_list) -> tuple[float, float, float, float]:
    """(setup, cold, warm, worst residual): a fresh code, then two passes."""
    code = make_code(name, n, s, rng=np.random.default_rng(0))
    t0 = time.perf_counter()
    code.decode(range(n))  # builds the null-space factors once
    setup = time.perf_counter() - t0
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        for arrived in rounds_list:
            code.decode(arrived)
        times.append(time.perf_counter() - t0)
    worst = max(code.decode(arrived).residual for arrived in rounds_list[:50])
    return setup, times[0], times[1], worst


def time_plain_lstsq(name: str, n: int, s: int, rounds_list) -> float:
    B = make_code(name, n, s, rng=np.random.default_rng(0)).B
    ones = np.ones(B.shape[1])
    t0 = time.perf_counter()
    for arrived in rounds_list:
        np.linalg.lstsq(B[arrived].T, ones, rcond=None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[24, 96, 384, 1000])
    ap.add_argument("-s", type=int, default=3)
    ap.add_argument("--rounds", type=int, help="rounds per n (default: 20000 .. 2000)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(
        f"{'scheme':<12}{'n':>5}{'rounds':>7}{'setup ms':>10}{'lstsq':>10}{'cold':>9}"
        f"{'warm':>8}{'cold x':>9}{'warm x':>9}{'warm<=cold':>11}{'max resid':>11}"
    )
    for n in args.n:
        rounds = args.rounds or ROUNDS.get(n, 2000)
        todo = patterns(n, args.s, rounds, np.random.default_rng(1))
        plain_rounds = todo[: min(rounds, max(5, int(20000 * (24 / n) ** 3)))]
        for name in ("crc", "cyclic_mds"):
            try:
                make_code(name, n, args.s)
            except ValueError:
                continue
            # Repeat both sides alternately so machine noise hits them alike; keep the best.
            setup = cold = warm = plain = float("inf")
            worst = 0.0
            for _ in range(args.repeats):
                st, c, w, r = time_cached(name, n, args.s, todo)
                setup, cold, warm, worst = min(setup, st), min(cold, c), min(warm, w), max(worst, r)
                plain = min(plain, time_plain_lstsq(name, n, args.s, plain_rounds))
            plain_us = plain * 1e6 / len(plain_rounds)
            cold_us, warm_us = cold * 1e6 / rounds, warm * 1e6 / rounds
            print(
                f"{name:<12}{n:>5}{rounds:>7}{setup * 1e3:>10.1f}{plain_us:>10.1f}{cold_us:>9.1f}"
                f"{warm_us:>8.2f}{plain_us / cold_us:>8.1f}x{plain_us / warm_us:>8.0f}x"
                f"{'yes' if warm <= cold else 'NO':>11}{worst:>11.1e}"
            )


if __name__ == "__main__":
    main()
