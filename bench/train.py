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

The goal is <= 1.3x for dgd / is_sgd / pgc and <= 1.3 (s+1) x for frc / crc:
a gradient code's workers compute s+1 partitions each, but in one process
each partition's gradient is computed once per round (see
:mod:`gradcode.runtime.cluster`), so the measured ratio stays near the
uncoded one.  Evaluation is excluded on both sides.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/train.py [--rounds 6 --repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gradcode.codes import make_scheme
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


def gradcode_block(task, name, n, s, rounds) -> list[float]:
    scheme = make_scheme(name, n, 0 if name == "dgd" else s, rng=np.random.default_rng(0))
    cluster = LocalCluster(scheme, task, Schedule(ShiftedExponential(1, 1), 0, rounds, n))
    cfg = LoopConfig(rounds=rounds, optimizer=OptimizerConfig(lr=0.01), eval_every=10**9)
    task.evaluate = lambda w: {}  # evaluation is not part of the round
    task.train_loss = lambda w: 0.0
    res = train(scheme, cluster, task, cfg)
    return [h["compute_seconds"] for h in res.history]


def floor_block(model, X, y, task, rounds, per_partition: bool) -> list[float]:
    """Plain PyTorch: one backward over the round's samples (``per_partition=False``)
    or one per partition's minibatch, accumulating into ``.grad`` (``True``)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    k = task.num_partitions
    out = []
    for t in range(rounds):
        t0 = time.perf_counter()
        batches = [task.rows(j, t) for j in range(k)]
        opt.zero_grad()
        for rows in batches if per_partition else [torch.cat(batches)]:
            loss = torch.nn.functional.cross_entropy(model(X[rows]), y[rows])
            (loss * (len(rows) / task.sampler.samples_per_round)).backward()
        opt.step()
        out.append(time.perf_counter() - t0)
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
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = fashion_mnist()
    X, y = torch.as_tensor(ds.X_train), torch.as_tensor(ds.y_train)
    parts = partition(ds.y_train, args.n, "iid", np.random.default_rng(1))
    print(
        f"Fashion-MNIST, n={args.n}, s={args.s}, batch {args.batch}/partition, "
        f"{args.threads} thread(s), median of {args.repeats} x {args.rounds} rounds"
    )
    print(
        f"{'model':>5} {'scheme':>7} {'gradcode ms':>12} {'plain 1x':>9} {'plain kx':>9} "
        f"{'ratio':>6} {'goal':>6}"
    )
    for mname in args.models.split(","):
        for name in args.schemes.split(","):
            model = make_model(mname, ds.input_shape, ds.n_classes, np.random.default_rng(2))
            plain = make_model(mname, ds.input_shape, ds.n_classes, np.random.default_rng(2))
            task = Task(ds, model, parts, batch_size=args.batch, seed=3)
            gc, f1, fk = [], [], []
            for rep in range(args.repeats + 1):  # block 0 is a warm-up
                a = floor_block(plain, X, y, task, args.rounds, per_partition=False)
                b = floor_block(plain, X, y, task, args.rounds, per_partition=True)
                g = gradcode_block(task, name, args.n, args.s, args.rounds)
                if rep:
                    f1, fk, gc = f1 + a, fk + b, gc + g
            mg, m1, mk = (statistics.median(x) for x in (gc, f1, fk))
            goal = 1.3 * ((args.s + 1) if name in ("frc", "crc") else 1)
            print(
                f"{mname:>5} {name:>7} {mg * 1e3:12.1f} {m1 * 1e3:9.1f} {mk * 1e3:9.1f} "
                f"{mg / min(m1, mk):6.2f} {goal:6.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
