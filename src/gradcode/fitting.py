"""``gradcode.fit``: train your own ``nn.Module`` on your own data with a gradient code.

::

    import gradcode, torch
    result = gradcode.fit(model, train_data, scheme="pgc", workers=24, stragglers=3,
                          delay="shifted-exp:a=1,mu=1",
                          loss_fn=torch.nn.functional.cross_entropy,
                          optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
                          batch_size=64, rounds=500, test_data=test_data,
                          metrics={"accuracy": gradcode.accuracy},
                          backend="local", seed=0, out="runs/x")
    model.load_state_dict(result.state_dict)

What happens:

* ``train_data`` / ``test_data``: any map-style ``torch.utils.data.Dataset``
  whose items are ``(input, target)``, a ``TensorDataset``, or a pair of
  tensors ``(X, y)``.  Datasets are read once through a ``DataLoader``
  (``num_workers``, ``pin_memory`` as you would set them) into tensors on
  the model's device; each round then indexes those tensors (no per-sample
  Python), so the data must fit in memory and random transforms are applied
  once, not per epoch.
* The training indices are split into ``k`` partitions (``partitioning``:
  ``"iid"`` or ``"label_sorted"``) and each round each partition contributes
  a seeded minibatch of ``batch_size`` samples (``None``: the whole
  partition); see :mod:`gradcode.task`.
* ``loss_fn(output, target)`` returns the batch *mean* (PyTorch's default);
  any loss works, regression too.  ``metrics`` maps names to
  ``fn(outputs, targets) -> float`` evaluated on ``test_data``.
* ``optimizer(params)`` builds any ``torch.optim`` optimizer over exactly the
  parameters it is given (the model's trainable ones; ``None``: SGD at lr
  0.1); ``scheduler(optimizer)`` an optional LR scheduler (stepped once per
  round); ``clip_grad_norm`` clips the decoded gradient.  ``stale_correction``
  (``"none"``, ``"auto"``, ``"predict"``, ``"momentum"``, ``"dc"``, ``"lr"``)
  makes a stale-gradient scheme (PGC family, SR-SGC) train at the optimizer
  settings you use for DGD; see :mod:`gradcode.runtime.stale` and docs/stale.md.
* The model's *trainable* parameters (``requires_grad=True``) are trained in
  place; frozen ones are never sent, decoded or stepped.  ``result.state_dict``
  holds the final weights.
* With ``out`` the run writes the same files as ``gradcode train``, with the
  same fields (one composition root, :func:`gradcode.runtime.run.run`):
  ``config.json``, ``rounds.jsonl``, ``summary.json`` and ``model.pt`` (a
  ``state_dict``, ``torch.load(..., weights_only=True)``), plus
  ``checkpoint.pt`` every ``checkpoint_every`` rounds.  The folder is locked
  for the run; one that holds another run is refused unless
  ``overwrite=True`` (which deletes every file of the old run first) or
  ``resume=True`` (continue it from its checkpoint, checked whole first).
* Every argument is checked before round 0 and before any file is written
  (:mod:`gradcode.fitting_checks`): a ``TypeError`` or ``ValueError`` whose
  message names the argument, including a dry run of one training and one
  test batch through the model, the loss and the metrics (a summed loss is
  refused).  A ``batch_size`` larger than a partition is clamped to it, with a
  warning.  A loss, gradient or weights that become non-finite stop training
  with :class:`~gradcode.runtime.loop.TrainingStopped` (and a checkpoint of the
  last finite weights with ``out``), as ``gradcode train`` does.
* ``tensorboard="DIR"`` also writes the per-round scalars (losses, accuracy,
  round time, exactness, staleness) as TensorBoard events into ``DIR``
  (:mod:`gradcode.runtime.tensorboard`; watch with ``tensorboard --logdir
  DIR``); it needs the optional ``tensorboard`` package.
* ``backend="local"`` computes in this process on a virtual clock
  (deterministic for a seed); ``backend="ray"`` runs real actors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import fitting_checks as chk
from .codes import REGISTRY
from .datasets import PARTITIONINGS
from .runtime.auto import AutoConfig
from .runtime.config import MAX_WORKERS, DelaySpec, RunConfig
from .runtime.loop import TrainResult
from .runtime.ray.pool import RayActorPool
from .runtime.run import UserTask, build_scheme, run
from .stragglers import DelayModel

#: The optimizer of ``optimizer=None``: plain SGD at this learning rate.
DEFAULT_LR = 0.1


def fit(
    model: nn.Module,
    train_data,
    *,
    scheme: str = "pgc",
    workers: int = 12,
    stragglers: int = 2,
    delay: str | DelaySpec | DelayModel = "shifted-exp:a=1,mu=1",
    loss_fn: Callable = F.cross_entropy,
    optimizer: Callable | None = None,
    batch_size: int | None = None,
    rounds: int = 100,
    test_data=None,
    metrics: Mapping[str, Callable] | None = None,
    backend: str = "local",
    seed: int = 0,
    out: str | Path | None = None,
    scheduler: Callable | None = None,
    clip_grad_norm: float | None = None,
    eval_every: int = 10,
    deadline: float | None = None,
    partitioning: str = "iid",
    checkpoint_every: int = 0,
    threads: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
    scheme_options: Mapping[str, object] | None = None,
    progress: Callable[[dict], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    stale_correction: str = "none",
    actor_pool: RayActorPool | None = None,
    tensorboard: str | Path | None = None,
    auto: AutoConfig | str | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_data`` with ``scheme``; see the module docstring.

    ``actor_pool`` (``backend="ray"``): a :class:`~gradcode.runtime.ray.RayActorPool`
    shared by several calls, which then start their worker actors once (each call
    takes the pool's actors for its ``workers`` and gives them back; ``pool.close()``
    ends them and the Ray instance the pool started).

    ``scheme="auto"`` measures the workers, lets the advisor choose the scheme and
    ``s <= stragglers`` and switches when the cluster changes (local backend;
    :mod:`gradcode.runtime.auto`); ``auto`` tunes it (an
    :class:`~gradcode.runtime.auto.AutoConfig` or ``"warmup=5,every=10"``).

    Returns a :class:`~gradcode.runtime.loop.TrainResult` (``state_dict``,
    ``history``, ``weights``, ``wall_clock``, ``final()``).
    """
    args = dict(locals())
    pool = args.pop("actor_pool")
    if pool is not None and not isinstance(pool, RayActorPool):
        raise ValueError(f"actor_pool must be a gradcode RayActorPool, got {type(pool).__name__}")
    if pool is not None and backend != "ray":
        raise ValueError("actor_pool needs backend='ray'")
    cfg, user = prepare(**args)
    return run(
        cfg,
        chk.out_path(out),
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        user=user,
        actor_pool=pool,
    )


