"""Resuming a run: what may change, and a whole-checkpoint check before any file is touched.

A run folder is continued only when three things agree with the run being
resumed, all checked *before* a byte of the folder changes (a refused resume
leaves it as it was):

* ``config.json`` and the new :class:`~gradcode.runtime.config.RunConfig`
  (:func:`resume_mismatch`): only :data:`RESUMABLE_CHANGES` may differ, and
  ``rounds`` only upward;
* ``checkpoint.pt`` (:func:`check_checkpoint`): every part present (weights,
  round, master and worker state, optimizer, scheduler, clock, history); the
  round in ``0..rounds``; the weights a flat, finite vector of the model's
  size and floating dtype; the optimizer's hyperparameters equal to the
  configuration's (a checkpoint does not smuggle in ``lr=1e9``) and its state
  shaped like the parameters; the master state of the scheme's type;
* ``rounds.jsonl`` (:func:`check_log`): it holds every round the checkpoint
  has done, and they are the checkpoint's rounds (same clock), so a log cut,
  deleted or taken from another run is an error saying how to recover.

Every function here is pure: it reads values and raises a one-line
:class:`ValueError`; :class:`~gradcode.runtime.rundir.RunFolder` reads the
files and touches them only after these checks pass.

>>> old = config_record(RunConfig(rounds=10))
>>> resume_mismatch(old, RunConfig(rounds=20, eval_every=5))
[]
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import asdict
from pathlib import Path

import torch

from .config import RunConfig

#: Fields a resumed run may change: they do not alter the trained trajectory.
#: ``rounds`` may only grow (checked separately).
RESUMABLE_CHANGES = frozenset({"rounds", "eval_every", "checkpoint_every", "address",
                               "tensorboard"})  # fmt: skip

#: What every checkpoint written by :func:`gradcode.runtime.loop.train` holds.
CHECKPOINT_PARTS = ("weights", "round", "master", "optimizer", "scheduler", "oracle", "cluster",
                    "clock", "history")  # fmt: skip

#: How to recover when the folder cannot be resumed.
RECOVER = "start the run again with --overwrite (overwrite=True)"


# ------------------------------------------------------------------ configuration


def config_record(cfg: RunConfig) -> dict:
    """``cfg`` as the JSON-ready dict written to ``config.json``."""
    return json.loads(json.dumps(asdict(cfg), default=str))


def resume_mismatch(saved: dict, cfg: RunConfig) -> list[str]:
    """Fields in which ``cfg`` differs from the ``saved`` ``config.json`` of a run,
    as ``"name: old -> new"`` strings; empty when ``cfg`` may resume that run.

    Pure: compares two values, touches no file.  Only :data:`RESUMABLE_CHANGES`
    may differ, and ``rounds`` only upward.  A field missing from ``saved``
    (added to :class:`RunConfig` since) counts as its default.

    >>> old = config_record(RunConfig(rounds=10))
    >>> resume_mismatch(old, RunConfig(rounds=5, lr=0.1, workers=6))
    ['workers: 12 -> 6', 'rounds: 10 -> 5 (may only grow)', 'lr: 0.5 -> 0.1']
    """
    new, default = config_record(cfg), config_record(RunConfig())
    flat_new, flat_old, flat_default = _flat(new), _flat(saved), _flat(default)
    out = []
    for key, value in flat_new.items():
        old = flat_old.get(key, flat_default.get(key))
        top = key.split(".")[0]
        if top == "rounds":
            if isinstance(old, int) and value < old:
                out.append(f"rounds: {old} -> {value} (may only grow)")
        elif top not in RESUMABLE_CHANGES and old != value:
            out.append(f"{key}: {_show(old)} -> {_show(value)}")
    out += [f"{key}: {_show(flat_old[key])} -> (absent)" for key in flat_old.keys() - flat_new]
    return out


def check_resume(cfg: RunConfig, out_dir) -> None:
    """Refuse (``ValueError``, one line) to resume ``out_dir`` with a different run.

    Reads ``out_dir/config.json`` only; writes nothing.
    """
    path = Path(out_dir) / "config.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"--resume: nothing to resume in {out_dir} (no config.json or checkpoint)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(saved, dict):
        raise ValueError(f"--resume: {path} is not a gradcode run configuration")
    diff = resume_mismatch(saved, cfg)
    if diff:
        raise ValueError(
            f"--resume: the run in {out_dir} was started with a different configuration "
            f"({'; '.join(diff)}); only --rounds (upward), --eval-every, --checkpoint-every, "
            "--address and --tensorboard may change"
        )


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _show(value) -> str:
    return "none" if value is None else str(value)


# ------------------------------------------------------------------ checkpoint


def check_checkpoint(
    ck,
    *,
    path,
    rounds: int,
    params: list[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: bool,
    master,
    workers: int,
    stateful: bool,
    buffers: dict[str, torch.Tensor] | None = None,
    scheme_of=None,
) -> None:
    """Refuse (one-line ``ValueError``) a checkpoint that cannot continue this run.

    ``params``: the parameters the optimizer steps; ``optimizer``: one freshly
    built from the configuration over them (its hyperparameters are the
    reference); ``scheduler``: whether the run has an LR scheduler; ``master``:
    the scheme's initial master state (its type is the reference);
    ``scheme_of(ck)`` (``--scheme auto``): ``(master, stateful)`` of the scheme in
    force that ``ck`` records, replacing ``master`` and ``stateful``;
    ``buffers``: the model's buffers (BatchNorm statistics) by name.

    >>> p = [torch.zeros(3, requires_grad=True)]
    >>> opt = torch.optim.SGD(p, lr=0.1)
    >>> good = {"weights": torch.zeros(3), "round": 2, "master": None,
    ...         "optimizer": opt.state_dict(), "scheduler": None, "oracle": None,
    ...         "cluster": {"worker_states": None, "clock": 2.0, "pending": []},
    ...         "clock": 2.0, "history": [{"round": 0}, {"round": 1}]}
    >>> kw = dict(path="ck", rounds=4, params=p, optimizer=opt, scheduler=False, master=None,
    ...           workers=2, stateful=False)
    >>> check_checkpoint(good, **kw)
    >>> check_checkpoint({**good, "round": 9}, **kw)
    Traceback (most recent call last):
    ...
    ValueError: --resume: ck is at round 9, outside this run's 0..4 rounds
    """

    def refuse(why: str) -> None:
        raise ValueError(f"--resume: {path} {why}")

    if not isinstance(ck, dict):
        refuse("is not a gradcode checkpoint")
    missing = [k for k in CHECKPOINT_PARTS if k not in ck]
    if missing:
        refuse(f"is incomplete (no {', '.join(missing)}); {RECOVER}")
    if scheme_of is not None:
        try:
            master, stateful = scheme_of(ck)
        except ValueError as exc:
            refuse(f"{exc}; {RECOVER}")
    r = ck["round"]
    if not (isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= rounds):
        refuse(f"is at round {r!r}, outside this run's 0..{rounds} rounds")
    _check_weights(ck["weights"], params, refuse)
    clock = ck["clock"]
    if not (isinstance(clock, int | float) and math.isfinite(clock) and clock >= 0):
        refuse(f"has a clock of {clock!r} (needs a finite number >= 0)")
    history = ck["history"]
    if not isinstance(history, list) or len(history) != r:
        size = len(history) if isinstance(history, list) else type(history).__name__
        refuse(f"is at round {r} but its history holds {size} rounds")
    if any(not isinstance(h, dict) or h.get("round") != i for i, h in enumerate(history)):
        refuse("has a damaged history (its rounds are not 0, 1, 2, ...)")
    if type(ck["master"]) is not type(master):
        got, want = type(ck["master"]).__name__, type(master).__name__
        refuse(f"holds a master state of type {got}, the scheme's is {want}")
    _check_cluster(ck["cluster"], workers, stateful, refuse)
    why = optimizer_mismatch(ck["optimizer"], optimizer)
    if why:
        refuse(why)
    if scheduler != (ck["scheduler"] is not None):
        refuse("was written " + ("without" if scheduler else "with") + " an LR scheduler")
    if buffers:
        _check_buffers(ck["oracle"], buffers, refuse)


def _check_weights(w, params, refuse) -> None:
    numel = sum(p.numel() for p in params)
    dtype = params[0].dtype
    if not isinstance(w, torch.Tensor):
        refuse(f"holds weights of type {type(w).__name__}, not a tensor")
    if w.ndim != 1 or w.numel() != numel:
        refuse(f"holds weights of shape {tuple(w.shape)}; the model has {numel} trainable numbers")
    if w.dtype != dtype:
        refuse(f"holds {_dt(w.dtype)} weights; the model's are {_dt(dtype)}")
    if not bool(torch.isfinite(w).all()):
        refuse("holds non-finite weights")


def _check_cluster(state, workers: int, stateful: bool, refuse) -> None:
    if not isinstance(state, dict) or "worker_states" not in state:
        refuse(f"has no worker state; {RECOVER}")
    ws = state["worker_states"]
    if ws is None and stateful:
        refuse(f"has no worker state for this stateful scheme; {RECOVER}")
    if ws is not None and (not isinstance(ws, list | tuple) or len(ws) != workers):
        size = len(ws) if isinstance(ws, list | tuple) else type(ws).__name__
        refuse(f"holds worker states for {size} workers; the run has {workers}")


def _check_buffers(state, buffers: dict, refuse) -> None:
    if not isinstance(state, dict) or set(state) != set(buffers):
        refuse("holds model buffers (BatchNorm statistics) that are not this model's")
    for name, ref in buffers.items():
        v = state[name]
        if not isinstance(v, torch.Tensor) or v.shape != ref.shape or v.dtype != ref.dtype:
            refuse(f"holds buffer {name!r} unlike the model's {tuple(ref.shape)} {_dt(ref.dtype)}")


def optimizer_mismatch(saved, fresh: torch.optim.Optimizer) -> str | None:
    """Why the optimizer state ``saved`` cannot continue ``fresh`` (an optimizer built
    from the configuration), or ``None``.  Hyperparameters must be equal (the
    learning rate before any scheduler: ``initial_lr`` where saved), the
    parameter counts too, and state tensors shaped like their parameters.

    >>> p = [torch.zeros(2, requires_grad=True)]
    >>> saved = torch.optim.SGD(p, lr=1e9).state_dict()
    >>> optimizer_mismatch(saved, torch.optim.SGD(p, lr=0.1))
    "holds optimizer setting lr=1000000000.0; the configuration's is 0.1"
    """
    if not (isinstance(saved, dict) and isinstance(saved.get("param_groups"), list)
            and isinstance(saved.get("state"), dict)):  # fmt: skip
        return "holds a damaged optimizer state"
    groups = fresh.state_dict()["param_groups"]
    if len(saved["param_groups"]) != len(groups):
        return f"holds {len(saved['param_groups'])} optimizer parameter groups, not {len(groups)}"
    for old, new in zip(saved["param_groups"], groups, strict=True):
        if not isinstance(old, dict) or len(old.get("params", ())) != len(new["params"]):
            return "holds an optimizer over other parameters than the model's"
        keys = (set(old) | set(new)) - {"params", "initial_lr"}
        for key in sorted(keys):
            if key not in old or key not in new:
                return f"holds an optimizer of another kind (setting {key!r} differs)"
            was = old.get("initial_lr", old[key]) if key == "lr" else old[key]
            if not _same(was, new[key]):
                return f"holds optimizer setting {key}={was!r}; the configuration's is {new[key]!r}"
    params = [p for g in fresh.param_groups for p in g["params"]]
    for idx, st in saved["state"].items():
        if not (isinstance(idx, int) and 0 <= idx < len(params) and isinstance(st, dict)):
            return "holds a damaged optimizer state"
        for name, v in st.items():
            if isinstance(v, torch.Tensor) and v.ndim > 0:
                if v.shape != params[idx].shape or not v.is_floating_point():
                    shape = tuple(params[idx].shape)
                    return (f"holds optimizer state {name!r} of shape {tuple(v.shape)} "
                            f"{_dt(v.dtype)} for a parameter of shape {shape}")  # fmt: skip
    return None


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        try:
            return bool(torch.equal(torch.as_tensor(a), torch.as_tensor(b)))
        except (TypeError, RuntimeError):
            return False
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b or (_number(a) and _number(b) and a == b)


def _number(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _dt(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def requires_closure(opt: torch.optim.Optimizer) -> bool:
    """Does ``opt.step`` need a closure (L-BFGS)?  The master steps without one."""
    try:
        p = inspect.signature(opt.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return p is not None and p.default is inspect.Parameter.empty


# ------------------------------------------------------------------ log


def check_log(records: list[dict] | None, history: list[dict], path) -> None:
    """Refuse a ``rounds.jsonl`` (its ``records``; ``None``: missing) that does not hold
    the checkpoint's ``history``: fewer rounds (cut or deleted), or other rounds
    (another run's log).  Lines past the checkpoint are allowed (the caller drops them).

    >>> history = [{"round": 0, "time": 1.0}, {"round": 1, "time": 2.0}]
    >>> check_log(history[:1], history, "log")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --resume: log holds 1 rounds but the checkpoint is at round 2 (cut?); put ...
    """
    r = len(history)
    if records is None:
        if r == 0:
            return
        raise ValueError(f"--resume: {path} is missing but the checkpoint is at round {r}; "
                         f"put the run's log back, or {RECOVER}")  # fmt: skip
    if len(records) < r:
        raise ValueError(f"--resume: {path} holds {len(records)} rounds but the checkpoint is at "
                         f"round {r} (cut?); put the run's log back, or {RECOVER}")  # fmt: skip
    for i, (rec, h) in enumerate(zip(records, history, strict=False)):
        if rec.get("round") != i or rec.get("time") != h.get("time"):
            raise ValueError(
                f"--resume: line {i + 1} of {path} is not the checkpoint's round {i} "
                f"(a log of another run?); put the run's log back, or {RECOVER}"
            )
