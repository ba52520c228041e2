"""The composition root: build a :class:`RunConfig` into a run and run it.

One function, :func:`run`, turns the one description of a run into objects
-- scheme -> task -> schedule -> cluster -> loop -- and its folder; the CLI
(``gradcode train``), :func:`gradcode.fit` and the experiment grid all call
it, so their files are the same:

* ``config.json`` -- the run's configuration (``asdict(cfg)``);
* ``rounds.jsonl`` -- one JSON line per round (times, arrivals, decoder,
  residual, staleness, fallbacks, and periodic loss/accuracy);
* ``summary.json`` -- final metrics (:func:`summarize`; strict JSON:
  non-finite values are ``null``, listed under ``"nonfinite"``);
* ``model.pt`` -- the final weights as the model's ``state_dict``
  (``torch.load(path, weights_only=True)``);
* ``checkpoint.pt`` -- written every ``checkpoint_every`` rounds (and when
  training stops); ``resume=True`` continues from it.  No pickle: tensors plus
  JSON (see :mod:`gradcode.runtime.checkpoint`).

With ``cfg.tensorboard`` the records also go, as scalars, to TensorBoard event
files in that folder (:mod:`gradcode.runtime.tensorboard`; with or without a
run folder).

The folder belongs to one run (:mod:`gradcode.runtime.rundir`): it is locked
for the whole run, a fresh run refuses another run's files unless
``overwrite`` (then deletes them all first), and a resume checks the whole
checkpoint and log before touching anything.  :func:`gradcode.fit`'s own
objects (model, data, loss, metrics, optimizer and scheduler factories)
travel beside the config in a :class:`UserTask`.  Torch's intra-op thread
count is set to ``cfg.threads`` (default 1) for the run and restored
afterwards.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..codes import make_scheme
from .auto import AutoSwitch, build_choice, scheme_in_force, warmup_choice
from .cluster import LocalCluster, Schedule, refuse_deadline
from .config import RunConfig
from .loop import LoopConfig, OptimizerConfig, TrainResult, reached_target, train
from .ray import cluster as ray_cluster
from .ray import pool as ray_pool
from .ray.pool import RayActorPool
from .resume import config_record
from .rundir import RunFolder
from .tensorboard import Tee, TensorBoardLog, require


@dataclass(frozen=True, eq=False)
class UserTask:
    """What :func:`gradcode.fit` brings that a :class:`RunConfig` cannot name: the
    user's own objects, already checked (:mod:`gradcode.fitting_checks`).

    ``X``, ``y`` (and ``X_test``, ``y_test``) are tensors on the model's device;
    ``optimizer(params)`` and ``scheduler(optimizer)`` are factories (``None``:
    the config's named optimizer / schedule); ``delay`` a straggler model object
    given instead of a spec (``None``: ``cfg.delay``).
    """

    model: object
    X: object
    y: object
    X_test: object = None
    y_test: object = None
    loss_fn: Callable | None = None
    metrics: Mapping[str, Callable] = field(default_factory=dict)
    optimizer: Callable | None = None
    scheduler: Callable | None = None
    delay: object = None


def build_scheme(cfg: RunConfig):
    """The scheme of ``cfg`` (``auto``: its warm-up scheme); a :class:`ValueError` if it
    cannot be built."""
    if cfg.auto is not None:
        return build_choice(warmup_choice(cfg.auto, cfg.stragglers), cfg.workers, cfg.seed)
    scheme = make_scheme(
        cfg.scheme,
        cfg.workers,
        cfg.effective_s,
        rng=np.random.default_rng(cfg.seed),
        **dict(cfg.scheme_options),
    )
    refuse_deadline(scheme, cfg.deadline)  # before any backend starts (Ray would print first)
    return scheme


def build_task(cfg: RunConfig, num_partitions: int, user: UserTask | None = None):
    """The gradient oracle: a named dataset and model, or the user's (``user``)."""
    import torch

    from ..datasets import partition
    from ..task import Task, TensorData

    if user is None:
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
    y = user.y
    labels = y.cpu().numpy() if y.ndim == 1 else np.zeros(len(y))
    rng = np.random.default_rng([cfg.seed, 1])
    parts = partition(labels, num_partitions, cfg.partitioning, rng)
    return Task(
        TensorData("user", user.X, y, user.X_test, user.y_test),
        user.model,
        parts,
        model_name=cfg.model,
        partitioning=cfg.partitioning,
        device=cfg.device,
        loss_fn=user.loss_fn,
        metrics=dict(user.metrics),
        batch_size=cfg.batch_size,
        seed=int(np.random.default_rng([cfg.seed, 2]).integers(2**62)),
    )


def start_workers(cfg: RunConfig, actor_pool: RayActorPool | None = None):
    """Ray: create the run's worker actors now, before its task is built, so that their
    start-up (process, ``import torch``) overlaps with loading the data
    (:func:`~gradcode.runtime.ray.pool.start_early`); ``None`` for the local backend or
    when ``actor_pool`` has running actors for this run."""
    if cfg.backend != "ray":
        return None
    if actor_pool is not None:
        actor_pool.connect(cfg.address)
        if (cfg.workers, cfg.address) in actor_pool.actors:
            return None
    return ray_pool.start_early(cfg.workers, cfg.address)


def build_cluster(
    cfg: RunConfig, scheme, task, actor_pool: RayActorPool | None = None, delay=None, early=None
):
    """The workers: in-process (virtual clock) or Ray actors.  ``delay``: a straggler
    model object that replaces ``cfg.delay`` (from :class:`UserTask`); ``early``: actors
    from :func:`start_workers`."""
    model = cfg.delay.build() if delay is None else delay
    schedule = Schedule(model, cfg.seed, cfg.rounds, cfg.workers)
    if cfg.backend == "local":
        return LocalCluster(scheme, task, schedule, deadline=cfg.deadline)
    if cfg.batch_size is not None and not getattr(
        ray_cluster.RayCluster, "minibatch_rounds", False
    ):
        # Its actors must pass the round to Task.partition_gradients(weights, t, parts),
        # or every round would reuse round 0's minibatches.
        raise ValueError(
            "--batch-size is not supported by this Ray backend yet (its workers do not "
            "pass the round to the minibatch sampler); use --backend local"
        )
    actors = early
    if actor_pool is not None and early is None:
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


def loop_config(cfg: RunConfig, user: UserTask | None = None) -> LoopConfig:
    """How the master trains: the named optimizer and schedule of ``cfg``, or the
    user's factories."""
    optimizer = None if user is None else user.optimizer
    if optimizer is None:
        optimizer = OptimizerConfig(cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay)
    scheduler = None if user is None else user.scheduler
    if scheduler is None and cfg.lr_schedule == "cosine":
        scheduler = _cosine(cfg.rounds)
    return LoopConfig(
        rounds=cfg.rounds,
        optimizer=optimizer,
        eval_every=cfg.eval_every,
        checkpoint_every=cfg.checkpoint_every,
        on_undecodable=cfg.on_undecodable,
        scheduler=scheduler,
        clip_grad_norm=cfg.clip_grad_norm,
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
    out_dir: Path | None,
    resume: bool = False,
    progress=None,
    actor_pool: RayActorPool | None = None,
    *,
    overwrite: bool = False,
    user: UserTask | None = None,
) -> TrainResult:
    """Build and train ``cfg``; write its folder ``out_dir`` (``None``: no files).

    ``overwrite``: a fresh run into a folder that holds another run's files
    deletes them all first (``True``: the grid's and the demo's cells pass it,
    as they own their folders) or is refused (``False``, the default, as in
    ``gradcode train`` and :func:`gradcode.fit`).  ``resume``: continue the run in
    ``out_dir`` from its checkpoint, after checking the whole checkpoint and log
    (``overwrite`` does not apply).  ``user``: :func:`gradcode.fit`'s own
    objects.  ``actor_pool`` (Ray only): take running worker actors from it and
    give them back afterwards (a grid of Ray runs starts its actors once).
    A folder held by another run is refused (:class:`~gradcode.runtime.rundir.FolderInUse`).
    """
    folder = None if out_dir is None else RunFolder(out_dir)
    if cfg.tensorboard is not None:
        require()  # the optional dependency, before anything starts
    if resume and folder is None:
        raise ValueError("resume needs the run's output folder")
    if folder is not None:  # refusals that need neither the lock nor the data, first
        folder.precheck(cfg, resume, overwrite)
    with torch_threads(cfg.threads):
        scheme = build_scheme(cfg)
        early = start_workers(cfg, actor_pool)  # Ray: actors start while the task is built
        try:
            task = build_task(cfg, scheme.k, user)
            warn_clamped_batch(cfg, task)
            loop = loop_config(cfg, user)
            delay = None if user is None else user.delay
            auto = None
            if cfg.auto is not None:  # the switcher owns the cluster (Ray: switches in place)
                auto = AutoSwitch(cfg.auto, cfg.workers, cfg.stragglers, cfg.seed,
                                  lambda sch: build_cluster(cfg, sch, task, actor_pool,
                                                            delay, early),
                                  deadline=cfg.deadline)  # fmt: skip
                scheme = auto.scheme
            cluster = (
                auto.cluster if auto else build_cluster(cfg, scheme, task, actor_pool, delay, early)
            )
        except BaseException:
            if early is not None:
                early.close()
            raise
        try:
            with folder.claim() if folder is not None else contextlib.nullcontext():
                args = (cfg, scheme, cluster, task, loop, folder)
                result = _train(*args, resume=resume, overwrite=overwrite, progress=progress,
                                auto=auto)  # fmt: skip
        finally:
            if actor_pool is not None and cfg.backend == "ray":
                actor_pool.give(cfg.workers, cluster.detach(), cfg.address)
            else:
                (auto or cluster).close()
    return result


def _train(
    cfg, scheme, cluster, task, loop, folder, *, resume, overwrite, progress, auto=None
) -> TrainResult:
    """The run proper, with the folder's lock held: start (fresh or resumed), train,
    summarize, finish."""
    ck = log = None
    if folder is not None and resume:
        ck = folder.start_resume(cfg, _expected(cfg, scheme, task, loop), task.device)
    elif folder is not None:
        folder.start_fresh(cfg, overwrite)
    if folder is not None:
        log = folder.open_log(append=resume)
    try:
        if cfg.tensorboard is not None:  # a tee: rounds.jsonl and TensorBoard
            start, clock = (0, 0.0) if ck is None else (ck["round"], ck["clock"])
            log = Tee(log, TensorBoardLog(cfg.tensorboard, start, clock, config_record(cfg)))
        result = train(
            scheme,
            cluster,
            task,
            loop,
            log=log,
            checkpoint_path=None if folder is None else folder.checkpoint,
            resume=ck,
            progress=progress,
            auto=auto,
        )
    finally:
        if log is not None:
            log.close()
    summary = summarize(cfg, result.history, result.wall_clock)
    where = "" if folder is None else f" (see {folder.path / 'summary.json'})"
    if "warning" in summary:
        warnings.warn(f"gradcode: {summary['warning']}{where}", stacklevel=3)
    if folder is not None:
        folder.finish(summary, result.state_dict)
    return result


def _expected(cfg: RunConfig, scheme, task, loop: LoopConfig) -> dict:
    """What a checkpoint of this run must look like (see ``check_checkpoint``)."""
    params = task.parameters()
    of = None
    if cfg.auto is not None:  # the scheme in force is the checkpoint's, not the warm-up's

        def of(ck):
            sch = scheme_in_force(ck, cfg.workers, cfg.seed)
            return sch.init_master(), bool(getattr(sch, "stateful", False))

    return dict(
        rounds=cfg.rounds,
        params=params,
        optimizer=loop.optimizer(params),
        scheduler=loop.scheduler is not None,
        master=scheme.init_master(),
        workers=cfg.workers,
        stateful=bool(getattr(scheme, "stateful", False)),
        buffers=task.state(),
        scheme_of=of,
    )


def warn_clamped_batch(cfg: RunConfig, task) -> None:
    """Say so when ``batch_size`` exceeds partitions: those contribute every sample
    each round (the batch is clamped to the partition, not refused)."""
    sizes = task.sampler.sizes
    if cfg.batch_size is None or cfg.batch_size <= min(sizes):
        return
    small = sum(m < cfg.batch_size for m in sizes)
    warnings.warn(
        f"batch_size={cfg.batch_size} is larger than {small} of the {len(sizes)} partitions "
        f"(smallest {min(sizes)} samples): each of those contributes its whole partition "
        "every round",
        stacklevel=3,
    )


def summarize(cfg: RunConfig, history: list[dict], wall_clock: float) -> dict:
    """The ``summary.json`` of a run with per-round records ``history``: rounds done,
    clock, the last evaluation (``train_loss``, ``epoch`` and every ``test_*``
    metric), exactness, staleness, fallbacks, skipped steps, and whether
    ``cfg.target_accuracy`` was reached (``None`` without a target)."""
    evals = [h for h in history if "train_loss" in h]
    final = evals[-1] if evals else {}
    reached = None
    if cfg.target_accuracy is not None:
        reached = any(reached_target(h, cfg.target_accuracy) for h in evals)
    startup = [h["startup_seconds"] for h in history if "startup_seconds" in h]  # Ray
    return {
        "scheme": cfg.scheme,
        "rounds": history[-1]["round"] + 1 if history else 0,
        "wall_clock": wall_clock,
        **({"startup_seconds": startup[-1]} if startup else {}),
        **{k: v for k, v in final.items() if k in ("train_loss", "epoch") or k.startswith("test_")},
        "exact_fraction": _mean([h["exact"] for h in history]),
        "mean_staleness": _mean([h["staleness_mean"] for h in history]),
        "fallback_rounds": int(sum(bool(h["notes"]) for h in history)),
        **({} if reached is None else {"reached_target": reached}),
        **skipped_steps(history),
        **_switches(history),
    }


def _switches(history: list[dict]) -> dict:
    """``--scheme auto``: the schemes it ran, as ``{"round", "from", "to"}`` switches."""
    if not history or "scheme" not in history[-1]:
        return {}
    sw = [{"round": h["round"], "from": h["switch"]["from"], "to": h["switch"]["to"]}
          for h in history if "switch" in h]  # fmt: skip
    last = history[-1]
    return {"switches": sw, "final_scheme": f"{last['scheme']}/{last['s']}"}


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")  # no rounds: null in the JSON


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