def prepare(model, train_data, **kw) -> tuple[RunConfig, UserTask]:
    """Check every argument of :func:`fit` (same names) and translate them into the
    run's :class:`RunConfig` and the :class:`UserTask` of the user's objects.

    Cheap checks come first (types and ranges of the scalars, the scheme, the
    output folder), then the model, the data and the dry run.  Nothing is written.
    """
    cfg = _scalars(kw)
    chk.out_path(kw["out"])
    if kw["resume"] and kw["out"] is None:
        raise ValueError("resume=True needs out, the folder of the run to continue")
    device, dtype = chk.check_model(model)
    workers = chk.integer("num_workers", kw["num_workers"], 0)
    read = dict(device=device, dtype=dtype, num_workers=workers, pin_memory=kw["pin_memory"])
    X, y = chk.read_data("train_data", train_data, **read)
    Xt = yt = None
    if kw["test_data"] is not None:
        Xt, yt = chk.read_data("test_data", kw["test_data"], **read)
        chk.check_test_data(X, y, Xt, yt)
    chk.check_partitioning(kw["partitioning"], y)
    loss_fn = kw["loss_fn"]
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a callable (outputs, targets) -> mean loss, got "
            f"{type(loss_fn).__name__}"
        )
    metrics = chk.mapping_of("metrics", kw["metrics"], "callables fn(outputs, targets)")
    for key, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"metrics[{key!r}] must be a callable fn(outputs, targets) -> float")
    chk.dry_run(model, loss_fn, metrics, X, y, Xt, yt)
    opt = chk.check_optimizer(kw["optimizer"], model)
    named = opt is None
    if named:
        opt = torch.optim.SGD(chk.trainable(model), lr=DEFAULT_LR)
    sched = chk.check_scheduler(kw["scheduler"], opt)
    lr, momentum, weight_decay = chk.hyperparameters(opt.param_groups[0])
    cfg = replace(
        cfg,
        dataset=f"user:{chk.data_digest(X, y)}",
        model=type(model).__name__,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        optimizer="sgd" if named else f"user:{type(opt).__name__}",
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        lr_schedule="constant" if sched is None else f"user:{type(sched).__name__}",
    )
    delay_model = kw["delay"] if isinstance(kw["delay"], DelayModel) else None
    user = UserTask(
        model, X, y, Xt, yt, loss_fn, metrics, kw["optimizer"], kw["scheduler"], delay_model
    )
    return cfg, user


