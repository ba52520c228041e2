"""Build and run a training job from a :class:`RunConfig`, writing its outputs.

Outputs in ``out_dir``:

* ``config.json`` -- the run's configuration;
* ``rounds.jsonl`` -- one JSON line per round (times, arrivals, decoder,
  residual, staleness, fallbacks, and periodic loss/accuracy);
* ``summary.json`` -- final metrics;
* ``checkpoint.pkl`` -- written every ``checkpoint_every`` rounds (and when
  training stops); ``resume=True`` continues from it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..codes import make_scheme
from .cluster import LocalCluster, Schedule
from .config import RunConfig, check_resume
from .loop import JsonLinesLog, LoopConfig, OptimizerConfig, TrainResult, train


def build_scheme(cfg: RunConfig):
    """The scheme of ``cfg``; a :class:`ValueError` if it cannot run on ``cfg.backend``."""
    scheme = make_scheme(
        cfg.scheme,
        cfg.workers,
        cfg.effective_s,
        rng=np.random.default_rng(cfg.seed),
        **dict(cfg.scheme_options),
    )
    local_only = getattr(scheme, "sequential", False) or getattr(scheme, "chunked", False)
    if cfg.backend == "ray" and local_only:
        raise ValueError(
            f"{cfg.scheme} runs on the local backend only (its multi-job or streamed-chunk "
            "rounds are not wired into the Ray backend yet)"
        )
    return scheme


def build_task(cfg: RunConfig, num_partitions: int):
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
    )


def build_cluster(cfg: RunConfig, scheme, task):
    schedule = Schedule(cfg.delay.build(), cfg.seed, cfg.rounds, cfg.workers)
    if cfg.backend == "local":
        return LocalCluster(scheme, task, schedule, deadline=cfg.deadline)
    from .ray_cluster import RayCluster

    return RayCluster(scheme, cfg, schedule, deadline=cfg.deadline)


def loop_config(cfg: RunConfig) -> LoopConfig:
    return LoopConfig(
        rounds=cfg.rounds,
        optimizer=OptimizerConfig(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay),
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        on_undecodable=cfg.on_undecodable,
    )


def run(cfg: RunConfig, out_dir: Path, resume: bool = False, progress=None) -> TrainResult:
    """Train once; write config, per-round log, summary and checkpoints to ``out_dir``."""
    out_dir = Path(out_dir)
    ck = out_dir / "checkpoint.pkl"
    if resume:  # refuse a different run before anything is written
        check_resume(cfg, out_dir)
        if not ck.is_file():
            raise ValueError(f"--resume: no checkpoint in {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    scheme = build_scheme(cfg)
    task = build_task(cfg, scheme.k)
    cluster = build_cluster(cfg, scheme, task)
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2, default=str))
    if resume:  # drop log lines past the checkpoint so the log matches the state
        _truncate_log(out_dir / "rounds.jsonl", _checkpoint_round(ck))
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
        cluster.close()
    summary = {
        "scheme": cfg.scheme,
        "rounds": result.rounds,
        "wall_clock": result.wall_clock,
        **{
            k: v
            for k, v in result.final().items()
            if k in ("train_loss", "test_loss", "test_accuracy")
        },
        "exact_fraction": float(np.mean([h["exact"] for h in result.history])),
        "mean_staleness": float(np.mean([h["staleness_mean"] for h in result.history])),
        "fallback_rounds": int(sum(bool(h["notes"]) for h in result.history)),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    np.save(out_dir / "weights.npy", result.weights)
    return result


def _checkpoint_round(path: Path) -> int:
    from .loop import load_checkpoint

    return int(load_checkpoint(path)["round"])


def _truncate_log(path: Path, rounds: int) -> None:
    """Keep the log lines of rounds before ``rounds``; drop a torn last line (a run
    killed mid-write) with a warning."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            round_ = int(json.loads(ln)["round"])
        except (ValueError, TypeError, KeyError):
            if i < len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not JSON; cannot resume") from None
            warnings.warn(f"{path}: dropped a torn last line (run killed mid-write)", stacklevel=2)
            continue
        if round_ < rounds:
            keep.append(ln)
    path.write_text("".join(ln + "\n" for ln in keep))
