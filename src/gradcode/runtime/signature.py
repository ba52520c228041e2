"""Which runs follow the same weight trajectory?  Decide it without training.

A run's weights evolve as ``w_{t+1} = step(w_t, u_t)`` where the applied update
``u_t`` is a *linear* combination of partition gradients ``g_j(w_tau; tau)``
(partition ``j``'s minibatch gradient at the weights of round ``tau``, with
round ``tau``'s seeded minibatch and dropout masks), or no step at all.  Which
``(j, tau)`` enter ``u_t``, and with which coefficients, is decided by the
scheme and the straggler schedule only -- never by the gradient values.  So
two runs with the same task, seed and optimizer settings whose coefficient
sequences agree produce the same weights at every round (by induction on
``t``), whatever their schemes and straggler models.

Example: DGD, FRC, CRC, cyclic MDS and exact partial-straggler GC all apply
``sum_j g_j(w_t; t)`` every round as long as every round decodes exactly, so
under any schedule they follow DGD's trajectory and differ only in how long
each round takes.  IS-SGD's ``u_t`` depends on who arrived, so it does not.

The *signature* of a run finds this out mechanically: it replays the run on
the real :class:`~gradcode.runtime.cluster.LocalCluster` and master loop
(:func:`~gradcode.runtime.loop.train`) with a :class:`SketchOracle` whose
"gradient" ``g_j(., tau)`` is a fixed random vector ``z[tau, j]`` in
``R^dim``.  The recorded update ``u_t = sum c_{j,tau} z[tau, j]`` equals
another run's iff the coefficient sequences agree (with probability one over
``z``).  The replay also yields every timing field of the real run's
``rounds.jsonl`` (the virtual clock, who arrived, decoder, residual,
staleness), because it is the same code on the same schedule.  It costs no
gradient: about a millisecond a round.

:func:`trajectory_key` names what else must agree (task, data, seed,
optimizer, rounds, ...).  Floating point: the reused trajectory is identical
in exact arithmetic; in float32 two exact schemes differ only by the order
of their sums (measured in ``tests/runtime/test_signature.py``).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from .cluster import LocalCluster, Schedule
from .config import RunConfig
from .loop import LoopConfig, train

#: Sketch dimension: the chance that two different coefficient sequences collide is 0.
SKETCH_DIM = 8
#: Updates closer than this (absolute, per coordinate) count as equal (decoders solve
#: least-squares systems, so exact coefficients carry ~1e-13 noise).
SIGNATURE_ATOL = 1e-8

#: RunConfig fields that do not enter the trajectory once the signature agrees
#: (they act through the coefficient sequence, or not at all).
NOT_TRAJECTORY = ("scheme", "stragglers", "delay", "deadline", "scheme_options",
                  "on_undecodable", "address", "time_scale", "checkpoint_every",
                  "threads", "tensorboard")  # fmt: skip


class SketchOracle:
    """A stand-in task whose partition gradient at round ``tau`` is ``z[tau, j]``.

    >>> o = SketchOracle(num_partitions=3, rounds=2)
    >>> g = o.partition_gradients(None, 1, [0, 2])
    >>> sorted(g), bool(torch.equal(g[2], o.table[1, 2]))
    ([0, 2], True)
    """

    def __init__(self, num_partitions: int, rounds: int, dim: int = SKETCH_DIM, seed: int = 0):
        rng = np.random.default_rng([seed, 7919])
        z = rng.standard_normal((rounds, num_partitions, dim))
        self.table = torch.from_numpy(z)
        self.num_partitions, self.dim = num_partitions, dim

    def initial_weights(self) -> torch.Tensor:
        return torch.zeros(self.dim, dtype=torch.float64)

    def partition_gradients(self, weights, t: int, parts) -> dict[int, torch.Tensor]:
        return {int(j): self.table[int(t), int(j)].clone() for j in parts}

    def train_loss(self, weights) -> float:
        return 0.0

    def evaluate(self, weights) -> dict:
        return {}


class _Recorder(torch.optim.Optimizer):
    """An "optimizer" that applies nothing and records every gradient it is given."""

    def __init__(self, params) -> None:
        super().__init__(params, {"lr": 0.0})
        self.seen: list[torch.Tensor] = []

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ARG002 - torch's signature
        for group in self.param_groups:
            for p in group["params"]:
                self.seen.append(p.grad.detach().clone())


def sketch_run(cfg: RunConfig, scheme=None) -> tuple[np.ndarray, list[dict]]:
    """Replay ``cfg`` (local backend) on a :class:`SketchOracle`.

    Returns ``(signature, records)``: ``signature`` is ``(rounds, SKETCH_DIM)``,
    row ``t`` the update applied in round ``t`` (NaN: no step), and ``records``
    the per-round records the real run would log, without :data:`METRIC_FIELDS`.
    ``scheme``: ``cfg``'s scheme when the caller has built it already.
    """
    from .run import build_scheme

    if cfg.backend != "local":
        raise ValueError("signatures replay the in-process backend only")
    if cfg.auto is not None:
        raise ValueError("--scheme auto switches schemes as it measures: it has no signature")
    scheme = build_scheme(cfg) if scheme is None else scheme
    oracle = SketchOracle(scheme.k, cfg.rounds, seed=cfg.seed)
    schedule = Schedule(cfg.delay.build(), cfg.seed, cfg.rounds, cfg.workers)
    cluster = LocalCluster(scheme, oracle, schedule, deadline=cfg.deadline)
    recorder: list[_Recorder] = []

    def factory(params):
        recorder.append(_Recorder(params))
        return recorder[0]

    rows: list[np.ndarray] = []
    records: list[dict] = []

    def log(rec: dict) -> None:
        seen = recorder[0].seen
        rows.append(seen.pop().numpy() if seen else np.full(SKETCH_DIM, np.nan))
        seen.clear()
        records.append({k: v for k, v in rec.items() if k not in METRIC_FIELDS})

    loop = LoopConfig(
        rounds=cfg.rounds,
        optimizer=factory,
        eval_every=cfg.eval_every,
        on_undecodable=cfg.on_undecodable,
    )
    train(scheme, cluster, oracle, loop, log=log)
    return np.stack(rows), records


#: Fields of a round record that depend on the gradients' values or on real compute
#: (not on the schedule): a replay leaves them out, and a re-timed run takes them over
#: from the trained run of its class (:func:`gradcode.grid.reuse.retime`).  Everything
#: else a local run logs -- ``worker_times`` and ``worker_load`` included -- depends on the
#: schedule only and comes from the replay; the Ray-only fields (``predicted_duration``,
#: ``simulated_duration``, ``worker_compute``, ``late_times``, ``startup_seconds``,
#: ``calibration``) never occur in re-timed cells (Ray cells always train for real).
METRIC_FIELDS = ("train_loss", "test_loss", "test_accuracy", "lr", "epoch", "compute_seconds")


def trajectory_key(cfg: RunConfig, k: int) -> str:
    """Everything but the coefficient sequence that fixes the weight trajectory:
    the run's settings without :data:`NOT_TRAJECTORY`, plus the scheme's number of
    data partitions ``k`` (it decides how the data are split)."""
    import json

    d = {key: v for key, v in asdict(cfg).items() if key not in NOT_TRAJECTORY}
    d["partitions"] = int(k)
    return json.dumps(d, sort_keys=True, default=str)


def same_trajectory(a: np.ndarray, b: np.ndarray, atol: float = SIGNATURE_ATOL) -> bool:
    """Do two signatures apply the same updates in every round (NaN = no step)?

    >>> x = np.array([[1.0, 2.0], [np.nan, np.nan]])
    >>> same_trajectory(x, x + 1e-12), same_trajectory(x, x[:1])
    (True, False)
    """
    if a.shape != b.shape:
        return False
    na, nb = np.isnan(a), np.isnan(b)
    if not np.array_equal(na, nb):
        return False
    return bool(np.allclose(a[~na], b[~nb], rtol=0.0, atol=atol))


def coarse_hash(sig: np.ndarray) -> str:
    """A bucket for :func:`same_trajectory` candidates (rounded well above the noise)."""
    import hashlib

    q = np.round(np.nan_to_num(sig, nan=1e9), 4) + 0.0  # + 0.0: no negative zeros
    return hashlib.sha1(q.tobytes()).hexdigest()[:16]


__all__ = [
    "METRIC_FIELDS",
    "NOT_TRAJECTORY",
    "SKETCH_DIM",
    "SketchOracle",
    "coarse_hash",
    "same_trajectory",
    "sketch_run",
    "trajectory_key",
]
