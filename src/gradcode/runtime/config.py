"""Frozen run configurations and the builders that turn them into objects.

A :class:`RunConfig` names everything a training run needs -- scheme, data,
model, straggler model, optimizer, backend -- as plain values, so it can come
from the CLI, a TOML grid or a test, be logged as JSON and compared.

Straggler specs are short strings, e.g. ``"shifted-exp:a=1,mu=0.5"``,
``"pause:base=1,pause=2,prob=0.1"``, ``"pareto:alpha=2.5"``,
``"trace:path=times.csv"`` (a measured trace, wide or long format: see
:mod:`gradcode.stragglers.traces`), ``"parts:latency=2,compute=0.05"`` (the
clock model with parts, :mod:`gradcode.stragglers.parts`) or
``"model:path=fit.json"`` (a clock model saved by ``gradcode trace fit``);
wrappers are separate specs
(``persistent="k=2,kappa=5,layout=aligned"``, ``bursty="p_slow=0.05"``,
``crash="count=2,at_round=10,rejoin_after=20"``).

Example::

    >>> parse_delay("shifted-exp:a=1.0,mu=0.5")
    ShiftedExponential(a=1.0, mu=0.5)
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from dataclasses import dataclass, field

from ..codes import effective_stragglers
from ..stragglers import (
    AdditivePause,
    Bursty,
    ClockModel,
    CrashStop,
    DelayModel,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
    read_model,
    read_trace,
)
from .auto import AutoConfig, check_auto
from .stale import check as check_stale_correction

#: The named optimizers of CLI and TOML runs: SGD with heavy-ball momentum, SGD with
#: Nesterov momentum (Sutskever et al. 2013; a look-ahead step) and Adam.
OPTIMIZERS = ("sgd", "nesterov", "adam")

BASE_MODELS = {
    "shifted-exp": ShiftedExponential,
    "pause": AdditivePause,
    "pareto": Pareto,
    "trace": None,  # built from a CSV path (wide or long format)
    "parts": None,  # ClockModel.from_spec: latency + load x compute + bytes / bandwidth
    "model": None,  # a ClockModel saved as JSON (gradcode trace fit)
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
        params = _params(rest, f"delay {name!r}", read_trace)
        if "path" not in params:
            raise ValueError("delay 'trace' needs path=FILE.csv")
        return read_trace(params.pop("path"), **params)
    if name == "parts":
        return ClockModel.from_spec(rest)
    if name == "model":
        params = _params(rest, f"delay {name!r}", read_model)
        if "path" not in params:
            raise ValueError("delay 'model' needs path=FILE.json (written by gradcode trace fit)")
        return read_model(params["path"])
    params = _params(rest, f"delay {name!r}", BASE_MODELS[name])
    return _build(BASE_MODELS[name], params, f"delay {name!r}")


def parse_auto(spec: str) -> AutoConfig:
    """``--auto`` options, e.g. ``"warmup=5,every=10,candidates=dgd+frc"``.

    >>> parse_auto("warmup=3,margin=0.2").warmup
    3
    """
    return _build(AutoConfig, _params(spec, "--auto", AutoConfig), "--auto")


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
    """One training run, as plain values: the one description of a run.

    The CLI (``gradcode train``), :func:`gradcode.fit` and the experiment grid
    each translate their own inputs into a ``RunConfig``;
    :func:`gradcode.runtime.run.run` builds and runs it and is the only writer
    of the run folder (``config.json`` is ``asdict(cfg)``).  ``scheme_options``
    is a tuple of (key, value) pairs.

    A run of :func:`gradcode.fit` names the user's objects it was given:
    ``dataset="user:<digest>"``, ``model`` the module's class name,
    ``optimizer="user:<class>"`` with the optimizer's ``lr``, ``momentum`` and
    ``weight_decay`` read off it, ``lr_schedule="user:<class>"`` for a
    scheduler; the objects themselves travel beside the config in a
    :class:`~gradcode.runtime.run.UserTask`.
    """

    scheme: str = "pgc"
    workers: int = 12
    stragglers: int = 2
    dataset: str = "breast_cancer"
    model: str = "logreg"
    partitioning: str = "iid"
    delay: DelaySpec = field(default_factory=DelaySpec)
    rounds: int = 100
    optimizer: str = "sgd"  # one of OPTIMIZERS; "user:<class>" for fit's optimizer factory
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
    #: "constant" or "cosine" (lr -> 0 over the run's rounds); "user:<class>" for fit's.
    lr_schedule: str = "constant"
    #: Stop at the first evaluation whose test accuracy reaches this (None: run every round).
    target_accuracy: float | None = None
    #: Clip the decoded gradient to this L2 norm before each step (None: no clipping).
    clip_grad_norm: float | None = None
    #: none, auto or a method of :mod:`gradcode.runtime.stale` (stale schemes only).
    stale_correction: str = "none"
    #: Also write the per-round scalars as TensorBoard events here (None: no TensorBoard).
    tensorboard: str | None = None
    #: ``scheme="auto"`` only: how it decides (:mod:`gradcode.runtime.auto`); an
    #: :class:`AutoConfig`, its ``key=value`` spec (``"warmup=5,every=10"``) or ``None``
    #: (the defaults, filled in).
    auto: AutoConfig | str | None = None

    def __post_init__(self) -> None:
        check_ranges(self)
        check_stale_correction(self.stale_correction, self.scheme)
        auto = parse_auto(self.auto) if isinstance(self.auto, str) else self.auto
        object.__setattr__(self, "auto", check_auto(
            self.scheme, auto, scheme_options=self.scheme_options,
            stale_correction=self.stale_correction, workers=self.workers,
            stragglers=self.stragglers,
        ))  # fmt: skip

    @property
    def effective_s(self) -> int:
        """The ``s`` the scheme is built with (``0`` for ``dgd``: the registry's rule)."""
        return effective_stragglers(self.scheme, self.stragglers)


# ------------------------------------------------------------- value ranges

#: Most workers a run may have (the simulator and decoders are tested to 1,000).
MAX_WORKERS = 10_000
#: Largest learning rate accepted: bigger steps overflow at once (NaN loss).
MAX_LR = 1e6
#: Most (round, worker) cells of a run: the straggler schedule is drawn up front.
MAX_SCHEDULE = 10**8


def _is_user(name) -> bool:
    """``"user:<class>"``: an object given to :func:`gradcode.fit` (not a named choice)."""
    return isinstance(name, str) and name.startswith("user:")


def check_ranges(cfg: RunConfig) -> None:
    """Reject values that make no sense before anything runs (one ``ValueError``).

    Counts are integers (``bool`` is not); numbers must be finite; ``lr`` in
    ``(0, MAX_LR]``; ``deadline`` positive; ``momentum`` in ``[0, 1)``;
    ``weight_decay``, ``seed`` (``< 2**63``), ``checkpoint_every``,
    ``time_scale`` and ``stragglers`` non-negative; ``eval_every``,
    ``threads`` and ``batch_size`` positive; ``1 <= workers <= MAX_WORKERS``;
    ``rounds * workers <= MAX_SCHEDULE`` (the straggler schedule is drawn up
    front: bounded before it is allocated).

    >>> RunConfig(deadline=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: deadline must be a positive finite number, got -1.0
    >>> RunConfig(rounds=2.5)
    Traceback (most recent call last):
    ...
    ValueError: rounds must be an integer, got 2.5
    """

    def need(ok: bool, name: str, what: str) -> None:
        if not ok:
            raise ValueError(f"{name} must be {what}, got {getattr(cfg, name)!r}")

    def finite(x) -> bool:
        return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)

    def integer(x) -> bool:
        return isinstance(x, int) and not isinstance(x, bool)

    counts = ("workers", "stragglers", "rounds", "seed", "eval_every", "checkpoint_every")
    for name in (*counts, "threads"):
        need(integer(getattr(cfg, name)), name, "an integer")
    if cfg.batch_size is not None:
        need(integer(cfg.batch_size) and cfg.batch_size >= 1, "batch_size", "an integer >= 1")
    for name in (
        "scheme",
        "dataset",
        "model",
        "partitioning",
        "device",
        "dtype",
        "stale_correction",
    ):
        need(isinstance(getattr(cfg, name), str), name, "a string")
    need(isinstance(cfg.delay, DelaySpec), "delay", "a DelaySpec")
    need(cfg.tensorboard is None or isinstance(cfg.tensorboard, str), "tensorboard",
         "a folder path (str) or None")  # fmt: skip
    need(1 <= cfg.workers <= MAX_WORKERS, "workers", f"in 1..{MAX_WORKERS}")
    need(0 <= cfg.stragglers <= MAX_WORKERS, "stragglers", ">= 0")  # s < n: the scheme checks
    need(cfg.rounds >= 1, "rounds", ">= 1")
    need(cfg.rounds * cfg.workers <= MAX_SCHEDULE, "rounds", f"<= {MAX_SCHEDULE:.0e} / workers")
    need(0 <= cfg.seed < 2**63, "seed", "in 0..2**63 - 1")
    need(cfg.eval_every >= 1, "eval_every", ">= 1")
    need(cfg.checkpoint_every >= 0, "checkpoint_every", ">= 0 (0 = never)")
    need(cfg.threads >= 1, "threads", ">= 1")
    need(finite(cfg.lr) and 0 < cfg.lr <= MAX_LR, "lr", f"a finite number in (0, {MAX_LR:g}]")
    need(finite(cfg.momentum) and 0 <= cfg.momentum < 1, "momentum", "a finite number in [0, 1)")
    need(finite(cfg.weight_decay) and cfg.weight_decay >= 0, "weight_decay", "finite and >= 0")
    if cfg.deadline is not None:
        need(finite(cfg.deadline) and cfg.deadline > 0, "deadline", "a positive finite number")
    if cfg.time_scale is not None:
        need(finite(cfg.time_scale) and cfg.time_scale >= 0, "time_scale", "finite and >= 0")
    if cfg.clip_grad_norm is not None:
        positive = finite(cfg.clip_grad_norm) and cfg.clip_grad_norm > 0
        need(positive, "clip_grad_norm", "a positive finite number")
    if cfg.target_accuracy is not None:
        need(finite(cfg.target_accuracy) and 0 < cfg.target_accuracy <= 1,
             "target_accuracy", "in (0, 1]")  # fmt: skip
    choices = {
        "optimizer": OPTIMIZERS,
        "on_undecodable": ("fallback", "stop"),
        "backend": ("local", "ray"),
        "dtype": ("float32", "float64"),
        "lr_schedule": ("constant", "cosine"),
    }
    for name, valid in choices.items():
        value = getattr(cfg, name)
        user = name in ("optimizer", "lr_schedule") and _is_user(value)
        need(value in valid or user, name, " or ".join(repr(v) for v in valid))
