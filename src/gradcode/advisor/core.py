"""The advisor: rank every ``(scheme, s)`` by predicted time to target on *this* cluster.

:func:`advise` is a pure function of measured worker times (or a delay model)
and returns an :class:`Advice`: the cluster's :class:`~.regime.Regime`, every
candidate's mean round time, exactness, convergence factor and time to
target, the skipped pairs with the reason, the recommendation, the runner-up
and why.  Nothing is read or written: the CLI (``gradcode advise``) and the
Python API (:func:`gradcode.advise`) resolve files first, and a runtime can
call it every K rounds on the times it measured so far.

The model (docs: README, "Which scheme should I use?")::

    round_time     = mean round time of (scheme, s), replayed / drawn (:mod:`.candidates`)
    rounds_factor  = rounds to target / DGD's rounds to target (:mod:`.factors`)
    time_to_target = round_time x rounds_factor x target_rounds
                     (no target: x 1, i.e. seconds per DGD-equivalent round)

The recommendation is the candidate with the least time to target among
those that decode every round and whose factor carries no caveat; the
runner-up is the best such candidate of another scheme.

>>> import numpy as np
>>> t = np.full((8, 6, 2), 1.0) + [0.0, 0.05]      # 1 s at load 1, +5 % at load 2
>>> t[:, 0, :] += 4.0                              # worker 0 is always 5x slower
>>> a = advise(t, 6, loads=(1.0, 2.0), max_s=1)
>>> a.recommendation.scheme, a.recommendation.s, a.recommendation.round_time
('frc', 1, 1.05)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..codes import REGISTRY, make_code
from ..stragglers import DelayModel, LoadTrace, TraceReplay, fit_clock
from ..stragglers.fit import ClockSamples
from .candidates import Timing, mean_residual, time_candidate
from .factors import STUDY_FILES, factor_for, is_fresh_exact
from .reason import explain
from .regime import Regime, characterise

#: Largest n the advisor accepts (the decoders are tested to 1,000 workers).
MAX_N = 1000
#: Rounds x workers drawn from a model to characterise its regime.
REGIME_CELLS = 50_000
#: Largest (rows x cells) of a trace fitted just to describe its stalls (else the stall rule).
FIT_BUDGET = 5 * 10**7


@dataclass(frozen=True)
class Candidate:
    """One ``(scheme, s)``: its predicted cost on this cluster (module docstring)."""

    scheme: str
    s: int
    load: float
    round_time: float
    exact: bool
    fresh: bool
    rounds_factor: float | None
    rounds_factor_from: str
    time_to_target: float | None
    decodable: float
    estimate: str
    residual: float | None = None
    caveat: str = ""
    vs_dgd: float | None = None

    @property
    def recommendable(self) -> bool:
        return self.time_to_target is not None and not self.caveat and self.decodable == 1.0

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["recommendable"] = self.recommendable
        return d


@dataclass(frozen=True)
class Advice:
    """The advisor's answer; :meth:`to_dict` is the ``--json`` record."""

    regime: Regime
    n: int
    candidates: tuple[Candidate, ...]
    skipped: tuple[dict, ...]
    recommendation: Candidate
    runner_up: Candidate | None
    reason: str
    target_rounds: float | None
    source: str
    rounds_factor_source: str = field(default=", ".join(STUDY_FILES))
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        rec = self.recommendation
        return {
            "regime": self.regime.to_dict(),
            "n": self.n,
            "target_rounds": self.target_rounds,
            "source": self.source,
            "rounds_factor_source": self.rounds_factor_source,
            "notes": list(self.notes),
            "candidates": [c.to_dict() for c in self.candidates],
            "skipped": list(self.skipped),
            "recommendation": {
                "scheme": rec.scheme,
                "s": rec.s,
                "round_time": rec.round_time,
                "time_to_target": rec.time_to_target,
                "reason": self.reason,
                "runner_up": None
                if self.runner_up is None
                else {"scheme": self.runner_up.scheme, "s": self.runner_up.s},
            },
        }


