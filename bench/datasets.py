"""Load time and size of each real dataset available on this machine.

Each set is loaded in a fresh subprocess, three times, verified against its
pinned digests; the median wall time of ``load_dataset`` (including the
imports it makes on first use: scikit-learn, pyarrow, mnist1d) is printed
with the in-memory size of its arrays.  Sets whose files or packages are
missing are reported as such.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/datasets.py
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

NAMES = ("breast_cancer", "digits", "wine", "fashion_mnist", "adult", "mnist5k", "mnist1d")

_CHILD = """
import json, sys, time
import numpy as np
from gradcode.datasets import load_dataset
t0 = time.perf_counter()
try:
    ds = load_dataset(sys.argv[1], np.random.default_rng(0))
except ValueError as exc:
    print(json.dumps({"error": str(exc)})); raise SystemExit
dt = time.perf_counter() - t0
mib = sum(a.nbytes for a in (ds.X_train, ds.y_train, ds.X_test, ds.y_test)) / 2**20
print(json.dumps({"s": dt, "mib": mib, "n": [len(ds.y_train), len(ds.y_test)],
                  "shape": ds.input_shape}))
"""


def main() -> None:
    print(
        f"{'dataset':<14} {'train/test':>13} {'shape':>12} {'load s (median of 3)':>21} {'MiB':>7}"
    )
    for name in NAMES:
        runs = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, name], capture_output=True, text=True, check=True
            )
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if "error" in runs[0]:
            print(f"{name:<14} unavailable: {runs[0]['error'][:80]}")
            continue
        med = statistics.median(r["s"] for r in runs)
        r = runs[0]
        split = f"{r['n'][0]}/{r['n'][1]}"
        print(f"{name:<14} {split:>13} {str(tuple(r['shape'])):>12} {med:>21.2f} {r['mib']:>7.1f}")


if __name__ == "__main__":
    main()
