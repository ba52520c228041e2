"""Wall-clock seconds per training round of the local backend vs a plain PyTorch loop.

Fashion-MNIST (60,000 28x28 training images), n = 24 workers, s = 3, a
minibatch of 64 per partition per round (1,536 samples per round), MLP and
CNN.  For every scheme, gradcode's round -- ``LocalCluster.run_round`` (the
partition gradients, the workers' messages), the decode and the optimizer
step, i.e. the loop's ``compute_seconds`` -- is timed against a plain PyTorch
loop doing the same forward+backward work on the same samples: one
``loss.backward()`` over the round's 1,536 samples ("plain 1x") or one per
partition minibatch accumulated into ``.grad`` ("plain kx"), then one
``SGD.step()``; the ratio is against the faster of the two.  All sides use
rounds 0 .. R-1 of the same seeded sampler.  Blocks of rounds alternate, and
medians are compared, so a noisy (shared) machine affects all sides alike.

"before" forces the per-partition path of earlier versions (``Task(pergrad=False)``:
``torch.func.vmap`` over partitions, or one backward per partition for CNNs on
CPU); "after" is the default, which uses :mod:`gradcode.pergrad` (every
partition's gradient from one forward and one backward) where it applies.
``--clock cpu`` times the main thread's CPU time instead of wall time (the same
work, less sensitive to other processes on a shared machine).

The goal is <= 1.3x for dgd / is_sgd / pgc and <= 1.3 (s+1) x for frc / crc:
a gradient code's workers compute s+1 partitions each, but in one process
each partition's gradient is computed once per round (see
:mod:`gradcode.runtime.cluster`), so the measured ratio stays near the
uncoded one.  Evaluation is excluded on both sides.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/train.py [--rounds 6 --repeats 3 --clock cpu]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import types

import numpy as np
import torch

import gradcode.runtime.loop as loop_module
from gradcode.codes import effective_stragglers, make_scheme
from gradcode.datasets import load_dataset, partition
from gradcode.models import make_model
from gradcode.runtime import LocalCluster, LoopConfig, OptimizerConfig, Schedule, train
from gradcode.stragglers import ShiftedExponential
from gradcode.task import Task

SCHEMES = ("dgd", "is_sgd", "pgc", "frc", "crc")
FASHION = "/usr/share/datasets/fashion-mnist"


def fashion_mnist():
    rng = np.random.default_rng(0)
    try:
        return load_dataset("fashion_mnist", rng)
    except ValueError:  # older gradcode: the IDX reader of `mnist`, unpinned
        return load_dataset("mnist", rng, FASHION, verify=False)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
#: name -> Task keyword arguments: the path of earlier versions, the default,
#: and the one-backward path forced on (CNNs on CPU do not use it by default)
VARIANTS = {"before": {"pergrad": False}, "after": {}, "forced": {"pergrad": True}}


@contextlib.contextmanager
def loop_clock(clock):
    """The master loop's ``compute_seconds`` measured on ``clock``."""
    saved = loop_module.time
    names = {k: getattr(time, k) for k in dir(time) if not k.startswith("_")}
    loop_module.time = types.SimpleNamespace(**{**names, "perf_counter": clock})
    try:
        yield
    finally:
        loop_module.time = saved


def gradcode_block(task, name, n, s, rounds, clock) -> list[float]:
    scheme = make_scheme(name, n, effective_stragglers(name, s), rng=np.random.default_rng(0))
    cluster = LocalCluster(scheme, task, Schedule(ShiftedExponential(1, 1), 0, rounds, n))
    cfg = LoopConfig(rounds=rounds, optimizer=OptimizerConfig(lr=0.01), eval_every=10**9)
    task.evaluate = lambda w: {}  # evaluation is not part of the round
    task.train_loss = lambda w: 0.0
    with loop_clock(clock):
        res = train(scheme, cluster, task, cfg)
    return [h["compute_seconds"] for h in res.history]


def floor_block(model, X, y, task, rounds, per_partition: bool, clock) -> list[float]:
    """Plain PyTorch: one backward over the round's samples (``per_partition=False``)
    or one per partition's minibatch, accumulating into ``.grad`` (``True``)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    k = task.num_partitions
    out = []
    for t in range(rounds):
        t0 = clock()
        batches = [task.rows(j, t) for j in range(k)]
        opt.zero_grad()
        for rows in batches if per_partition else [torch.cat(batches)]:
            loss = torch.nn.functional.cross_entropy(model(X[rows]), y[rows])
            (loss * (len(rows) / task.sampler.samples_per_round)).backward()
        opt.step()
        out.append(clock() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--s", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=6, help="rounds per timed block")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--schemes", default=",".join(SCHEMES))
    ap.add_argument("--variants", default="before,after", help="before, after, forced")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    variants = args.variants.split(",")
    ds = fashion_mnist()
    X, y = torch.as_tensor(ds.X_train), torch.as_tensor(ds.y_train)
    parts = partition(ds.y_train, args.n, "iid", np.random.default_rng(1))
    print(
        f"Fashion-MNIST, n={args.n}, s={args.s}, batch {args.batch}/partition, "
        f"{args.threads} thread(s), {args.clock} clock, median of {args.repeats} x "
        f"{args.rounds} rounds; ms per round, ratio = gradcode / min(plain 1x, plain kx)"
    )
    cols = "".join(f"{v + ' ms':>10}" for v in variants)
    ratios = "".join(f"{v + ' x':>10}" for v in variants)
    print(f"{'model':>5} {'scheme':>7}{cols} {'plain 1x':>9} {'plain kx':>9}{ratios} {'goal':>6}")
    for mname in args.models.split(","):
        for name in args.schemes.split(","):
            plain = make_model(mname, ds.input_shape, ds.n_classes, np.random.default_rng(2))
            tasks = {
                v: Task(
                    ds,
                    make_model(mname, ds.input_shape, ds.n_classes, np.random.default_rng(2)),
                    parts,
                    batch_size=args.batch,
                    seed=3,
                    **VARIANTS[v],
                )
                for v in variants
            }
            times: dict[str, list[float]] = {v: [] for v in [*variants, "1x", "kx"]}
            for rep in range(args.repeats + 1):  # block 0 is a warm-up
                block = {
                    "1x": floor_block(plain, X, y, tasks[variants[0]], args.rounds, False, clock),
                    "kx": floor_block(plain, X, y, tasks[variants[0]], args.rounds, True, clock),
                }
                for v in variants:
                    block[v] = gradcode_block(tasks[v], name, args.n, args.s, args.rounds, clock)
                if rep:
                    for key, ts in block.items():
                        times[key] += ts
            med = {key: statistics.median(ts) for key, ts in times.items()}
            floor = min(med["1x"], med["kx"])
            goal = 1.3 * ((args.s + 1) if name in ("frc", "crc") else 1)
            print(
                f"{mname:>5} {name:>7}"
                + "".join(f"{med[v] * 1e3:10.1f}" for v in variants)
                + f" {med['1x'] * 1e3:9.1f} {med['kx'] * 1e3:9.1f}"
                + "".join(f"{med[v] / floor:10.2f}" for v in variants)
                + f" {goal:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
