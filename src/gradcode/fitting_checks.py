"""The checks :func:`gradcode.fit` runs on every argument before round 0 and before any file.

Each function checks one argument (or one pair that must agree) and raises a
one-line ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind,
wrong value) whose message starts with the argument's name and says what is
valid; an error raised by the user's own code during a check (the model's
forward, the loss, a metric, a factory) is re-raised as such a ``ValueError``
naming the argument, with the original chained (``raise ... from``).  Nothing
here writes a file or trains a step.

* scalars: :func:`integer`, :func:`number`, :func:`choice`, :func:`flag`,
  :func:`callable_or_none` (counts are ``int``, never ``bool`` or ``2.5``);
* the model (:func:`check_model`): an ``nn.Module`` with trainable float32 or
  float64 parameters, finite, on one real device (not ``meta``);
* the data (:func:`read_data`, :func:`check_test_data`,
  :func:`check_partitioning`): pairs of tensors of equal length, finite,
  test inputs shaped like training inputs; ``label_sorted`` needs class labels;
* a dry run (:func:`dry_run`): one training and one test batch through the
  model, the loss and the metrics -- outputs one row per input, class labels
  within the model's outputs, a scalar floating loss that depends on the
  parameters, finite at the initial weights, and the batch *mean*: a summed
  loss (``reduction="sum"``) is refused, detected by comparing the loss of a
  batch with the mean of the losses of its two halves (equal for a mean, twice
  it for a sum);
* ``out`` and ``tensorboard`` (:func:`out_path`, :func:`tensorboard_folder`):
  folders that exist or can be created, writable; ``tensorboard`` also needs
  the optional ``tensorboard`` package;
* the optimizer and scheduler factories (:func:`check_optimizer`,
  :func:`check_scheduler`): a ``torch.optim.Optimizer`` over exactly the
  model's trainable parameters, stepped without a closure, with a positive
  finite learning rate; a scheduler of that optimizer stepped without
  arguments.

>>> integer("rounds", 2.5, 1)
Traceback (most recent call last):
...
TypeError: rounds must be an integer, got 2.5 (float)
>>> integer("eval_every", 0, 1)
Traceback (most recent call last):
...
ValueError: eval_every must be >= 1, got 0
"""

from __future__ import annotations

import hashlib
import math
import numbers
import warnings
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn

from .datasets import PARTITIONINGS
from .runtime.config import MAX_LR
from .runtime.resume import requires_closure
from .runtime.rundir import check_out_folder
from .runtime.tensorboard import require as require_tensorboard

#: Rows of the dry-run batches (even: the summed-loss check splits it in halves).
DRY_ROWS = 8
#: Relative tolerance of the summed-loss check.
SUM_RTOL = 1e-3


# ------------------------------------------------------------------ scalars


def integer(name: str, value, lo: int, hi: int | None = None) -> int:
    """``value`` as an ``int`` in ``lo..hi`` (numpy integers accepted; ``bool`` and floats not)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        top = "2**63 - 1" if hi == 2**63 - 1 else hi
        want = f">= {lo}" if hi is None else f"in {lo}..{top}"
        raise ValueError(f"{name} must be {want}, got {value}")
    return value


def number(name: str, value, *, positive: bool = True) -> float:
    """``value`` as a finite ``float`` (``> 0`` when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(
            f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}"
        )
    return value


def choice(name: str, value, valid) -> str:
    """``value`` if it is one of the strings ``valid``."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, valid))}, got {value!r}")
    return value


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def callable_or_none(name: str, value, what: str):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be {what} or None, got {type(value).__name__}")
    return value


def mapping_of(name: str, value, what: str) -> dict:
    """``value`` (a mapping with string keys, or ``None``) as a dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise TypeError(f"{name} must be a mapping of names to {what}, got {type(value).__name__}")
    return dict(value)