def as_measured(times, loads=None, compute=None) -> LoadTrace:
    """Measured worker times as a replayable trace.

    * ``(rounds, workers, K)`` seconds at ``loads`` (``K >= 2``): a long-format
      trace (the replay rule of :mod:`gradcode.stragglers.traces`);
    * ``(rounds, workers)`` seconds at one load ``loads`` (default 1) with
      ``compute`` (the seconds of each cell spent computing): time at load
      ``L`` is ``t + (L / load - 1) x compute`` (fixed part + compute per partition);
    * ``(rounds, workers)`` without ``compute``: time ∝ load (a wide trace).

    ``inf`` = the worker never reported.  The result is always a
    :class:`~gradcode.stragglers.LoadTrace` (time ∝ load: measured at ``load``
    and, doubled, at ``2 load``, which the replay rule extends linearly through 0),
    so chunked schemes see each partition's share of the time.

    >>> m = as_measured(np.array([[2.0, 3.0]]), loads=1.0, compute=np.array([[0.5, 1.0]]))
    >>> m.sample(None, 1, 2, load=3).tolist()
    [[3.0, 5.0]]
    """
    t = np.asarray(times, dtype=float)
    if t.ndim == 3:
        if loads is None or len(np.atleast_1d(loads)) != t.shape[2]:
            raise ValueError(f"times of shape {t.shape} need one load per last-axis entry")
        return LoadTrace(t, tuple(np.atleast_1d(loads)), source="measured times")
    if t.ndim != 2 or t.size == 0:
        raise ValueError(f"times must be (rounds, workers[, loads]), got shape {t.shape}")
    load = 1.0 if loads is None else float(np.atleast_1d(loads)[0])
    if not (np.isfinite(load) and load > 0):
        raise ValueError(f"the measured load must be a number > 0, got {loads!r}")
    if compute is None:
        return _linear(t, load, "measured times (time ∝ load)")
    c = np.broadcast_to(np.asarray(compute, dtype=float), t.shape)
    if np.isnan(c).any() or (c < 0).any():
        raise ValueError("compute seconds must be numbers >= 0")
    with np.errstate(invalid="ignore"):
        up = np.where(np.isinf(t), np.inf, t + c / load)
    return LoadTrace(np.stack([t, up], axis=-1), (load, load + 1.0), source="measured times")


