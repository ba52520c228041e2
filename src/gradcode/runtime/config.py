"""Frozen run configurations and the builders that turn them into objects.

A :class:`RunConfig` names everything a training run needs -- scheme, data,
model, straggler model, optimizer, backend -- as plain values, so it can come
from the CLI, a TOML grid or a test, be logged as JSON and compared.

Straggler specs are short strings, e.g. ``"shifted-exp:a=1,mu=0.5"``,
``"pause:base=1,pause=2,prob=0.1"``, ``"pareto:alpha=2.5"`` or
``"trace:path=times.csv"``; wrappers are separate specs
(``persistent="k=2,kappa=5,layout=aligned"``, ``bursty="p_slow=0.05"``,
``crash="count=2,at_round=10,rejoin_after=20"``).

Example::

    >>> parse_delay("shifted-exp:a=1.0,mu=0.5")
    ShiftedExponential(a=1.0, mu=0.5)
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import asdict, dataclass, field

from ..stragglers import (
    AdditivePause,
    Bursty,
    CrashStop,
    DelayModel,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
    TraceReplay,
)
from .stale import check as check_stale_correction

BASE_MODELS = {
    "shifted-exp": ShiftedExponential,
    "pause": AdditivePause,
    "pareto": Pareto,
    "trace": None,  # built from a CSV path
}


def _params(text: str, what: str, target=None, skip: tuple[str, ...] = ()) -> dict:
    """``"k=2,kappa=5"`` -> ``{"k": 2, "kappa": 5.0}``, typed by ``target``'s signature.

    With a ``target`` (a class or function), every key must be one of its
    keyword parameters and every value must parse as its annotated type
    (see :func:`typed_options`); without one, values become int, float or str.
    """
    pairs = []
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise ValueError(f"{what}: expected key=value, got {item!r}")
        key, value = (x.strip() for x in item.split("=", 1))
        pairs.append((key, value))
    if target is None:
        return {k: _number(v) for k, v in pairs}
    return dict(typed_options(pairs, target, what, skip))


def _number(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


# ------------------------------------------------------- typed key=value options


def option_types(target, skip: tuple[str, ...] = ()) -> dict[str, object]:
    """Keyword parameters of ``target`` (class or function) -> annotated type.

    A class's ``__init__`` that forwards ``**kw`` is followed to its base
    class's ``__init__``.  Parameters the caller supplies (``skip``, e.g. a
    wrapper's ``base`` model or a scheme's ``n``, ``s``, ``rng``) are left out.

    >>> sorted(option_types(PersistentSlow, skip=("base",)))
    ['k', 'kappa', 'layout']
    """
    out: dict[str, object] = {}
    chain = [c.__init__ for c in target.__mro__] if isinstance(target, type) else [target]
    for fn in chain:
        try:
            sig = inspect.signature(fn)
            hints = typing.get_type_hints(fn)
        except (TypeError, ValueError, NameError):
            continue
        for name, p in sig.parameters.items():
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or name in ("self", *skip):
                continue
            guess = type(p.default) if type(p.default) in (int, float, bool, str) else typing.Any
            out.setdefault(name, hints.get(name, guess))  # unannotated: the default's type
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            break
    return out


def typed_options(
    pairs, target, what: str, skip: tuple[str, ...] = ()
) -> tuple[tuple[str, object], ...]:
    """Parse ``(key, text)`` pairs against ``target``'s typed signature.

    An unknown key lists the valid ones; a value that does not parse says
    which key and what type it needs:

    >>> typed_options([("kappa", "abc")], PersistentSlow, "persistent", skip=("base",))
    Traceback (most recent call last):
    ...
    ValueError: persistent: kappa=abc: needs a number (float), got 'abc'
    """
    types_ = option_types(target, skip)
    out = []
    for key, text in pairs:
        if key not in types_:
            valid = ", ".join(sorted(types_)) or "none"
            raise ValueError(f"{what}: unknown key {key!r}; valid keys: {valid}")
        try:
            out.append((key, _convert(text, types_[key])))
        except ValueError as exc:
            raise ValueError(f"{what}: {key}={text}: {exc}") from None
    return tuple(out)


def _convert(text: str, typ):
    """``text`` as a value of the annotation ``typ`` (int, float, bool, str,
    ``X | None``, ``tuple[int, ...]`` written ``a+b+c``; no annotation: int,
    float or str, whichever parses first)."""
    if typ is typing.Any:
        return _number(text)
    args = typing.get_args(typ)
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null", ""):
            return None
        errors = []
        for a in (a for a in args if a is not type(None)):
            try:
                return _convert(text, a)
            except ValueError as exc:
                errors.append(str(exc).removeprefix("needs "))
        raise ValueError(f"needs {' or '.join(errors)}")
    if typing.get_origin(typ) is tuple:
        return tuple(_convert(x, args[0] if args else str) for x in text.split("+"))
    if typ is bool:
        low = text.lower()
        if low in ("true", "yes", "1", "on"):
            return True
        if low in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"needs true or false (bool), got {text!r}")
    if typ is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"needs an integer (int), got {text!r}") from None
    if typ is float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"needs a number (float), got {text!r}") from None
        if not math.isfinite(value):
            raise ValueError(f"needs a finite number (float), got {text!r}")
        return value
    if typ is str:
        return text
    name = getattr(typ, "__name__", str(typ))
    raise ValueError(f"has type {name}, which cannot be given as text")


def _build(cls, params: dict, what: str):
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"{what}: {exc}".replace("__init__() ", "")) from None


def parse_delay(spec: str) -> DelayModel:
    """A base delay model from ``"name[:key=value,...]"``."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if name not in BASE_MODELS:
        raise ValueError(f"unknown delay model {name!r}; choose from {', '.join(BASE_MODELS)}")
    if name == "trace":
        params = _params(rest, f"delay {name!r}", TraceReplay.from_csv)
        if "path" not in params:
            raise ValueError("delay 'trace' needs path=FILE.csv")
        return TraceReplay.from_csv(params.pop("path"), **params)
    params = _params(rest, f"delay {name!r}", BASE_MODELS[name])
    return _build(BASE_MODELS[name], params, f"delay {name!r}")


