"""Build and run a training job from a :class:`RunConfig`, writing its outputs.

Outputs in ``out_dir``:

* ``config.json`` -- the run's configuration;
* ``rounds.jsonl`` -- one JSON line per round (times, arrivals, decoder,
  residual, staleness, fallbacks, and periodic loss/accuracy);
* ``summary.json`` -- final metrics (strict JSON: non-finite values are
  ``null``, listed under ``"nonfinite"``);
* ``model.pt`` -- the final weights as the model's ``state_dict``
  (``torch.load(path, weights_only=True)``);
* ``checkpoint.pt`` -- written every ``checkpoint_every`` rounds (and when
  training stops); ``resume=True`` continues from it.  No pickle: tensors plus
  JSON (see :mod:`gradcode.runtime.checkpoint`).

Every file is written atomically (temporary file + rename); ``rounds.jsonl``
is appended line by line, flushed.  Torch's intra-op thread count is set to
``cfg.threads`` (default 1) for the run and restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..codes import make_scheme
from .checkpoint import atomic_torch_save, atomic_write_text, dumps_strict, strict
from .cluster import LocalCluster, Schedule
from .config import RunConfig, check_resume
from .loop import (
    JsonLinesLog,
    LoopConfig,
    OptimizerConfig,
    TrainResult,
    reached_target,
    read_json_lines,
    train,
)

CHECKPOINT = "checkpoint.pt"


def build_scheme(cfg: RunConfig):
    """The scheme of ``cfg``; a :class:`ValueError` if it cannot run on ``cfg.backend``."""
    scheme = make_scheme(
        cfg.scheme,
        cfg.workers,
        cfg.effective_s,
        rng=np.random.default_rng(cfg.seed),
        **dict(cfg.scheme_options),
    )
    return scheme


def build_task(cfg: RunConfig, num_partitions: int):
    import torch

    from ..task import Task

    return Task.build(
        cfg.dataset,
        cfg.model,
        num_partitions,
        cfg.partitioning.replace("-", "_"),
        np.random.default_rng(cfg.seed),
        data_dir=cfg.data_dir,
        verify=cfg.verify,
        device=cfg.device,
        dtype=getattr(torch, cfg.dtype),
        batch_size=cfg.batch_size,
    )


class RayActorPool:
    """Worker actors kept alive between Ray runs of one process (explicit state).

    Starting 24 actors costs tens of seconds on a small machine (each imports
    torch); a grid of Ray runs passes one pool to every :func:`run`, which takes
    running actors for its ``n`` workers when it has them (the cluster reloads
    them with the run's scheme, data and schedule) and gives them back after.
    :meth:`close` kills them and stops the Ray instance the pool started.

    >>> pool = RayActorPool()
    >>> pool.take(4) is None
    True
    """

    def __init__(self) -> None:
        self.actors: dict[tuple[int, str | None], list] = {}
        self.owns_ray = False

    def connect(self, address: str | None) -> None:
        from .ray_connect import connect

        self.owns_ray = connect(address) or self.owns_ray

    def take(self, n: int, address: str | None = None) -> list | None:
        return self.actors.pop((n, address), None)

    def give(self, n: int, actors: list, address: str | None = None) -> None:
        if len(actors) != n:  # some died: a later run starts afresh
            _kill(actors)
            return
        _kill(self.actors.pop((n, address), []))
        self.actors[n, address] = actors

    def close(self) -> None:
        for actors in self.actors.values():
            _kill(actors)
        self.actors = {}
        if self.owns_ray:
            import ray

            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001 - a failing shutdown must not lose finished runs
                pass
            self.owns_ray = False


def _kill(actors: list) -> None:
    if not actors:
        return
    import ray

    for a in actors:
        try:
            ray.kill(a, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def build_cluster(cfg: RunConfig, scheme, task, actor_pool: RayActorPool | None = None):
    schedule = Schedule(cfg.delay.build(), cfg.seed, cfg.rounds, cfg.workers)
    if cfg.backend == "local":
        return LocalCluster(scheme, task, schedule, deadline=cfg.deadline)
    from . import ray_cluster

    if cfg.batch_size is not None and not getattr(
        ray_cluster.RayCluster, "minibatch_rounds", False
    ):
        # Its actors must pass the round to Task.partition_gradients(weights, t, parts),
        # or every round would reuse round 0's minibatches.
        raise ValueError(
            "--batch-size is not supported by this Ray backend yet (its workers do not "
            "pass the round to the minibatch sampler); use --backend local"
        )
    actors = None
    if actor_pool is not None:
        actor_pool.connect(cfg.address)
        actors = actor_pool.take(cfg.workers, cfg.address)
    return ray_cluster.RayCluster(
        scheme,
        task,
        schedule,
        deadline=cfg.deadline,
        time_scale=cfg.time_scale,
        address=cfg.address,
        actors=actors,
    )


def loop_config(cfg: RunConfig) -> LoopConfig:
    return LoopConfig(
        rounds=cfg.rounds,
        optimizer=OptimizerConfig(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay),
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        on_undecodable=cfg.on_undecodable,
        scheduler=_cosine(cfg.rounds) if cfg.lr_schedule == "cosine" else None,
        target_accuracy=cfg.target_accuracy,
        stale_correction=cfg.stale_correction,
    )


def _cosine(rounds: int):
    import torch

    return lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=rounds)


@contextlib.contextmanager
def torch_threads(n: int):
    """Use ``n`` torch intra-op threads inside the block (then restore the old count)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def run(
    cfg: RunConfig,
    out_dir: Path,
    resume: bool = False,
    progress=None,
    actor_pool: RayActorPool | None = None,
) -> TrainResult:
    """Train once; write config, per-round log, summary and checkpoints to ``out_dir``.

    ``actor_pool`` (Ray only): take running worker actors from it and give them
    back afterwards (a grid of Ray runs starts its actors once)."""
    out_dir = Path(out_dir)
    ck = out_dir / CHECKPOINT
    if resume:  # refuse a different run before anything is written
        check_resume(cfg, out_dir)
        if not ck.is_file():
            raise ValueError(f"--resume: no checkpoint in {out_dir}")
    with torch_threads(cfg.threads):
        scheme = build_scheme(cfg)
        task = build_task(cfg, scheme.k)
        resume_round = _checkpoint_round(ck) if resume else None  # refuses a foreign file
        out_dir.mkdir(parents=True, exist_ok=True)
        cluster = build_cluster(cfg, scheme, task, actor_pool)
        atomic_write_text(out_dir / "config.json", json.dumps(asdict(cfg), indent=2, default=str))
        if resume:  # drop log lines past the checkpoint so the log matches the state
            _truncate_log(out_dir / "rounds.jsonl", resume_round)
        log = JsonLinesLog(out_dir / "rounds.jsonl", mode="a" if resume else "w")
        try:
            result = train(
                scheme,
                cluster,
                task,
                loop_config(cfg),
                log=log,
                checkpoint_path=ck,
                resume=ck if resume else None,
                progress=progress,
            )
        finally:
            log.close()
            if actor_pool is not None and cfg.backend == "ray":
                actor_pool.give(cfg.workers, cluster.detach(), cfg.address)
            else:
                cluster.close()
    summary = summarize(cfg, result.history, result.wall_clock)
    if "warning" in summary:
        warnings.warn(
            f"gradcode: {summary['warning']} (see {out_dir / 'summary.json'})", stacklevel=2
        )
    atomic_write_text(out_dir / "summary.json", dumps_strict(strict(summary), indent=2))
    if result.state_dict is not None:
        atomic_torch_save(result.state_dict, out_dir / "model.pt")
    return result


def summarize(cfg: RunConfig, history: list[dict], wall_clock: float) -> dict:
    """The ``summary.json`` of a run with per-round records ``history``: rounds done,
    clock, the last evaluation, exactness, staleness, fallbacks, skipped steps, and
    whether ``cfg.target_accuracy`` was reached (``None`` without a target)."""
    evals = [h for h in history if "train_loss" in h]
    final = evals[-1] if evals else {}
    reached = None
    if cfg.target_accuracy is not None:
        reached = any(reached_target(h, cfg.target_accuracy) for h in evals)
    return {
        "scheme": cfg.scheme,
        "rounds": history[-1]["round"] + 1 if history else 0,
        "wall_clock": wall_clock,
        **{
            k: v
            for k, v in final.items()
            if k in ("train_loss", "test_loss", "test_accuracy", "epoch")
        },
        "exact_fraction": float(np.mean([h["exact"] for h in history])),
        "mean_staleness": float(np.mean([h["staleness_mean"] for h in history])),
        "fallback_rounds": int(sum(bool(h["notes"]) for h in history)),
        **({} if reached is None else {"reached_target": reached}),
        **skipped_steps(history),
    }


#: A run whose optimizer skipped this many consecutive rounds is flagged (warning + summary).
SKIP_WARN_ROUNDS = 10


def skipped_steps(history: list[dict]) -> dict:
    """``skipped_steps`` (rounds with no usable gradient), their longest streak, and a
    ``warning`` when that streak reaches :data:`SKIP_WARN_ROUNDS` (or every round skipped)."""
    skipped = [any("no usable gradient" in n for n in h["notes"]) for h in history]
    streak = longest = 0
    for s in skipped:
        streak = streak + 1 if s else 0
        longest = max(longest, streak)
    out = {"skipped_steps": int(sum(skipped)), "longest_skipped_streak": longest}
    if history and (longest >= SKIP_WARN_ROUNDS or all(skipped)):
        out["warning"] = (
            f"no gradient was applied in {sum(skipped)} of {len(history)} rounds "
            f"({longest} in a row): too many workers unavailable?"
        )
    return out


def _checkpoint_round(path: Path) -> int:
    from .checkpoint import load_checkpoint

    return int(load_checkpoint(path)["round"])


def _truncate_log(path: Path, rounds: int) -> None:
    if not path.is_file():
        return
    keep = [rec for rec in read_json_lines(path) if rec["round"] < rounds]
    atomic_write_text(path, "".join(json.dumps(rec) + "\n" for rec in keep))
