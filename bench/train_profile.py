"""Where a local training round's time goes: gradients vs everything else.

The set-up of ``bench/train.py`` (Fashion-MNIST, n = 24, s = 3, 64 samples per
partition, MLP, one torch thread), with the master loop's parts timed on the
main thread's CPU clock by wrapping them:

* ``gradients`` -- ``Task.partition_gradients`` (all partitions of the round);
* ``messages`` -- the workers' ``worker_message`` calls (encoding);
* ``cluster`` -- the rest of ``LocalCluster.run_round`` (plans, delays, stop rule);
* ``finite`` -- the loop's finiteness checks of the messages and the decoded gradient;
* ``decode`` -- ``master_update``;
* ``step`` -- loading the gradient and the optimizer step;
* ``other`` -- the remainder of the round (the loop's bookkeeping).

and, for scale, the plain PyTorch step of ``bench/train.py`` (one backward over
the round's 1,536 samples, then ``SGD.step()``).  Medians over the rounds.

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/train_profile.py [--schemes dgd,is_sgd,pgc]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import numpy as np
import torch
from train import fashion_mnist, floor_block, loop_clock

import gradcode.runtime.loop as loop_module
from gradcode.codes import effective_stragglers, make_scheme
from gradcode.datasets import partition
from gradcode.models import make_model
from gradcode.runtime import LocalCluster, LoopConfig, OptimizerConfig, Schedule, train
from gradcode.runtime.optim import FlatParams
from gradcode.stragglers import ShiftedExponential
from gradcode.task import Task

PARTS = ("gradients", "messages", "cluster", "finite", "decode", "step", "other")
CLOCK = time.thread_time


class Parts:
    """CPU seconds per part, one dict per round (a round starts with ``run_round``)."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, float]] = []

    def wrap(self, part: str, fn, starts_round: bool = False):
        def timed(*args, **kwargs):
            if starts_round:
                self.rounds.append(dict.fromkeys(PARTS, 0.0))
            t0 = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                self.rounds[-1][part] += CLOCK() - t0

        return timed


@contextlib.contextmanager
def patched(obj, name, value):
    saved = obj.__dict__[name] if name in obj.__dict__ else None
    setattr(obj, name, value)
    try:
        yield
    finally:
        if saved is None:
            delattr(obj, name)
        else:
            setattr(obj, name, saved)


def profile(task: Task, name: str, n: int, s: int, rounds: int) -> list[dict[str, float]]:
    """Per-round parts of ``rounds`` rounds of ``name`` on ``task`` (seconds)."""
    parts = Parts()
    scheme = make_scheme(name, n, effective_stragglers(name, s), rng=np.random.default_rng(0))
    cluster = LocalCluster(scheme, task, Schedule(ShiftedExponential(1, 1), 0, rounds, n))
    cfg = LoopConfig(rounds=rounds, optimizer=OptimizerConfig(lr=0.01), eval_every=10**9)
    task.evaluate = lambda w: {}
    task.train_loss = lambda w: 0.0
    with contextlib.ExitStack() as stack:
        for obj, attr, part, start in [
            (cluster, "run_round", "cluster", True),
            (task, "partition_gradients", "gradients", False),
            (scheme, "worker_message", "messages", False),
            (scheme, "master_update", "decode", False),
            (loop_module, "all_finite", "finite", False),
            (FlatParams, "step", "step", False),
            (FlatParams, "set_grad", "step", False),
        ]:
            timed = parts.wrap(part, getattr(obj, attr), start)
            stack.enter_context(patched(obj, attr, timed))
        stack.enter_context(loop_clock(CLOCK))
        res = train(scheme, cluster, task, cfg)
    for rec, h in zip(parts.rounds, res.history, strict=True):
        # run_round's own time excludes the gradients and messages computed inside it
        rec["cluster"] -= rec["gradients"] + rec["messages"]
        rec["other"] = h["compute_seconds"] - sum(rec.values())
    return parts.rounds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="dgd,is_sgd,pgc")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--s", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = fashion_mnist()
    X, y = torch.as_tensor(ds.X_train), torch.as_tensor(ds.y_train)
    parts = partition(ds.y_train, args.n, "iid", np.random.default_rng(1))
    print(
        f"MLP, n={args.n}, s={args.s}, batch {args.batch}: "
        f"median CPU ms per round over {args.rounds} rounds"
    )
    print(
        f"{'scheme':>7} {'path':>7}"
        + "".join(f"{p:>10}" for p in PARTS)
        + f"{'round':>8}{'plain':>8}"
    )
    for name in args.schemes.split(","):
        for path, kw in (("before", {"pergrad": False}), ("after", {})):
            model = make_model("mlp", ds.input_shape, ds.n_classes, np.random.default_rng(2))
            plain = make_model("mlp", ds.input_shape, ds.n_classes, np.random.default_rng(2))
            task = Task(ds, model, parts, batch_size=args.batch, seed=3, **kw)
            profile(task, name, args.n, args.s, 3)  # warm-up
            recs = profile(task, name, args.n, args.s, args.rounds)
            floor = floor_block(plain, X, y, task, args.rounds, False, CLOCK)
            med = {p: statistics.median(r[p] for r in recs) * 1e3 for p in PARTS}
            total = statistics.median(sum(r.values()) for r in recs) * 1e3
            print(
                f"{name:>7} {path:>7}"
                + "".join(f"{med[p]:10.2f}" for p in PARTS)
                + f"{total:8.2f}{statistics.median(floor) * 1e3:8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
