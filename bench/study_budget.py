"""Estimate a study's wall time on this machine before running it (issue 26, item 7).

For every task (dataset/model) of the given grids, times tiny cells of that task
with the grid's own settings (n, minibatch, evaluation period): two trained runs
of ``r1`` and ``r2`` rounds after a warm-up run (the slope is the cost per round, evaluations
included; the intercept the start-up), one replay without gradients
(:func:`gradcode.grid.reuse.write_sketch`) per round; then
:func:`gradcode.grid.budget.estimate` predicts trained / re-timed runs and hours.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/study_budget.py \\
        experiments/decisive.toml experiments/decisive_cnn.toml

``--stop`` gives the mean fraction of the round cap a reported run lasts before
it stops at its target (default: 1, every run to its cap -- the upper bound).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from gradcode.grid.budget import Costs, count, estimate
from gradcode.grid.parse import load_experiment
from gradcode.grid.reuse import write_sketch
from gradcode.runtime.run import run


def _timed(rc, out: Path) -> float:
    t0 = time.perf_counter()
    run(rc, out, overwrite=True)
    return time.perf_counter() - t0


def measure(rc, r1: int, r2: int) -> Costs:
    """Costs of ``rc``'s task: per trained round, start-up, per replayed round."""
    with tempfile.TemporaryDirectory() as tmp:
        base = replace(rc, target_accuracy=None, scheme="dgd", stale_correction="none")
        _timed(replace(base, rounds=r1), Path(tmp) / "warm")  # data loaded, caches warm
        t1 = _timed(replace(base, rounds=r1), Path(tmp) / "a")
        t2 = _timed(replace(base, rounds=r2), Path(tmp) / "b")
        per = max(t2 - t1, 1e-9) / (r2 - r1)
        t0 = time.perf_counter()
        write_sketch(replace(base, scheme="pgc", rounds=r2), Path(tmp) / "s.npz")
        replay = (time.perf_counter() - t0) / r2
    return Costs(per, replay, 0.05, max(t1 - r1 * per, 0.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("grids", nargs="+", type=Path)
    ap.add_argument("--r1", type=int, default=10)
    ap.add_argument("--r2", type=int, default=60)
    ap.add_argument("--cnn-rounds", type=int, nargs=2, default=(5, 25))
    ap.add_argument("--stop", action="append", default=[], help="TASK=FRACTION, repeatable")
    args = ap.parse_args()
    torch.set_num_threads(1)
    stop = {k: float(v) for k, v in (s.split("=") for s in args.stop)}
    costs: dict[str, Costs] = {}
    total = 0.0
    for path in args.grids:
        cfg = load_experiment(path)
        for c in cfg.cells():
            task = f"{c.dataset}/{c.model}"
            if task not in costs:
                rc = replace(cfg.run_config(c), backend="local", time_scale=None)
                r1, r2 = args.cnn_rounds if c.model == "cnn" else (args.r1, args.r2)
                costs[task] = measure(rc, r1, r2)
                k = costs[task]
                print(f"{task}: {k.seconds_per_round:.4f} s/round trained (eval every "
                      f"{rc.eval_every}), start-up {k.startup_seconds:.2f} s, replay "
                      f"{k.replay_per_round:.4f} s/round", flush=True)  # fmt: skip
        b = count(cfg)
        est = estimate(cfg, costs, stop)
        total += est["seconds"]
        print(f"{cfg.name}: {b.cells} cells ({b.cells_trained} trained, "
              f"{b.cells - b.cells_trained} re-timed), {b.tuning_runs} tuning runs "
              f"({b.tuning_trained} trained); train {est['train_s'] / 3600:.2f} h, replay "
              f"{est['replay_s'] / 3600:.2f} h, re-time {est['retime_s'] / 3600:.2f} h of one "
              f"core -> {est['hours']:.2f} h on {cfg.jobs} job(s)", flush=True)  # fmt: skip
    print(f"total: {total / 3600:.2f} h")


if __name__ == "__main__":
    main()