# ------------------------------------------------------------------ model


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters :func:`gradcode.fit` trains (``requires_grad=True``)."""
    return [p for p in model.parameters() if p.requires_grad]


def check_model(model) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of a trainable ``model``.

    >>> check_model(nn.Linear(2, 1).to("meta"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model is on the 'meta' device (shapes only, no data); build or load it on ...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    train = trainable(model)
    if not train:
        raise ValueError("model has no trainable parameters (all have requires_grad=False)")
    tensors = params + list(model.buffers())
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        raise ValueError(f"model's parameters and buffers are on several devices: {devices}")
    device = devices.pop()
    if device.type == "meta":
        raise ValueError(
            "model is on the 'meta' device (shapes only, no data); "
            "build or load it on 'cpu' or 'cuda'"
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"model must be on 'cpu' or 'cuda', got {device}")
    dtypes = {p.dtype for p in train}
    if len(dtypes) > 1 or not dtypes <= {torch.float32, torch.float64}:
        got = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
        raise ValueError(f"model's trainable parameters must all be float32 or float64, got {got}")
    if not all(bool(torch.isfinite(p).all()) for p in train):
        raise ValueError("model has non-finite (NaN or Inf) initial weights")
    return device, dtypes.pop()


# ------------------------------------------------------------------ data


def read_data(
    name: str, data, device, dtype, *, num_workers: int = 0, pin_memory: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)`` on ``device`` (inputs and real targets in ``dtype``, integer targets
    as ``int64``, PyTorch's class-index type) from a pair
    of tensors or arrays, a ``TensorDataset`` or any map-style ``Dataset`` of
    ``(input, target)`` items (read once through a ``DataLoader``)."""
    if isinstance(data, tuple | list) and len(data) == 2:
        try:
            X, y = (torch.as_tensor(np.asarray(a) if isinstance(a, list) else a) for a in data)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name}: (X, y) must be tensors or numeric arrays ({exc})") from None
    elif isinstance(data, torch.utils.data.TensorDataset) and len(data.tensors) == 2:
        X, y = data.tensors
    elif isinstance(data, torch.utils.data.Dataset):
        X, y = _read_dataset(name, data, num_workers, pin_memory)
    else:
        raise TypeError(
            f"{name} must be a torch Dataset of (input, target) items or a pair of "
            f"tensors (X, y), got {type(data).__name__}"
        )
    for what, t in (("inputs", X), ("targets", y)):
        if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or _is_int(t)):
            raise TypeError(f"{name}: {what} must be real numbers, got {t.dtype}")
        if t.ndim == 0:
            raise ValueError(f"{name}: {what} must have one row per sample, got a scalar")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: {what} contain NaN or Inf")
    if len(X) != len(y):
        raise ValueError(f"{name}: inputs and targets differ in length: {len(X)} vs {len(y)}")
    if len(X) == 0:
        raise ValueError(f"{name} is empty")
    X = X.detach().to(device=device, dtype=dtype)
    y = y.detach()
    y = y.to(device=device, dtype=dtype if y.is_floating_point() else torch.int64)
    return X, y