def advise(
    times,
    n: int,
    *,
    loads=None,
    compute=None,
    max_s: int | None = None,
    schemes=None,
    factors: dict | None = None,
    target_rounds: float | None = None,
    rounds: int | None = None,
    model: DelayModel | None = None,
    message_bytes: float | None = None,
    master: float = 0.0,
    seed: int = 0,
    source: str | None = None,
) -> Advice:
    """Rank every registered scheme and ``s in 0..max_s`` on the cluster ``times`` describe.

    Args:
        times: measured worker times (a :class:`~gradcode.stragglers.LoadTrace`,
            a :class:`~gradcode.stragglers.TraceReplay`, or an array, see
            :func:`as_measured` for ``loads`` and ``compute``), or a
            :class:`~gradcode.stragglers.DelayModel` to draw from.
        n: workers.  ``max_s``: largest ``s`` (default ``min(4, n // 2)``).
        schemes: names to consider (default: the whole registry; DGD is always timed).
        factors: user convergence factors ``{(scheme, s or None): factor}``
            (:func:`~.factors.read_factors`), overriding the study's.
        target_rounds: DGD's rounds to the target (``None``: time per DGD round).
        rounds: rounds per candidate; beyond the measured ones, draws of
            ``model`` (default: the clock model fitted to the measurements).
        message_bytes: gradient size, for a model with a communication part.
        master: seconds added to every round.  ``seed``: model draws, CRC.
    """
    if not isinstance(n, int | np.integer) or not 2 <= n <= MAX_N:
        raise ValueError(f"n must be an integer in [2, {MAX_N}], got {n!r}")
    max_s = min(4, n // 2) if max_s is None else max_s
    if not isinstance(max_s, int | np.integer) or not 0 <= max_s < n:
        raise ValueError(f"max_s must be an integer in [0, n - 1] = [0, {n - 1}], got {max_s!r}")
    if target_rounds is not None and not (math.isfinite(target_rounds) and target_rounds > 0):
        raise ValueError(f"target rounds must be a positive number, got {target_rounds!r}")
    names = list(REGISTRY) if schemes is None else list(dict.fromkeys(["dgd", *schemes]))
    for name in names:
        if name not in REGISTRY:
            raise ValueError(f"unknown scheme {name!r}; known schemes: {', '.join(REGISTRY)}")
    linear = False  # one measured load, time assumed ∝ load
    if isinstance(times, LoadTrace):
        measured = times
    elif isinstance(times, TraceReplay):
        measured, linear = _linear(times.trace, times.trace_load, source or "wide trace"), True
    elif isinstance(times, DelayModel):
        measured = None
    else:
        measured = as_measured(times, loads, compute)
        linear = np.ndim(times) == 2 and compute is None
    model_in = times if measured is None else model
    timing = Timing(measured, model_in, rounds, message_bytes, master, seed)
    fit = None
    if isinstance(measured, LoadTrace):
        have = timing.measured_rounds(n)
        needs_model = model_in is None and (have == 0 or (rounds or 0) > have)
        if needs_model or (_fit_cost(measured) <= FIT_BUDGET and not linear):
            fit = _fit(measured)
        if needs_model and fit is not None:
            timing = Timing(measured, fit.model, rounds, message_bytes, master, seed)
    if measured is not None and timing.measured_rounds(n) == 0 and timing.model is None:
        raise ValueError(
            f"the measurements have {timing.workers} workers, fewer than n={n}, and no model "
            "to draw the others from"
        )
    regime = _regime(timing, n, max_s, fit, source, linear)
    return _rank(names, n, max_s, timing, regime, factors, target_rounds, source or regime.source)


def _linear(t: np.ndarray, load: float, source: str) -> LoadTrace:
    """A one-load table as a trace whose time is proportional to load."""
    return LoadTrace(np.stack([t, 2 * t], axis=-1), (load, 2 * load), source=source)


def _fit_cost(trace: LoadTrace) -> int:
    """The clock fit's work grows as (round x load rows) x cells."""
    R, W, K = trace.table.shape
    return R * K * R * W * K


def _fit(trace: LoadTrace):
    try:
        with np.errstate(all="ignore"):
            return fit_clock(ClockSamples.from_trace(trace))
    except ValueError:
        return None


def _regime(timing: Timing, n: int, max_s: int, fit, source, linear: bool) -> Regime:
    m = timing.measured
    if linear:
        label = source or m.source
        return characterise(m.table[:, :, :1], m.loads[:1], max_s + 1, linear=True, source=label)
    if m is not None:
        return characterise(m.table, m.loads, max_s + 1, source=source or m.source, fit=fit)
    model = timing.model_for_run()
    R = max(REGIME_CELLS // n, 20)
    loads = tuple(float(x) for x in range(1, max(max_s, 1) + 2))  # the schemes' loads
    table = np.stack(
        [model.sample(np.random.default_rng(timing.seed), R, n, load=L) for L in loads], -1
    )
    label = source or f"delay model {type(model).__name__} ({R} drawn rounds)"
    return characterise(table, loads, max_s + 1, source=label)


def _rank(names, n, max_s, timing, regime, factors, target_rounds, source) -> Advice:
    cands: list[Candidate] = []
    skipped: list[dict] = []
    dgd_times = None
    for name in names:
        for s in range(max_s + 1):
            if name == "dgd" and s > 0:
                skipped.append({"scheme": name, "s": s, "reason": "dgd waits for every worker"})
                continue
            try:
                code = make_code(name, n, s, rng=np.random.default_rng(timing.seed))
            except ValueError as exc:
                skipped.append({"scheme": name, "s": s, "reason": str(exc)})
                continue
            est = time_candidate(code, timing)
            if name == "dgd":
                dgd_times = est.times
            elif s == 0 and dgd_times is not None and np.array_equal(est.times, dgd_times):
                skipped.append({"scheme": name, "s": 0, "reason": "at s = 0 it is dgd"})
                continue
            cands.append(_candidate(name, s, code, est, timing, factors, target_rounds))
    dgd = next(c for c in cands if c.scheme == "dgd")
    base = dgd.time_to_target
    cands = [
        _with(
            c,
            vs_dgd=None
            if c.time_to_target is None or not base
            else round(c.time_to_target / base, 6),
        )
        for c in cands
    ]
    cands.sort(key=lambda c: (c.time_to_target is None, c.time_to_target or 0.0, c.round_time))
    ok = [c for c in cands if c.recommendable] or [dgd]
    best = ok[0]
    runner = next((c for c in ok[1:] if c.scheme != best.scheme), None)
    reason = explain(best, runner, dgd, regime)
    return Advice(regime, n, tuple(cands), tuple(skipped), best, runner, reason, target_rounds,
                  source)  # fmt: skip


def _with(c: Candidate, **kw) -> Candidate:
    return Candidate(**{**{k: getattr(c, k) for k in c.__dataclass_fields__}, **kw})


def _candidate(name, s, code, est, timing, factors, target_rounds) -> Candidate:
    t = est.times
    ok = np.isfinite(t)
    decodable = float(ok.mean())
    mean = float(t[ok].mean()) if ok.any() else math.inf
    f = factor_for(name, s, factors)
    ttt = None
    if f.value is not None and decodable == 1.0:
        ttt = round(mean * f.value * (target_rounds or 1.0), 6)
    caveat = f.caveat
    if decodable < 1.0:
        caveat = f"never finishes {1 - decodable:.1%} of rounds (more than s workers never report)"
    return Candidate(
        scheme=name,
        s=s,
        load=round(float(code.load) * float(getattr(code, "chunk_load", 1.0)), 6),
        round_time=round(mean, 6),
        exact=bool(REGISTRY[name].exact),
        fresh=is_fresh_exact(name),
        rounds_factor=f.value,
        rounds_factor_from=f.origin,
        time_to_target=ttt,
        decodable=round(decodable, 6),
        estimate=est.how,
        residual=mean_residual(name, code, timing),
        caveat=caveat,
    )
