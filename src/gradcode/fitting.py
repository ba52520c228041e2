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
* ``optimizer(params)`` builds any ``torch.optim`` optimizer over the model's
  own parameters; ``scheduler(optimizer)`` an optional LR scheduler (stepped
  once per round); ``clip_grad_norm`` clips the decoded gradient.
* The model is trained in place and ``result.state_dict`` holds the final
  weights; with ``out`` the run also writes ``config.json``,
  ``rounds.jsonl``, ``summary.json`` and ``model.pt`` (a ``state_dict``,
  ``torch.load(..., weights_only=True)``) there, plus ``checkpoint.pt`` every
  ``checkpoint_every`` rounds.
* ``backend="local"`` computes in this process on a virtual clock
  (deterministic for a seed); ``backend="ray"`` runs real actors.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .codes import make_scheme
from .data import PARTITIONINGS, partition
from .runtime.checkpoint import atomic_torch_save, atomic_write_text, dumps_strict, strict
from .runtime.cluster import LocalCluster, Schedule
from .runtime.config import DelaySpec
from .runtime.loop import JsonLinesLog, LoopConfig, TrainResult, train
from .runtime.run import torch_threads
from .runtime.stale import check as check_stale_correction
from .stragglers import DelayModel
from .task import Task, TensorData


def as_tensors(
    data, device: torch.device, *, num_workers: int = 0, pin_memory: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` tensors from a pair of tensors, a ``TensorDataset`` or any
    map-style ``Dataset`` of ``(input, target)`` items (read through a ``DataLoader``)."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = (torch.as_tensor(a) for a in data)
    elif isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) == 2:
        X, y = data.tensors
    elif isinstance(data, torch.utils.data.Dataset):
        try:
            n = len(data)
        except TypeError:
            raise ValueError("data must be a map-style Dataset (with __len__)") from None
        if n == 0:
            raise ValueError("the dataset is empty")
        loader = torch.utils.data.DataLoader(
            data, batch_size=1024, shuffle=False, num_workers=num_workers, pin_memory=pin_memory
        )
        xs, ys = [], []
        for batch in loader:
            if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise ValueError("dataset items must be (input, target) pairs")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        X, y = torch.cat(xs), torch.cat(ys)
    else:
        raise ValueError(
            f"data must be a torch Dataset or a pair of tensors (X, y), got {type(data).__name__}"
        )
    if len(X) != len(y):
        raise ValueError(f"inputs and targets differ in length: {len(X)} vs {len(y)}")
    return X.to(device), y.to(device)


def _delay(delay) -> DelayModel:
    if isinstance(delay, DelayModel):
        return delay
    if isinstance(delay, DelaySpec):
        return delay.build()
    return DelaySpec(base=str(delay)).build()


def fit(
    model: nn.Module,
    train_data,
    *,
    scheme: str = "pgc",
    workers: int = 12,
    stragglers: int = 2,
    delay: str | DelayModel = "shifted-exp:a=1,mu=1",
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
    stale_correction: str = "none",
) -> TrainResult:
    """Train ``model`` on ``train_data`` with ``scheme``; see the module docstring.

    Returns a :class:`~gradcode.runtime.loop.TrainResult` (``state_dict``,
    ``history``, ``weights``, ``wall_clock``, ``final()``).
    """
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    if partitioning not in PARTITIONINGS:
        raise ValueError(f"unknown partitioning {partitioning!r}; choose {list(PARTITIONINGS)}")
    s = 0 if scheme == "dgd" else stragglers
    check_stale_correction(stale_correction, scheme)  # none, auto or a method (docs/stale.md)
    rng = np.random.default_rng(seed)
    code = make_scheme(scheme, workers, s, rng=rng, **dict(scheme_options or {}))
    params = list(model.parameters())
    if not params:
        raise ValueError("the model has no parameters to train")
    device = params[0].device
    with torch_threads(threads):
        X, y = as_tensors(train_data, device, num_workers=num_workers, pin_memory=pin_memory)
        Xt = yt = None
        if test_data is not None:
            Xt, yt = as_tensors(test_data, device, num_workers=num_workers, pin_memory=pin_memory)
        labels = y.cpu().numpy() if y.ndim == 1 else np.zeros(len(y))
        parts = partition(labels, code.k, partitioning, np.random.default_rng([seed, 1]))
        task = Task(
            TensorData("user", X, y, Xt, yt),
            model,
            parts,
            model_name=type(model).__name__,
            partitioning=partitioning,
            device=device,
            loss_fn=loss_fn,
            metrics=metrics or {},
            batch_size=batch_size,
            seed=int(np.random.default_rng([seed, 2]).integers(2**62)),
        )
        schedule = Schedule(_delay(delay), seed, rounds, workers)
        if backend == "local":
            cluster = LocalCluster(code, task, schedule, deadline=deadline)
        else:
            cluster = _ray_cluster(code, task, schedule, deadline)
        cfg = LoopConfig(
            rounds=rounds,
            optimizer=optimizer or (lambda p: torch.optim.SGD(p, lr=0.1)),
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            scheduler=scheduler,
            clip_grad_norm=clip_grad_norm,
            stale_correction=stale_correction,
        )
        out_dir = None if out is None else Path(out)
        log = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            record = dict(
                scheme=scheme, workers=workers, stragglers=s, delay=str(delay), rounds=rounds,
                batch_size=batch_size, seed=seed, backend=backend, partitioning=partitioning,
                model=type(model).__name__, num_params=task.num_params, n_train=len(y),
                loss_fn=getattr(loss_fn, "__name__", repr(loss_fn)),
                stale_correction=stale_correction,
            )  # fmt: skip
            atomic_write_text(out_dir / "config.json", json.dumps(record, indent=2, default=str))
            log = JsonLinesLog(out_dir / "rounds.jsonl")
        try:
            result = train(
                code,
                cluster,
                task,
                cfg,
                log=log,
                checkpoint_path=None if out_dir is None else out_dir / "checkpoint.pt",
                progress=progress,
            )
        finally:
            if log is not None:
                log.close()
            cluster.close()
    if out_dir is not None:
        summary = {"scheme": scheme, "rounds": result.rounds, "wall_clock": result.wall_clock}
        summary.update(
            {
                k: v
                for k, v in result.final().items()
                if k in ("train_loss", "epoch") or k.startswith("test_")
            }
        )
        atomic_write_text(out_dir / "summary.json", dumps_strict(strict(summary), indent=2))
        atomic_torch_save(result.state_dict, out_dir / "model.pt")
    return result


def _ray_cluster(code, task, schedule, deadline):
    """A Ray cluster whose actors run ``task`` (the user's model and data).

    Each actor holds only its worker's partitions and calls
    ``task.partition_gradients(weights, t, parts)`` with the round ``t``, so
    minibatches match the local backend's.
    """
    from .runtime.ray_cluster import RayCluster

    return RayCluster(code, task, schedule, deadline=deadline)
