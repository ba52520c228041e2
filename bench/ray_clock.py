"""The calibrated Ray clock against measured rounds (issue 23, Done-when (b)).

Runs, ``--repeats`` times for each ``--n``, the acceptance command

    gradcode train --backend ray --scheme frc -n N -s 3 --dataset fashion_mnist \\
        --model mlp --batch-size 64 --time-scale 0.05 --rounds 30 --out DIR

(each in a fresh process and a fresh private Ray instance) and prints, per run,
the median over rounds 10-29 of measured / predicted round time
(``duration / predicted_duration``: the calibrated prediction) and of measured /
simulated (``duration / simulated_duration``: the virtual clock alone), the
start-up (logged apart from the rounds) and the load average (1 min) before and
after.  Goal: 0.85-1.15 for measured / predicted.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/ray_clock.py [--n 24 8 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def one(n: int, out: Path) -> dict:
    cmd = [sys.executable, "-c", "from gradcode.cli import main; main()", "train",
           "--backend", "ray", "--scheme", "frc", "-n", str(n), "-s", "3",
           "--dataset", "fashion_mnist", "--model", "mlp", "--batch-size", "64",
           "--time-scale", "0.05", "--rounds", "30", "--quiet", "--out", str(out)]  # fmt: skip
    before = os.getloadavg()[0]
    subprocess.run(cmd, check=True, capture_output=True)
    after = os.getloadavg()[0]
    recs = [json.loads(ln) for ln in (out / "rounds.jsonl").read_text().splitlines()]
    window = recs[10:30]
    return {
        "n": n,
        "load": (before, after),
        "startup": recs[0].get("startup_seconds"),
        "predicted": statistics.median(r["duration"] / r["predicted_duration"] for r in window),
        "simulated": statistics.median(r["duration"] / r["simulated_duration"] for r in window),
        "round_s": statistics.median(r["duration"] * 0.05 for r in window),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[24, 8])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{'n':>3} {'run':>3} {'load before/after':>17} {'start-up s':>10} "
          f"{'round s':>8} {'meas/pred':>9} {'meas/sim':>8}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            for rep in range(args.repeats):
                r = one(n, Path(tmp) / f"n{n}_{rep}")
                print(f"{n:>3} {rep:>3} {r['load'][0]:8.1f}/{r['load'][1]:<8.1f} "
                      f"{r['startup']:10.1f} {r['round_s']:8.3f} {r['predicted']:9.3f} "
                      f"{r['simulated']:8.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
