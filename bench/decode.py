"""Per-round decode time: pattern-cached decoder vs a plain per-round lstsq.

The reference implementation of Tandon et al. solves ``a B_K = 1`` with
``np.linalg.lstsq`` in every round.  gradcode caches the decoding per
straggler pattern (a bitmask key), so a pattern seen before costs a dict
lookup.  Both run side by side in one process on the same sequence of
random straggler patterns (n = 24, s = 3 -> C(24, 3) = 2024 patterns).

Run:  .venv/bin/python bench/decode.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradcode.codes import make_code


def patterns(n: int, s: int, rounds: int, rng: np.random.Generator) -> list[list[int]]:
    out = []
    for _ in range(rounds):
        stragglers = set(rng.choice(n, s, replace=False).tolist())
        out.append([i for i in range(n) if i not in stragglers])
    return out


def time_cached(name: str, n: int, s: int, rounds_list) -> tuple[float, float]:
    """(cold, warm): a first pass with an empty cache, then a second pass."""
    code = make_code(name, n, s, rng=np.random.default_rng(0))
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        for arrived in rounds_list:
            code.decode(arrived)
        times.append(time.perf_counter() - t0)
    return times[0], times[1]


def time_plain_lstsq(name: str, n: int, s: int, rounds_list) -> float:
    B = make_code(name, n, s, rng=np.random.default_rng(0)).B
    ones = np.ones(B.shape[1])
    t0 = time.perf_counter()
    for arrived in rounds_list:
        np.linalg.lstsq(B[arrived].T, ones, rcond=None)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20000)
    ap.add_argument("-n", type=int, default=24)
    ap.add_argument("-s", type=int, default=3)
    args = ap.parse_args()
    rounds = patterns(args.n, args.s, args.rounds, np.random.default_rng(1))
    print(f"n={args.n} s={args.s} rounds={args.rounds}")
    print(
        f"{'scheme':<12}{'lstsq':>10}{'cold':>10}{'warm':>10}"
        f"{'cold x':>9}{'warm x':>9}   (us per round; x = lstsq / cached)"
    )
    for name in ("crc", "cyclic_mds"):
        try:
            make_code(name, args.n, args.s)
        except ValueError:
            continue
        # Repeat both sides alternately so machine noise hits them alike; keep the best.
        cold = warm = plain = float("inf")
        for _ in range(3):
            c, w = time_cached(name, args.n, args.s, rounds)
            cold, warm = min(cold, c), min(warm, w)
            plain = min(plain, time_plain_lstsq(name, args.n, args.s, rounds))
        us = 1e6 / args.rounds
        print(
            f"{name:<12}{plain * us:>10.2f}{cold * us:>10.2f}{warm * us:>10.2f}"
            f"{plain / cold:>8.1f}x{plain / warm:>8.1f}x"
        )


if __name__ == "__main__":
    main()
