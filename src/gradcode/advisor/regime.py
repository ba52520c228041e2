"""What kind of cluster is this?  The regime of a table of measured worker times.

Input: seconds ``values[r, i, k]`` of worker ``i`` in round ``r`` at load
``loads[k]`` (a long-format trace, a run's own measurements, or draws of a
delay model).  :func:`characterise` answers the questions that decide which
scheme wins (docs/clock.md, "When is redundancy cheap?"):

* **typical worker and tail** -- the median time at the reference load
  (load 1 when measured) and the pooled 90 %, 99 % and largest times relative
  to it; each worker's own median and 90 % quantile over rounds;
* **load dependence** -- the per-partition compute time (the slope of the
  per-load medians: the clock fit's compute part, :func:`~gradcode.stragglers.fit_clock`),
  the fixed remainder and its share of a load-1 round, and the ratio
  ``time(load L) / time(load 1)`` for the loads the schemes would compute.
  A fixed share >= 75 % is *latency-bound* (redundancy nearly free), <= 25 %
  *compute-bound* (load ``s + 1`` costs ``s + 1`` times), else *mixed*;
* **persistence** -- the Spearman rank correlation of the workers' times
  between consecutive rounds (0: a worker's rank says nothing about the next
  round; 1: the same order every round), and the *persistently slow workers*
  by id: a median over rounds ``>= slow_factor`` times the typical worker's
  (needs 3 or more rounds);
* **stalls and crashes** -- measurements far above the body (the clock fit's
  stall rule, :func:`~gradcode.stragglers.fit.stall_threshold`), and workers
  that never report (``inf``) from some round on.

>>> import numpy as np
>>> t = np.ones((4, 6, 2)) * [1.0, 1.1]      # 1 s at load 1, 1.1 s at load 2
>>> t[:, 5, :] *= 3                           # worker 5 is always 3x slower
>>> r = characterise(t, (1.0, 2.0), max_load=2)
>>> r.kind, r.load_ratio, r.slow_workers
('latency-bound', {'2': 1.1}, ((5, 3.0),))
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata

from ..stragglers.fit import stall_threshold
from ..stragglers.traces import at_loads

#: A worker whose median time is this many times the typical worker's is persistently slow.
SLOW_FACTOR = 1.5
#: Fixed (load-independent) share of a load-1 round above which the cluster is latency-bound,
#: and below which (1 - it) it is compute-bound.
LATENCY_BOUND = 0.75


@dataclass(frozen=True)
class Regime:
    """The regime of a table of worker times (module docstring); :meth:`to_dict` for JSON."""

    source: str
    rounds: int
    workers: int
    loads: tuple[float, ...]
    load_basis: str
    reference_load: float
    median: float
    tail: dict
    per_worker_median: tuple[float, ...]
    per_worker_p90: tuple[float, ...]
    per_partition: float
    fixed: float
    fixed_share: float
    load_ratio: dict
    kind: str
    rank_correlation: float | None
    slow_workers: tuple[tuple[int, float], ...]
    stalls: dict
    crashes: tuple[dict, ...]

    @property
    def persistent(self) -> bool:
        """Slow workers stay slow (identified ids, or rank correlation above 0.5)."""
        return bool(self.slow_workers) or (self.rank_correlation or 0.0) > 0.5

    def ratio(self, load: float) -> float:
        """``time(load) / time(reference load)`` of the typical worker (tabulated, else
        the fixed part plus ``load`` x the per-partition slope)."""
        if f"{load:g}" in self.load_ratio:
            return self.load_ratio[f"{load:g}"]
        if self.median <= 0:
            return 1.0
        return (self.fixed + self.per_partition * load) / self.median

    def to_dict(self) -> dict:
        d = asdict(self)
        d["loads"] = list(self.loads)
        d["per_worker_median"] = list(self.per_worker_median)
        d["per_worker_p90"] = list(self.per_worker_p90)
        d["slow_workers"] = [{"worker": w, "median_vs_typical": x} for w, x in self.slow_workers]
        d["crashes"] = list(self.crashes)
        d["persistent"] = self.persistent
        return d


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits) if np.isfinite(x) else float(x)


def characterise(
    values: np.ndarray,
    loads,
    max_load: float = 5.0,
    linear: bool = False,
    source: str = "measurements",
    slow_factor: float = SLOW_FACTOR,
    fit=None,
) -> Regime:
    """The :class:`Regime` of ``values`` ``(rounds, workers, len(loads))`` seconds.

    ``linear``: the table holds one load and time is *assumed* proportional
    to load (a wide trace, or a run that logged no compute times).
    ``max_load``: the largest load whose ratio to load 1 is reported.
    ``fit``: the :class:`~gradcode.stragglers.ClockFit` of the same table, whose
    stall part then describes the stalls (else the fit's stall rule is applied
    to the reference load's times alone).
    """
    values = np.asarray(values, dtype=float)
    loads = tuple(float(x) for x in loads)
    R, W, K = values.shape
    if linear:
        if K != 1 or not loads[0] > 0:
            raise ValueError(f"{source}: time ∝ load needs one measured load > 0, got {loads}")
        ref, X = 1.0, values[:, :, 0] / loads[0]
    elif K == 1:
        ref, X = loads[0], values[:, :, 0]
    else:
        ref, X = 1.0, at_loads(values, loads, 1.0)
    finite = np.isfinite(X)
    body = X[finite]
    if body.size == 0:
        raise ValueError(f"{source}: no worker ever reported (every time is inf)")
    med = float(np.median(body))
    scale = med if med > 0 else 1.0
    tail = {
        "p90": _r(np.quantile(body, 0.9) / scale),
        "p99": _r(np.quantile(body, 0.99) / scale),
        "max": _r(body.max() / scale),
    }
    with np.errstate(all="ignore"):
        masked = np.where(finite, X, np.nan)
        wmed = np.array([np.nanmedian(c) if np.isfinite(c).any() else np.inf for c in masked.T])
        wp90 = np.array(
            [np.nanquantile(c, 0.9) if np.isfinite(c).any() else np.inf for c in masked.T]
        )
    # load dependence
    ratio_loads = [float(L) for L in range(2, int(max_load) + 1)]
    if linear:
        slope, basis = med / ref, "assumed: time ∝ load (one measured load)"
        load_ratio = {f"{L:g}": _r(L / ref) for L in ratio_loads}
    elif K == 1:
        slope, basis = 0.0, "unknown: one measured load, no load dependence"
        load_ratio = {}
    else:
        levels = np.array(loads)
        meds = np.array([np.median(_finite(values[:, :, k])) for k in range(K)])
        slope = max(float(np.polyfit(levels, meds, 1)[0]), 0.0)
        basis = "measured at loads " + ", ".join(f"{x:g}" for x in loads)
        load_ratio = {
            f"{L:g}": _r(np.median(_finite(at_loads(values, loads, L))) / scale)
            for L in ratio_loads
        }
    fixed = max(med - slope * ref, 0.0)
    share = min(fixed / scale, 1.0)
    kind = (
        "latency-bound"
        if share >= LATENCY_BOUND
        else "compute-bound"
        if share <= 1 - LATENCY_BOUND
        else "mixed"
    )
    # persistence
    rho = _rank_correlation(X) if R >= 2 else None
    slow: tuple[tuple[int, float], ...] = ()
    if R >= 3:
        typical = float(np.median(wmed[np.isfinite(wmed)])) if np.isfinite(wmed).any() else 0
        if typical > 0:
            ids = np.flatnonzero(np.isfinite(wmed) & (wmed >= slow_factor * typical))
            slow = tuple((int(i), _r(wmed[i] / typical, 3)) for i in ids)
    return Regime(
        source=source,
        rounds=R,
        workers=W,
        loads=loads,
        load_basis=basis,
        reference_load=ref,
        median=_r(med),
        tail=tail,
        per_worker_median=tuple(_r(x) for x in wmed),
        per_worker_p90=tuple(_r(x) for x in wp90),
        per_partition=_r(slope, 6),
        fixed=_r(fixed),
        fixed_share=_r(share, 3),
        load_ratio=load_ratio,
        kind=kind,
        rank_correlation=None if rho is None else _r(rho, 3),
        slow_workers=slow,
        stalls=_stalls(X, med) if fit is None else _fitted_stalls(fit),
        crashes=_crashes(values),
    )


def _finite(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)] if np.isfinite(x).any() else np.array([np.inf])


def _rank_correlation(X: np.ndarray) -> float | None:
    """Mean Spearman correlation of worker times between consecutive rounds (``inf`` ranks last)."""
    ranks = rankdata(np.where(np.isfinite(X), X, np.inf), axis=1)
    a, b = ranks[:-1], ranks[1:]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ok = den > 0
    if not ok.any():
        return None
    return float(np.mean((a * b).sum(axis=1)[ok] / den[ok]))


def _stalls(X: np.ndarray, med: float) -> dict:
    """Measurements beyond the clock fit's stall threshold, at the reference load."""
    finite = np.isfinite(X)
    excess = X[finite] - med
    threshold = stall_threshold(excess)
    if not np.isfinite(threshold):
        return {"threshold": None, "cells": 0, "fraction": 0.0, "rounds_with_stall": 0.0}
    hit = finite & (X - med > threshold)
    return {
        "threshold": _r(threshold),
        "cells": int(hit.sum()),
        "fraction": _r(hit.mean(), 6),
        "rounds_with_stall": _r(hit.any(axis=1).mean(), 4),
        "median_size": _r(float(np.median(X[hit] - med))) if hit.any() else None,
    }


def _fitted_stalls(fit) -> dict:
    """The clock fit's stall part: waves per round, by load (``gradcode trace fit``)."""
    st = fit.model.stall
    if st is None:
        return {"threshold": None, "cells": 0, "fraction": 0.0, "wave_prob": {}}
    return {
        "threshold": _r(fit.stall_threshold),
        "cells": fit.stall_cells,
        "fraction": _r(fit.stall_cells / max(fit.cells, 1), 6),
        "wave_prob": {f"{L:g}": _r(p, 3) for L, p in zip(st.loads, st.prob, strict=True)},
        "median_share": _r(float(st.share.quantile(0.5)), 4),
        "median_size": _r(float(st.size.quantile(0.5))),
    }


def _crashes(values: np.ndarray) -> tuple[dict, ...]:
    """Workers that never report (``inf`` at every load) in some round: from when, how often."""
    dead = np.isinf(values).all(axis=2)
    out = []
    for w in np.flatnonzero(dead.any(axis=0)):
        rounds = np.flatnonzero(dead[:, w])
        out.append(
            {
                "worker": int(w),
                "from_round": int(rounds[0]),
                "rounds": int(rounds.size),
                "permanent": bool(dead[rounds[0] :, w].all()),
            }
        )
    return tuple(out)
