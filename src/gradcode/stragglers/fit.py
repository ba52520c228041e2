"""Fit the clock model with parts (:class:`~gradcode.stragglers.parts.ClockModel`) to measurements.

Input: :class:`ClockSamples`, one entry per (round, worker) measurement with
its load and total seconds -- a long-format trace (:meth:`ClockSamples.from_trace`)
or a run's own records.  Where the runtime also recorded each worker's compute
and communication seconds (and the message size), those parts are read off
directly instead of being inferred; the rest of the procedure is the same.

The procedure (each step answers one question about the data):

1. **Compute per partition.**  Measured compute seconds divided by the load
   when recorded; otherwise the least-squares slope of the per-load medians
   against the load (medians: a few multi-second stalls must not tilt it).
   Needs two or more measured loads.
2. **Communication.**  ``message_bytes / comm`` gives the bandwidth when both
   were recorded; otherwise the message time cannot be told apart from the
   fixed latency (a trace that never varied the message size) and stays in it.
3. **Common per-round shift.**  The residual ``x = seconds - load x compute``
   of one measurement row (a round at one load) is shifted by the row's
   median; the spread of those medians, less what sampling alone would give
   (``pi/2 sigma^2 / m`` for a row of ``m`` workers), is a Gaussian ``common`` part.
4. **Stalls.**  Residuals far above the body are stalls
   (:func:`stall_threshold`: beyond ``stall_sigmas`` = 8 robust standard
   deviations and beyond the widest empty band of the tail, so the body keeps
   its own continuous tail).  On the AWS Lambda traces they are 26-39 s
   against a 2 s median, and they come in *waves*: a few workers of the same
   round stall together, and at some loads never.  Modelled as
   :class:`~gradcode.stragglers.parts.Stall`: a wave per round with the
   probability measured at each load (the fraction of rows with a stall), the
   share of workers a wave catches (the empirical distribution of the stalled
   fraction of stalled rows) and the empirical size above the median.
   Treating stalls as independent per worker instead would put one in half of
   all 256-worker rounds where the Sydney trace has one in a fifth, and a DGD
   round waits for the slowest worker.
5. **Latency body.**  The remaining residuals are the fixed latency's
   distribution.  Two candidates, a shifted log-normal (shift chosen by the
   probability-plot correlation of ``log(x - shift)``, then the Gaussian MLE of
   the log) and the empirical distribution kept at ``knots`` quantiles, are
   each fitted on the even rounds and scored by the Kolmogorov-Smirnov
   distance on the odd rounds (and the other way round); the lower mean
   held-out distance wins and is refitted on everything.  The empirical body
   wins when there is much data, the log-normal when a few rounds would leave
   the empirical one with gaps.

Example (a synthetic trace: 1 s latency plus 0.25 s per partition)::

    >>> rng = np.random.default_rng(0)
    >>> R, W, loads = 40, 50, np.array([0.0, 1.0, 2.0, 4.0])
    >>> r, w, L = (a.ravel() for a in np.meshgrid(range(R), range(W), loads, indexing="ij"))
    >>> sec = 1.0 + 0.1 * rng.random(r.size) + 0.25 * L
    >>> fit = fit_clock(ClockSamples(r, w, L, sec))
    >>> round(fit.model.compute.value, 3), fit.model.stall is None
    (0.25, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import ndtr, ndtri

from .distributions import Constant, Empirical, LogNormal, Normal, Part
from .parts import ClockModel, Stall
from .traces import LoadTrace

#: Residuals this many robust standard deviations above the median are stalls.
STALL_SIGMAS = 8.0
#: Stalls start above the widest empty band at least this many times wide (ratio).
BAND = 3.0
#: Rows (round x load) smaller than this do not estimate a common shift.
MIN_ROW = 8


@dataclass(frozen=True)
class ClockSamples:
    """Measurements to fit: flat arrays, one entry per (round, worker) measurement.

    Attributes:
        round, worker, load, seconds: the round id, worker id, partitions
            computed and total seconds (``inf``: never reported; left out).
        compute: seconds spent computing, when the runtime recorded them.
        comm: seconds spent sending the message, when recorded (needs
            ``message_bytes``).
        message_bytes: bytes per message (the model's gradient size).
    """

    round: np.ndarray
    worker: np.ndarray
    load: np.ndarray
    seconds: np.ndarray
    compute: np.ndarray | None = None
    comm: np.ndarray | None = None
    message_bytes: float | None = None
    source: str = "samples"

    def __post_init__(self):
        names = ("round", "worker", "load", "seconds", "compute", "comm")
        size = np.size(self.round)
        for name in names:
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=float).ravel()
            if arr.size != size:
                raise ValueError(f"{self.source}: {name} has {arr.size} entries, expected {size}")
            object.__setattr__(self, name, arr)
        if size == 0:
            raise ValueError(f"{self.source}: no measurements")
        if self.comm is not None and self.message_bytes is None:
            raise ValueError(f"{self.source}: comm times need message_bytes")

    @classmethod
    def from_trace(cls, trace: LoadTrace) -> ClockSamples:
        R, W, K = trace.table.shape
        r, w, k = (a.ravel() for a in np.meshgrid(range(R), range(W), range(K), indexing="ij"))
        loads = np.asarray(trace.loads)
        return cls(r, w, loads[k], trace.table.ravel(), source=trace.source)


@dataclass(frozen=True)
class ClockFit:
    """A fitted :class:`ClockModel` and how well each choice fitted.

    Attributes:
        model: the fitted model (``--delay model:path=...`` once saved).
        loads, load_medians: the measured loads and their median seconds.
        body: the latency body chosen (``"empirical"`` or ``"lognormal"``).
        heldout_ks: each candidate's mean held-out Kolmogorov-Smirnov distance.
        stall_threshold: residual seconds above which a measurement is a stall.
        cells, stall_cells, crashed: measurements used, stalls among them, left out (inf).
    """

    model: ClockModel
    source: str
    loads: tuple[float, ...]
    load_medians: tuple[float, ...]
    body: str
    heldout_ks: dict = field(default_factory=dict)
    stall_threshold: float = float("inf")
    cells: int = 0
    stall_cells: int = 0
    crashed: int = 0

    def summary(self) -> dict:
        """The fit as plain JSON-ready values."""
        return {
            "source": self.source,
            "loads": list(self.loads),
            "load_medians": [round(m, 6) for m in self.load_medians],
            "body": self.body,
            "heldout_ks": {k: round(v, 6) for k, v in self.heldout_ks.items()},
            "stall_threshold": self.stall_threshold,
            "cells": self.cells,
            "stall_cells": self.stall_cells,
            "crashed": self.crashed,
        }


def robust_sd(x: np.ndarray) -> float:
    """1.4826 x the median absolute deviation: the standard deviation of a Gaussian body."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def stall_threshold(excess: np.ndarray, sigmas: float = STALL_SIGMAS, band: float = BAND):
    """Seconds above the median beyond which a measurement is a stall (``inf``: none).

    Candidates lie ``sigmas`` robust standard deviations above the median.
    When their sorted excesses (with the ``sigmas`` line in front) have an
    empty band -- consecutive values ``band`` or more times apart -- the
    widest such band separates the body's tail (kept in the body) from the
    stalls, and the threshold is its geometric middle; with no band every
    candidate is a stall.

    >>> z = np.r_[np.linspace(-0.1, 0.1, 1000), 3.0, 3.5, 40.0, 41.0]
    >>> round(float(stall_threshold(z)), 2)      # the band from 3.5 to 40
    11.83
    """
    scale = robust_sd(excess)
    if scale == 0:
        return np.inf
    line = sigmas * scale
    above = np.sort(excess[excess > line])
    if above.size == 0:
        return np.inf
    steps = np.r_[line, above]
    ratio = steps[1:] / steps[:-1]
    k = int(np.argmax(ratio))
    if ratio[k] < band:
        return float(line)
    return float(np.sqrt(steps[k] * steps[k + 1]))


def fit_clock(
    samples: ClockSamples, stall_sigmas: float = STALL_SIGMAS, knots: int = 1001
) -> ClockFit:
    """Fit a :class:`ClockModel` to ``samples`` (procedure in the module docstring)."""
    ok = np.isfinite(samples.seconds)
    if ok.sum() < 2:
        raise ValueError(f"{samples.source}: fewer than two finite measurements")
    rnd, load, sec = samples.round[ok], samples.load[ok], samples.seconds[ok]
    levels = np.unique(load)
    medians = np.array([np.median(sec[load == x]) for x in levels])
    # 1. compute per partition
    if samples.compute is not None:
        comp = samples.compute[ok]
        busy = load > 0
        if not busy.any():
            raise ValueError(f"{samples.source}: no measurement with load > 0 to time compute")
        compute: Part = Empirical.of(comp[busy] / load[busy], min(knots, 201))
        x = sec - comp
    else:
        if levels.size < 2:
            raise ValueError(
                f"{samples.source}: every measurement has load {levels[0]:g}; fitting the "
                "per-partition compute needs two or more loads (or recorded compute times)"
            )
        slope = float(np.polyfit(levels, medians, 1)[0])
        compute = Constant(max(slope, 0.0))
        x = sec - compute.value * load
    # 2. communication
    bandwidth = None
    if samples.comm is not None:
        comm = samples.comm[ok]
        sent = comm > 0
        if sent.any():
            bandwidth = Empirical.of(samples.message_bytes / comm[sent], min(knots, 201))
        x = x - comm
    # 3. common per-round shift
    z, common = _remove_row_shift(x, rnd, load)
    # 4. stalls
    center = float(np.median(z))
    threshold = stall_threshold(z - center, stall_sigmas) + center
    stalled = z > threshold
    stall = _fit_stall(stalled, z - center, rnd, load, levels) if stalled.any() else None
    # 5. latency body
    body_x, body_r = z[~stalled], rnd[~stalled]
    choice, scores = _choose_body(body_x, body_r, knots)
    latency = Empirical.of(body_x, knots) if choice == "empirical" else _fit_lognormal(body_x)
    model = ClockModel(
        latency=latency,
        compute=compute,
        bandwidth=bandwidth,
        message_bytes=samples.message_bytes if bandwidth is not None else None,
        common=common,
        stall=stall,
    )
    return ClockFit(
        model,
        samples.source,
        tuple(float(v) for v in levels),
        tuple(float(m) for m in medians),
        choice,
        scores,
        float(threshold),
        int(ok.sum()),
        int(stalled.sum()),
        int((~ok).sum()),
    )


def _rows(rnd: np.ndarray, load: np.ndarray) -> tuple[np.ndarray, int]:
    """Index of each measurement's row (round x load) and the number of rows."""
    _, inverse = np.unique(np.stack([rnd, load]), axis=1, return_inverse=True)
    inverse = np.ravel(inverse)
    return inverse, int(inverse.max()) + 1


def _remove_row_shift(x, rnd, load) -> tuple[np.ndarray, Part]:
    row, count = _rows(rnd, load)
    sizes = np.bincount(row, minlength=count)
    shift = np.zeros(count)
    for k in np.flatnonzero(sizes >= MIN_ROW):
        mine = row == k
        shift[k] = np.median(x[mine]) - np.median(x[load == load[mine][0]])
    z = x - shift[row]
    big = sizes >= MIN_ROW
    if big.sum() < 2:
        return z, Constant(0.0)
    sampling = np.pi / 2 * robust_sd(z) ** 2 / sizes[big]
    var = float(np.var(shift[big]) - sampling.mean())
    return z, (Normal(0.0, float(np.sqrt(var))) if var > 0 else Constant(0.0))


def _fit_stall(stalled, extra, rnd, load, levels) -> Stall:
    row, count = _rows(rnd, load)
    sizes = np.bincount(row, minlength=count)
    hits = np.bincount(row, weights=stalled, minlength=count)
    row_load = np.zeros(count)
    row_load[row] = load
    prob = tuple(float(np.mean(hits[row_load == x] > 0)) for x in levels)
    waves = hits > 0
    reach = hits[waves] / sizes[waves]
    share = Empirical.of(reach, min(101, max(2, reach.size)))
    sizes_s = extra[stalled]
    size = Empirical.of(sizes_s, min(101, max(2, sizes_s.size)))
    return Stall(prob, tuple(float(v) for v in levels), share, size)


def _fit_lognormal(x: np.ndarray, grid: int = 60, subsample: int = 4000) -> LogNormal:
    """Shifted log-normal by the probability-plot correlation of ``log(x - shift)``."""
    q = np.quantile(x, (np.arange(subsample) + 0.5) / subsample)
    z = ndtri((np.arange(subsample) + 0.5) / subsample)
    lo, med = float(q[0]), float(np.median(q))
    spread = max(med - lo, 1e-9)
    best = (-np.inf, lo - spread)
    for d in np.geomspace(1e-3, 1e3, grid):
        shift = lo - d * spread
        r = np.corrcoef(np.log(q - shift), z)[0, 1]
        if r > best[0]:
            best = (r, shift)
    shift = best[1]
    y = np.log(x - shift)
    return LogNormal(shift, float(np.exp(y.mean())), float(y.std()))


def cdf(part: Part, x: np.ndarray) -> np.ndarray:
    """The CDF of an empirical or shifted log-normal part at ``x``."""
    x = np.asarray(x, dtype=float)
    if isinstance(part, Empirical):
        q = np.asarray(part.quantiles)
        p = np.linspace(0, 1, q.size)
        return np.interp(x, q, p, left=0.0, right=1.0)
    if isinstance(part, LogNormal):
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(x - part.shift) - np.log(part.median)) / part.sigma
        return np.where(x > part.shift, ndtr(z), 0.0)
    raise ValueError(f"no CDF for {type(part).__name__}")


