"""Small, fast training set-ups for runtime tests."""

import numpy as np

from gradcode.codes import effective_stragglers, make_scheme
from gradcode.runtime import LocalCluster, LogisticOracle, LoopConfig, OptimizerConfig, Schedule
from gradcode.stragglers import ShiftedExponential


def oracle(n: int = 6, seed: int = 0) -> LogisticOracle:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((120, 5))
    y = (X @ rng.standard_normal(5) > 0).astype(int)
    return LogisticOracle(X, y, np.array_split(rng.permutation(120), n), lam=1e-2)


def setup(name, n=6, s=1, rounds=30, model=None, **cluster_kw):
    scheme = make_scheme(name, n, effective_stragglers(name, s), rng=np.random.default_rng(0))
    orc = oracle(n)
    model = ShiftedExponential(1.0, 1.0) if model is None else model
    cluster = LocalCluster(scheme, orc, Schedule(model, 7, rounds, n), **cluster_kw)
    cfg = LoopConfig(rounds=rounds, optimizer=OptimizerConfig(lr=1.0), eval_every=5)
    return scheme, cluster, orc, cfg


def interrupted_then_resumed(fresh, stop_at: int, checkpoint, **train_kw):
    """Train ``fresh()`` (a new ``(scheme, cluster, oracle, cfg)``: a fresh process, in
    effect) until an exception after round ``stop_at``, then resume a second fresh set-up
    from ``checkpoint``; returns the resumed :class:`~gradcode.runtime.loop.TrainResult`."""
    import pytest

    from gradcode.runtime import train

    class Interrupt(Exception):
        pass

    def boom(rec):
        if rec["round"] == stop_at:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(*fresh(), checkpoint_path=checkpoint, progress=boom, **train_kw)
    return train(*fresh(), checkpoint_path=checkpoint, resume=checkpoint, **train_kw)