def _scalars(kw) -> RunConfig:
    """The plain values of :func:`fit` as a first :class:`RunConfig` (model, data and
    optimizer fields filled in later): types, ranges and the scheme checked."""
    opt = lambda name, f, *a: None if kw[name] is None else f(name, kw[name], *a)  # noqa: E731
    for name in ("pin_memory", "overwrite", "resume"):
        chk.flag(name, kw[name])
    for name, what in (
        ("optimizer", "a callable params -> torch.optim.Optimizer"),
        ("scheduler", "a callable optimizer -> LR scheduler"),
        ("progress", "a callable taking each round's record"),
    ):
        chk.callable_or_none(name, kw[name], what)
    if kw["resume"] and kw["overwrite"]:
        raise ValueError(
            "resume=True continues the run in out, overwrite=True deletes it: pick one"
        )
    options = chk.mapping_of("scheme_options", kw["scheme_options"], "values")
    cfg = RunConfig(
        scheme=chk.choice("scheme", kw["scheme"], (*REGISTRY, "auto")),
        workers=chk.integer("workers", kw["workers"], 1, MAX_WORKERS),
        stragglers=chk.integer("stragglers", kw["stragglers"], 0, MAX_WORKERS),
        delay=_delay(kw["delay"]),
        rounds=chk.integer("rounds", kw["rounds"], 1),
        batch_size=opt("batch_size", chk.integer, 1),
        seed=chk.integer("seed", kw["seed"], 0, 2**63 - 1),
        backend=chk.choice("backend", kw["backend"], ("local", "ray")),
        partitioning=chk.choice("partitioning", kw["partitioning"], tuple(PARTITIONINGS)),
        eval_every=chk.integer("eval_every", kw["eval_every"], 1),
        checkpoint_every=chk.integer("checkpoint_every", kw["checkpoint_every"], 0),
        threads=chk.integer("threads", kw["threads"], 1, 1024),
        deadline=opt("deadline", chk.number),
        clip_grad_norm=opt("clip_grad_norm", chk.number),
        scheme_options=tuple(options.items()),
        stale_correction=_stale_correction(kw["stale_correction"]),
        tensorboard=chk.tensorboard_folder(kw["tensorboard"]),
        auto=_auto(kw["auto"]),
    )
    try:
        build_scheme(cfg)
    except ValueError:
        raise
    except Exception as exc:  # a scheme option of the wrong kind, deep in its constructor
        raise ValueError(f"scheme_options {options} for scheme {cfg.scheme!r}: {exc}") from exc
    return cfg


def _stale_correction(spec) -> str:
    """``stale_correction`` must be a string (checked against the scheme by RunConfig)."""
    if not isinstance(spec, str):
        raise TypeError(
            "stale_correction must be a string such as 'none', 'auto' or 'predict', got "
            f"{spec!r} ({type(spec).__name__})"
        )
    return spec


def _auto(auto):
    """``auto`` must be ``None``, an :class:`AutoConfig` or its spec string."""
    if auto is not None and not isinstance(auto, AutoConfig | str):
        raise TypeError(
            f"auto must be an AutoConfig or a spec such as 'warmup=5,every=10', got {auto!r} "
            f"({type(auto).__name__})"
        )
    return auto


def _delay(delay) -> DelaySpec:
    """The :class:`DelaySpec` of ``delay`` (a spec string, a ``DelaySpec``, or a
    ``DelayModel`` object, recorded by its ``repr``), checked by building it."""
    if isinstance(delay, DelayModel):
        return DelaySpec(base=f"user:{delay!r}")
    if isinstance(delay, str):
        delay = DelaySpec(base=delay)
    if not isinstance(delay, DelaySpec):
        raise TypeError(
            "delay must be a spec such as 'shifted-exp:a=1,mu=1', a DelaySpec or a "
            f"DelayModel, got {type(delay).__name__}"
        )
    try:
        delay.build()
    except ValueError as exc:
        raise ValueError(f"delay: {exc}") from None
    except Exception as exc:  # a DelaySpec built with non-string fields
        raise TypeError(f"delay: {type(exc).__name__}: {exc}") from None
    return delay