def ks_distance(part: Part, sample: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between ``sample`` and ``part``'s distribution."""
    s = np.sort(np.asarray(sample, dtype=float))
    F = cdf(part, s)
    n = s.size
    return float(max(np.max(np.arange(1, n + 1) / n - F), np.max(F - np.arange(n) / n)))


def _choose_body(x, rnd, knots) -> tuple[str, dict]:
    """Empirical vs shifted log-normal by held-out KS distance (even vs odd rounds)."""
    ids = np.unique(rnd)
    if ids.size < 2:  # nothing to hold out: the parametric form, scored in-sample
        return "lognormal", {"lognormal": ks_distance(_fit_lognormal(x), x)}
    half = np.isin(rnd, ids[::2])
    scores = {"empirical": 0.0, "lognormal": 0.0}
    for a, b in ((half, ~half), (~half, half)):
        scores["empirical"] += ks_distance(Empirical.of(x[a], knots), x[b]) / 2
        scores["lognormal"] += ks_distance(_fit_lognormal(x[a]), x[b]) / 2
    return min(scores, key=scores.get), scores


def model_quantiles(model, load: float, probs, n: int, rng: np.random.Generator, cells=200_000):
    """Quantiles ``probs`` of ``model``'s times at ``load`` (``cells`` draws, ``n`` workers)."""
    rounds = max(1, cells // n)
    return np.quantile(model.sample(rng, rounds, n, load=load), probs)