def _is_int(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


def _read_dataset(name, data, num_workers, pin_memory):
    try:
        n = len(data)
    except TypeError:
        raise TypeError(f"{name} must be a map-style Dataset (with __len__)") from None
    if not isinstance(n, int) or n <= 0:
        raise ValueError(f"{name} is empty")
    xs, ys = [], []
    try:
        loader = torch.utils.data.DataLoader(
            data, batch_size=1024, shuffle=False, num_workers=num_workers, pin_memory=pin_memory
        )
        for batch in loader:
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise TypeError("its items must be (input, target) pairs")
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        return torch.cat(xs), torch.cat(ys)
    except Exception as exc:  # the user's Dataset, its items or their collation
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{name}: reading its items failed: {why}") from exc


def check_test_data(X, y, Xt, yt) -> None:
    """Test data shaped like the training data (features, target shape and kind)."""
    if Xt.shape[1:] != X.shape[1:]:
        raise ValueError(
            f"test_data: inputs have shape {tuple(Xt.shape[1:])} per sample, "
            f"train_data's {tuple(X.shape[1:])}"
        )
    if yt.shape[1:] != y.shape[1:] or yt.is_floating_point() != y.is_floating_point():
        raise ValueError(
            f"test_data: targets are {yt.dtype} {tuple(yt.shape[1:])} per sample, "
            f"train_data's {y.dtype} {tuple(y.shape[1:])}"
        )


def check_partitioning(partitioning: str, y: torch.Tensor) -> None:
    """``label_sorted`` sorts by class label: targets must be 1-D integer labels."""
    choice("partitioning", partitioning, tuple(PARTITIONINGS))
    if partitioning == "label_sorted" and (y.ndim != 1 or y.is_floating_point()):
        kind = "one-hot or multi-output" if y.ndim != 1 else "real-valued (regression)"
        raise ValueError(
            f"partitioning='label_sorted' needs integer class labels; train_data's "
            f"targets are {kind} ({y.dtype}, shape {tuple(y.shape)}): use 'iid'"
        )


def data_digest(X: torch.Tensor, y: torch.Tensor) -> str:
    """A short digest of the training data (``config.json``'s ``dataset``; a resume
    with other data is refused)."""
    h = hashlib.blake2b(digest_size=8)
    for t in (X, y):
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ dry run


def _user(name: str, fn: Callable, *args):
    """``fn(*args)``; an exception from the user's code becomes a ValueError naming ``name``."""
    try:
        return fn(*args)
    except Exception as exc:
        why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        raise ValueError(f"{name} failed: {type(exc).__name__}: {why}") from exc


def dry_run(model: nn.Module, loss_fn, metrics: dict, X, y, Xt=None, yt=None) -> None:
    """One training and one test batch through the model, the loss and the metrics
    (in eval mode, so no running statistics change; the mode is restored)."""
    was_training = model.training
    model.eval()
    try:
        out = _forward(model, X, "train_data")
        _check_labels("train_data", out, y)
        loss = _loss(loss_fn, out, y[: len(out)], "train_data")
        _check_loss(loss, trainable(model))
        _check_mean(model, loss_fn, X[: len(out)], y[: len(out)], loss)
        if Xt is None:
            return
        out_t = _forward(model, Xt, "test_data")
        if out_t.shape[1:] != out.shape[1:]:
            raise ValueError(
                f"test_data: the model's outputs have shape {tuple(out_t.shape[1:])}"
                f" per sample, on train_data {tuple(out.shape[1:])}"
            )
        _check_labels("test_data", out_t, yt)
        with torch.no_grad():
            _loss(loss_fn, out_t.detach(), yt[: len(out_t)], "test_data")
            for key, fn in metrics.items():
                value = _user(f"metrics[{key!r}](outputs, targets)", fn, out_t, yt[: len(out_t)])
                _user(f"metrics[{key!r}]: float() of its result", float, value)
    finally:
        model.train(was_training)


def _forward(model, X, name):
    rows = min(len(X), DRY_ROWS)
    with torch.enable_grad():
        out = _user(f"model(x) on a {name} batch of shape {tuple(X[:rows].shape)}", model, X[:rows])
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model(x) must return a tensor, got {type(out).__name__}")
    if out.ndim == 0 or out.shape[0] != rows or not out.is_floating_point():
        raise ValueError(
            f"model(x) must return one floating row per input: {rows} inputs gave "
            f"{out.dtype} {tuple(out.shape)}"
        )
    return out


def _check_labels(name, out, y) -> None:
    """Integer labels against a model with ``C >= 2`` outputs (a classifier): each in
    ``0..C-1``.  (One output and integer targets: a regression; the loss decides.)"""
    if y.ndim != 1 or y.is_floating_point() or out.ndim != 2 or out.shape[1] < 2:
        return
    c = out.shape[1]
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= c:
        raise ValueError(
            f"{name}: class labels must be in 0..{c - 1} for a model with {c} "
            f"outputs, got labels {lo}..{hi}"
        )


def _loss(loss_fn, out, y, name):
    return _user(f"loss_fn(model(x), y) on a {name} batch", loss_fn, out, y)


def _check_loss(loss, params) -> None:
    if not isinstance(loss, torch.Tensor):
        raise TypeError(
            f"loss_fn must return a torch tensor (the batch mean), got "
            f"{type(loss).__name__}: compute it with torch ops on the outputs"
        )
    if loss.ndim != 0:
        raise ValueError(
            f"loss_fn must return a scalar (the batch mean), got shape "
            f"{tuple(loss.shape)}: reduction='none'?"
        )
    if not loss.is_floating_point():
        raise ValueError(f"loss_fn must return a floating-point scalar, got {loss.dtype}")
    if not loss.requires_grad:
        raise ValueError(
            "loss_fn's result does not depend on the model's parameters "
            "(detached, or computed outside torch?)"
        )
    if not bool(torch.isfinite(loss)):
        raise ValueError(f"loss_fn is {loss.item()} on a training batch at the initial weights")
    _user("loss_fn: its gradient", lambda: torch.autograd.grad(loss, params, allow_unused=True))


def _check_mean(model, loss_fn, X, y, loss) -> None:
    """Refuse a summed loss: the loss of a batch is the mean of its halves' losses for
    the batch mean, twice that for the sum."""
    half = len(X) // 2
    if half < 1:
        return

    def value(rows: slice) -> float:
        out = _user("model(x) on a train_data batch", model, X[rows])
        return float(_loss(loss_fn, out, y[rows], "train_data"))

    with torch.no_grad():
        a, b = value(slice(0, half)), value(slice(half, 2 * half))
        whole = value(slice(0, 2 * half))
    mean = (a + b) / 2
    tol = SUM_RTOL * max(abs(whole), abs(mean), 1e-12)
    if abs(mean) > 1e-12 and abs(whole - 2 * mean) <= tol and abs(whole - mean) > tol:
        raise ValueError(
            "loss_fn returns the batch sum (reduction='sum'?): gradient codes "
            "need the batch mean (PyTorch's default, reduction='mean')"
        )


# ------------------------------------------------------------------ optimizer


def check_optimizer(factory, model: nn.Module) -> torch.optim.Optimizer | None:
    """Build ``factory(params)`` once over the model's trainable parameters and check it."""
    if factory is None:
        return None
    if not callable(factory):
        raise TypeError(
            f"optimizer must be a callable params -> torch.optim.Optimizer (e.g. "
            f"lambda p: torch.optim.SGD(p, lr=0.1)), got {type(factory).__name__}"
        )
    params = trainable(model)
    opt = _user("optimizer(params)", factory, params)
    if not isinstance(opt, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer(params) must return a torch.optim.Optimizer, got {type(opt).__name__}"
        )
    owned = {id(p) for g in opt.param_groups for p in g["params"]}
    mine = {id(p) for p in params}
    if owned - mine:
        raise ValueError(
            f"optimizer steps {len(owned - mine)} tensors that are not the model's "
            "trainable parameters (another model's?): build it over the params "
            "it is given"
        )
    if mine - owned:
        raise ValueError(
            f"optimizer leaves {len(mine - owned)} of the model's {len(mine)} "
            "trainable parameters out: build it over every param it is given"
        )
    if requires_closure(opt):
        raise ValueError(
            f"optimizer: {type(opt).__name__}.step needs a closure (L-BFGS); the "
            "master steps once per round without one"
        )
    for group in opt.param_groups:
        hyperparameters(group)
    return opt


def hyperparameters(group: dict) -> tuple[float, float, float]:
    """``(lr, momentum, weight_decay)`` of an optimizer's parameter group, checked
    (``momentum`` 0 and ``weight_decay`` 0 where the optimizer has none)."""
    values = []
    for key, default in (("lr", float("nan")), ("momentum", 0.0), ("weight_decay", 0.0)):
        values.append(_user(f"optimizer: float() of its {key}", float, group.get(key, default)))
    lr, mom, wd = values
    if not (math.isfinite(lr) and 0 < lr <= MAX_LR):
        raise ValueError(f"optimizer: lr must be a finite number in (0, {MAX_LR:g}], got {lr!r}")
    if not (math.isfinite(mom) and 0 <= mom < 1):
        raise ValueError(f"optimizer: momentum must be in [0, 1), got {mom!r}")
    if not (math.isfinite(wd) and wd >= 0):
        raise ValueError(f"optimizer: weight_decay must be finite and >= 0, got {wd!r}")
    return lr, mom, wd


def check_scheduler(factory, opt: torch.optim.Optimizer):
    """Build ``factory(opt)`` on the dry optimizer and step it once (no arguments)."""
    if factory is None:
        return None
    if not callable(factory):
        raise TypeError(
            f"scheduler must be a callable optimizer -> LR scheduler, got {type(factory).__name__}"
        )
    sched = _user("scheduler(optimizer)", factory, opt)
    if not all(
        callable(getattr(sched, a, None)) for a in ("step", "state_dict", "load_state_dict")
    ):
        raise TypeError(
            f"scheduler(optimizer) must return an LR scheduler (step, state_dict, "
            f"load_state_dict), got {type(sched).__name__}"
        )
    if getattr(sched, "optimizer", opt) is not opt:
        raise ValueError("scheduler must schedule the optimizer it is given")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "step() before optimizer.step()": a dry optimizer
        try:
            sched.step()
        except TypeError as exc:
            raise ValueError(
                f"scheduler: step() must take no arguments (it is stepped once per "
                f"round; ReduceLROnPlateau is not supported): {exc}"
            ) from exc
    return sched


def out_path(out, what: str = "out"):
    """``out`` (``None``, ``str`` or path-like) checked to be usable as a folder."""
    return None if out is None else check_out_folder(out, what)


def tensorboard_folder(path) -> str | None:
    """``tensorboard``: ``None``, or a usable folder with the optional ``tensorboard``
    package installed (:func:`gradcode.runtime.tensorboard.require`)."""
    if path is None:
        return None
    folder = check_out_folder(path, "tensorboard")
    require_tensorboard("tensorboard=DIR")
    return str(folder)
