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

from dataclasses import dataclass, field

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

BASE_MODELS = {
    "shifted-exp": ShiftedExponential,
    "pause": AdditivePause,
    "pareto": Pareto,
    "trace": None,  # built from a CSV path
}


def _params(text: str, what: str) -> dict:
    out: dict = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        if "=" not in item:
            raise ValueError(f"{what}: expected key=value, got {item!r}")
        key, value = (x.strip() for x in item.split("=", 1))
        out[key] = _number(value)
    return out


def _number(value: str):
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


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
    params = _params(rest, f"delay {name!r}")
    if name == "trace":
        if "path" not in params:
            raise ValueError("delay 'trace' needs path=FILE.csv")
        return TraceReplay.from_csv(params.pop("path"), **params)
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
                {"base": model, **_params(self.persistent, "persistent")},
                "persistent",
            )
        if self.bursty is not None:
            model = _build(Bursty, {"base": model, **_params(self.bursty, "bursty")}, "bursty")
        if self.crash is not None:
            p = _params(self.crash, "crash")
            if "workers" in p:
                w = p["workers"]
                p["workers"] = (
                    (w,) if isinstance(w, int) else tuple(int(x) for x in str(w).split("+"))
                )
            model = _build(CrashStop, {"base": model, **p}, "crash")
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

    def __post_init__(self) -> None:
        if self.backend not in ("local", "ray"):
            raise ValueError(f"backend must be 'local' or 'ray', got {self.backend!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.time_scale is not None and self.time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {self.time_scale}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")

    @property
    def effective_s(self) -> int:
        return 0 if self.scheme == "dgd" else self.stragglers
