"""Summaries of a code for people: load, tolerance, worst-case conditioning."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .base import GradientCode


@dataclass(frozen=True)
class CodeReport:
    """What ``gradcode codes show`` prints."""

    name: str
    n: int
    s: int
    load: int
    replication: int
    exact_design: bool
    patterns_checked: int
    exhaustive: bool
    all_exact: bool
    worst_cond: float
    worst_max_weight: float
    worst_residual: float


def straggler_patterns(
    n: int, s: int, rng: np.random.Generator, limit: int = 5000
) -> tuple[list[tuple[int, ...]], bool]:
    """All straggler sets of size ``s`` if there are at most ``limit``, else a random sample."""
    total = math.comb(n, s)
    if total <= limit:
        return list(itertools.combinations(range(n), s)), True
    return [tuple(sorted(rng.choice(n, s, replace=False))) for _ in range(limit)], False


def report(code: GradientCode, rng: np.random.Generator, limit: int = 5000) -> CodeReport:
    """Decode every (or ``limit`` random) straggler set of size ``s``; collect the worst case."""
    patterns, exhaustive = straggler_patterns(code.n, code.s, rng, limit)
    worst_cond = worst_w = worst_res = 0.0
    all_exact = True
    for stragglers in patterns:
        arrived = [i for i in range(code.n) if i not in stragglers]
        d = code.decode(arrived)
        all_exact &= d.exact
        worst_cond = max(worst_cond, d.cond if np.isfinite(d.cond) else np.inf)
        worst_w = max(worst_w, d.max_abs_weight)
        worst_res = max(worst_res, d.residual)
    return CodeReport(
        name=code.name,
        n=code.n,
        s=code.s,
        load=code.load,
        replication=int(np.max(np.count_nonzero(code.B, axis=0))),
        exact_design=code.exact_design,
        patterns_checked=len(patterns),
        exhaustive=exhaustive,
        all_exact=all_exact,
        worst_cond=worst_cond,
        worst_max_weight=worst_w,
        worst_residual=worst_res,
    )


@dataclass(frozen=True)
class RobustnessRow:
    """How a scheme fares against random straggler sets of one size."""

    name: str
    stragglers: int
    exact_fraction: float
    mean_residual: float
    worst_cond: float


def robustness(
    code: GradientCode, stragglers: int, rng: np.random.Generator, trials: int = 1000
) -> RobustnessRow:
    """Decode ``trials`` uniformly random straggler sets of the given size."""
    exact, residuals, worst = 0, [], float("nan")
    for _ in range(trials):
        out = set(rng.choice(code.n, stragglers, replace=False).tolist())
        d = code.decode([i for i in range(code.n) if i not in out])
        exact += d.exact
        residuals.append(d.residual)
        if not np.isnan(d.cond):
            worst = d.cond if np.isnan(worst) else max(worst, d.cond)
    return RobustnessRow(code.name, stragglers, exact / trials, float(np.mean(residuals)), worst)
