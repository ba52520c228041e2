"""One-dimensional distributions for the parts of the clock model.

Each part maps a uniform number ``u`` in (0, 1) to a value through its
quantile function (``draw(u)``), so a model draws one uniform per cell and
part whatever the load: :class:`Constant`, :class:`Normal`, :class:`Exp`
(shifted exponential), :class:`LogNormal` (shifted), :class:`ParetoTail`,
:class:`Empirical` (measured quantiles, interpolated) and :class:`TablePart`
(a measured rounds x workers table, read per round and worker).

Text form (``--delay parts:...``): a number, ``exp/SHIFT/MEAN``,
``lognormal/SHIFT/MEDIAN/SIGMA``, ``normal/MEAN/SD``, ``pareto/XM/ALPHA`` or
``trace/FILE.csv``::

    >>> parse_part("exp/1/0.5").draw(np.array([0.0, 1 - np.exp(-2)])).round(6).tolist()
    [1.0, 2.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtri

from .traces import TraceReplay

#: Uniforms are kept inside (0, 1) so no quantile function returns +-inf.
_EPS = 1e-12


def finite_number(name: str, value: float, low: float | None = 0.0, strict: bool = False) -> float:
    value = float(value)
    if not np.isfinite(value) or (low is not None and (value <= low if strict else value < low)):
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return value


class Part:
    """One component's distribution: ``draw(u)`` maps uniforms to values."""

    kind = "part"

    def quantile(self, u):
        raise NotImplementedError

    def draw(self, u: np.ndarray) -> np.ndarray:
        return self.quantile(u)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **{k: _plain(v) for k, v in vars(self).items()}}

    def describe(self) -> str:
        args = ", ".join(f"{k}={_g(v)}" for k, v in vars(self).items())
        return f"{self.kind}({args})"


def _g(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _plain(v):
    return [float(x) for x in np.ravel(v)] if isinstance(v, tuple | np.ndarray) else v


@dataclass(frozen=True)
class Constant(Part):
    """Always ``value``."""

    value: float = 0.0
    kind = "constant"

    def __post_init__(self):
        object.__setattr__(self, "value", finite_number("constant", self.value, low=None))

    def quantile(self, u):
        return np.full(np.shape(u), self.value)

    def describe(self) -> str:
        return f"{self.value:.4g}"


@dataclass(frozen=True)
class Normal(Part):
    """Gaussian ``mean + sd Z`` (for small symmetric shifts; totals are clipped at 0)."""

    mean: float = 0.0
    sd: float = 1.0
    kind = "normal"

    def __post_init__(self):
        finite_number("normal mean", self.mean, low=None)
        finite_number("normal sd", self.sd)

    def quantile(self, u):
        return self.mean + self.sd * ndtri(np.clip(u, _EPS, 1 - _EPS))


@dataclass(frozen=True)
class Exp(Part):
    """Shifted exponential ``shift + Exp(mean)``."""

    shift: float = 0.0
    mean: float = 1.0
    kind = "exp"

    def __post_init__(self):
        finite_number("exp shift", self.shift)
        finite_number("exp mean", self.mean)

    def quantile(self, u):
        return self.shift - self.mean * np.log1p(-np.clip(u, 0.0, 1 - _EPS))


@dataclass(frozen=True)
class LogNormal(Part):
    """Shifted log-normal ``shift + median exp(sigma Z)``: a hard floor plus a right skew."""

    shift: float = 0.0
    median: float = 1.0
    sigma: float = 0.5
    kind = "lognormal"

    def __post_init__(self):
        finite_number("lognormal shift", self.shift, low=None)
        finite_number("lognormal median", self.median, strict=True)
        finite_number("lognormal sigma", self.sigma)

    def quantile(self, u):
        return self.shift + self.median * np.exp(self.sigma * ndtri(np.clip(u, _EPS, 1 - _EPS)))


@dataclass(frozen=True)
class ParetoTail(Part):
    """Pareto ``xm (1 - u)^(-1/alpha)``: a power-law tail of index ``alpha``."""

    xm: float = 1.0
    alpha: float = 2.5
    kind = "pareto"

    def __post_init__(self):
        finite_number("pareto xm", self.xm, strict=True)
        finite_number("pareto alpha", self.alpha, strict=True)

    def quantile(self, u):
        return self.xm * (1.0 - np.clip(u, 0.0, 1 - _EPS)) ** (-1.0 / self.alpha)


@dataclass(frozen=True)
class Empirical(Part):
    """A measured distribution: ``quantiles`` at evenly spaced probabilities 0..1,
    linearly interpolated (so draws stay inside the measured range)."""

    quantiles: tuple[float, ...] = (0.0, 1.0)
    kind = "empirical"

    def __post_init__(self):
        q = tuple(float(x) for x in self.quantiles)
        if len(q) < 2 or not np.isfinite(q).all() or np.any(np.diff(q) < 0):
            raise ValueError("empirical quantiles must be >= 2 finite, non-decreasing numbers")
        object.__setattr__(self, "quantiles", q)

    @classmethod
    def of(cls, samples, knots: int = 1001) -> Empirical:
        """The empirical distribution of ``samples`` kept at ``knots`` quantiles."""
        x = np.asarray(samples, dtype=float)
        return cls(tuple(np.quantile(x, np.linspace(0, 1, knots))))

    def quantile(self, u):
        q = np.asarray(self.quantiles)
        return np.interp(u, np.linspace(0, 1, len(q)), q)

    def describe(self) -> str:
        p50, p99 = self.quantile(0.5), self.quantile(0.99)
        return (
            f"empirical({len(self.quantiles)} quantiles: min {self.quantiles[0]:.3g}, "
            f"p50 {p50:.3g}, p99 {p99:.3g}, max {self.quantiles[-1]:.3g})"
        )


@dataclass(frozen=True, eq=False)
class TablePart(Part):
    """A measured table: round ``r``, worker ``i`` gets ``table[r mod R, i]`` (no draw)."""

    table: np.ndarray = field(default_factory=lambda: np.ones((1, 1)))
    source: str = "table"
    kind = "trace"

    def __post_init__(self):
        t = np.atleast_2d(np.asarray(self.table, dtype=float))
        if t.ndim != 2 or np.isnan(t).any() or (t < 0).any():
            raise ValueError(f"{self.source}: a part's table must be rounds x workers, >= 0")
        object.__setattr__(self, "table", t)

    def quantile(self, u):
        return np.quantile(self.table, u)

    def draw(self, u):
        u = np.asarray(u)
        rows = self.table[np.arange(u.shape[0]) % self.table.shape[0]]
        if u.ndim == 1:  # a per-round part reads the first column
            return rows[:, 0]
        if u.shape[1] > rows.shape[1]:
            raise ValueError(f"{self.source} has {rows.shape[1]} workers, asked for n={u.shape[1]}")
        return rows[:, : u.shape[1]]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.source}

    def describe(self) -> str:
        return f"trace({self.source})"