@dataclass(frozen=True)
class DelaySpec:
    """Base delay model plus optional persistent / bursty / crash wrappers."""

    base: str = "shifted-exp"
    persistent: str | None = None
    bursty: str | None = None
    crash: str | None = None

    def build(self) -> DelayModel:
        model = parse_delay(self.base)
        if self.persistent is not None:
            model = _build(
                PersistentSlow,
                {
                    "base": model,
                    **_params(self.persistent, "persistent", PersistentSlow, ("base",)),
                },
                "persistent",
            )
        if self.bursty is not None:
            params = _params(self.bursty, "bursty", Bursty, ("base",))
            model = _build(Bursty, {"base": model, **params}, "bursty")
        if self.crash is not None:
            params = _params(self.crash, "crash", CrashStop, ("base",))
            model = _build(CrashStop, {"base": model, **params}, "crash")
        return model

    def label(self) -> str:
        parts = [self.base]
        for name in ("persistent", "bursty", "crash"):
            if getattr(self, name) is not None:
                parts.append(f"{name}({getattr(self, name)})")
        return "+".join(parts)


@dataclass(frozen=True)
class RunConfig:
    """One training run.  ``scheme_options`` is a tuple of (key, value) pairs."""

    scheme: str = "pgc"
    workers: int = 12
    stragglers: int = 2
    dataset: str = "breast_cancer"
    model: str = "logreg"
    partitioning: str = "iid"
    delay: DelaySpec = field(default_factory=DelaySpec)
    rounds: int = 100
    optimizer: str = "sgd"
    lr: float = 0.5
    momentum: float = 0.0
    weight_decay: float = 0.0
    deadline: float | None = None
    seed: int = 0
    backend: str = "local"
    device: str = "cpu"
    eval_every: int = 10
    checkpoint_every: int = 0
    on_undecodable: str = "fallback"
    data_dir: str | None = None
    verify: bool = True  # check data files against pinned digests (--no-verify: False)
    address: str | None = None  # Ray cluster address (None: start Ray locally)
    time_scale: float | None = None  # Ray: real seconds per schedule unit (None: 0.01)
    scheme_options: tuple[tuple[str, object], ...] = ()
    batch_size: int | None = None  # per partition per round (None: the whole partition)
    dtype: str = "float32"  # of weights, gradients and messages ("float64" for exactness)
    threads: int = 1  # torch intra-op threads of the in-process computation
    lr_schedule: str = "constant"  # or "cosine": lr -> 0 over the run's rounds
    #: Stop at the first evaluation whose test accuracy reaches this (None: run every round).
    target_accuracy: float | None = None
    #: none, auto or a method of :mod:`gradcode.runtime.stale` (stale schemes only).
    stale_correction: str = "none"

    def __post_init__(self) -> None:
        check_stale_correction(self.stale_correction, self.scheme)
        if self.target_accuracy is not None and not 0 < self.target_accuracy <= 1:
            raise ValueError(f"target_accuracy must be in (0, 1], got {self.target_accuracy!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if self.backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.time_scale is not None and self.time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {self.time_scale}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        check_ranges(self)

    @property
    def effective_s(self) -> int:
        return 0 if self.scheme == "dgd" else self.stragglers


# ------------------------------------------------------------- value ranges

#: Most workers a run may have (the simulator and decoders are tested to 1,000).
MAX_WORKERS = 10_000
#: Largest learning rate accepted: bigger steps overflow at once (NaN loss).
MAX_LR = 1e6
#: Most (round, worker) cells of a run: the straggler schedule is drawn up front.
MAX_SCHEDULE = 10**8


def check_ranges(cfg: RunConfig) -> None:
    """Reject values that make no sense before anything runs (one ``ValueError``).

    Numbers must be finite; ``lr`` in ``(0, MAX_LR]``; ``deadline`` positive;
    ``momentum`` in ``[0, 1)``; ``weight_decay``, ``seed`` (``< 2**63``),
    ``checkpoint_every``, ``time_scale`` and ``stragglers`` non-negative;
    ``1 <= workers <= MAX_WORKERS``;
    ``rounds * workers <= MAX_SCHEDULE``.

    >>> RunConfig(deadline=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: deadline must be a positive finite number, got -1.0
    """

    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{name} must be {what}, got {getattr(cfg, name)!r}")

    def finite(x) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    for name in ("workers", "stragglers", "rounds", "seed", "eval_every", "checkpoint_every"):
        need(isinstance(getattr(cfg, name), int), name, "an integer")
    need(1 <= cfg.workers <= MAX_WORKERS, "workers", f"in 1..{MAX_WORKERS}")
    need(0 <= cfg.stragglers <= MAX_WORKERS, "stragglers", ">= 0")  # s < n: the scheme checks
    need(cfg.rounds >= 1, "rounds", ">= 1")
    need(cfg.rounds * cfg.workers <= MAX_SCHEDULE, "rounds", f"<= {MAX_SCHEDULE:.0e} / workers")
    need(0 <= cfg.seed < 2**63, "seed", "in 0..2**63 - 1")
    need(cfg.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = never)")
    need(finite(cfg.lr) and 0 < cfg.lr <= MAX_LR, "lr", f"a finite number in (0, {MAX_LR:g}]")
    need(finite(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum", "a finite number in [0, 1)")
    need(finite(cfg.weight_decay) and cfg.weight_decay >= 0, "weight_decay", "finite and >= 0")
    if cfg.deadline is not None:
        need(finite(cfg.deadline) and cfg.deadline > 0, "deadline", "a positive finite number")
    if cfg.time_scale is not None:
        need(finite(cfg.time_scale) and cfg.time_scale >= 0, "time_scale", "finite and >= 0")
    need(cfg.optimizer in ("sgd", "adam"), "optimizer", "'sgd' or 'adam'")
    need(cfg.on_undecodable in ("fallback", "stop"), "on_undecodable", "'fallback' or 'stop'")


# ------------------------------------------------------------------ resuming

#: Fields a resumed run may change: they do not alter the trained trajectory.
#: ``rounds`` may only grow (checked separately).
RESUMABLE_CHANGES = frozenset({"rounds", "eval_every", "checkpoint_every", "address"})


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
    >>> resume_mismatch(old, RunConfig(rounds=20, eval_every=5))
    []
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
    from pathlib import Path

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
            f"({'; '.join(diff)}); only --rounds (upward), --eval-every, --checkpoint-every "
            "and --address may change"
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