PART_KINDS = {c.kind: c for c in (Constant, Normal, Exp, LogNormal, ParetoTail, Empirical)}
_TEXT_ARGS = {"exp": 2, "lognormal": 3, "normal": 2, "pareto": 2}


def parse_part(text: str, what: str = "part") -> Part:
    """A part from its spec text: a number, ``exp/SHIFT/MEAN``,
    ``lognormal/SHIFT/MEDIAN/SIGMA``, ``normal/MEAN/SD``, ``pareto/XM/ALPHA`` or
    ``trace/FILE.csv`` (a wide rounds x workers table).

    >>> parse_part("lognormal/1/0.5/0.2")
    LogNormal(shift=1.0, median=0.5, sigma=0.2)
    """
    text = text.strip()
    try:
        return Constant(float(text))
    except ValueError:
        pass
    kind, _, rest = text.partition("/")
    if kind == "trace":
        return TablePart(TraceReplay.from_csv(rest).trace, rest)
    if kind not in _TEXT_ARGS:
        raise ValueError(
            f"{what}: {text!r} is not a number or one of "
            "exp/SHIFT/MEAN, lognormal/SHIFT/MEDIAN/SIGMA, normal/MEAN/SD, pareto/XM/ALPHA, "
            "trace/FILE.csv"
        )
    args = rest.split("/") if rest else []
    if len(args) != _TEXT_ARGS[kind]:
        raise ValueError(f"{what}: {kind} takes {_TEXT_ARGS[kind]} numbers, got {text!r}")
    try:
        values = [float(a) for a in args]
    except ValueError:
        raise ValueError(f"{what}: {text!r}: the parameters must be numbers") from None
    try:
        return PART_KINDS[kind](*values)
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None


def part_from_dict(d: dict, what: str = "part") -> Part:
    d = dict(d)
    kind = d.pop("kind", None)
    if kind == "trace":
        return parse_part(f"trace/{d.get('path', '')}", what)
    if kind not in PART_KINDS:
        raise ValueError(f"{what}: unknown kind {kind!r}; choose from {', '.join(PART_KINDS)}")
    try:
        if kind == "empirical":
            return Empirical(tuple(d["quantiles"]))
        return PART_KINDS[kind](**d)
    except (TypeError, KeyError) as exc:
        raise ValueError(f"{what}: bad {kind} parameters: {exc}") from None
