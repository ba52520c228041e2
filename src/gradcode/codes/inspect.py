"""Summaries of a code for people: load, tolerance, worst-case conditioning."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .base import GradientCode


@dataclass(frozen=True)
class CodeReport:
    """What ``gradcode codes show`` prints after the code's own :meth:`describe` lines."""

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
    #: Straggler sets meant to be checked (more than ``patterns_checked``: time ran out).
    patterns_planned: int = 0
    seconds: float | None = None

    def lines(self) -> list[str]:
        """The check's result as printed lines."""
        scope = "all" if self.exhaustive else "random sample of"
        what = f"{scope} {self.patterns_checked}"
        stop = ""
        if self.patterns_checked < self.patterns_planned:
            what = f"{self.patterns_checked} of {scope} {self.patterns_planned}"
            stop = f" (stopped at the {self.seconds:g} s time limit)"
        verdict = (
            "all decode exactly" if self.all_exact else f"worst residual {self.worst_residual:.3g}"
        )
        return [
            f"checked {what} straggler sets of size {self.s}{stop}: {verdict}",
            f"worst conditioning: cond(B_K) = {self.worst_cond:.3g}, "
            f"max |a_i| = {self.worst_max_weight:.3g}",
        ]


def straggler_patterns(
    n: int, s: int, rng: np.random.Generator, limit: int = 5000
) -> tuple[Iterator[tuple[int, ...]], int, bool]:
    """``(patterns, count, exhaustive)``: all straggler sets of size ``s`` if there are at
    most ``limit``, else ``limit`` random ones, drawn lazily (a huge ``limit`` costs
    nothing until its sets are used).

    >>> sets, count, every = straggler_patterns(4, 1, np.random.default_rng(0))
    >>> list(sets), count, every
    ([(0,), (1,), (2,), (3,)], 4, True)
    """
    total = math.comb(n, s)
    if total <= limit:
        return itertools.combinations(range(n), s), total, True
    draws = (tuple(sorted(rng.choice(n, s, replace=False))) for _ in range(limit))
    return draws, limit, False


def report(
    code: GradientCode, rng: np.random.Generator, limit: int = 5000, seconds: float | None = None
) -> CodeReport:
    """Decode every (or ``limit`` random) straggler set of size ``s``; collect the worst case.

    ``seconds``: stop decoding once this much time has passed (at least one set is
    decoded); the report says how many were checked.
    """
    patterns, planned, exhaustive = straggler_patterns(code.n, code.s, rng, limit)
    worst_cond = worst_w = worst_res = 0.0
    all_exact, checked = True, 0
    start = time.perf_counter()
    for stragglers in patterns:
        if checked and seconds is not None and time.perf_counter() - start > seconds:
            break
        out = set(stragglers)
        d = code.decode([i for i in range(code.n) if i not in out])
        checked += 1
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
        patterns_checked=checked,
        exhaustive=exhaustive,
        all_exact=all_exact,
        worst_cond=worst_cond,
        worst_max_weight=worst_w,
        worst_residual=worst_res,
        patterns_planned=planned,
        seconds=seconds,
    )


@dataclass(frozen=True)
class RobustnessRow:
    """How a scheme fares against random straggler sets of one size."""

    name: str
    stragglers: int
    exact_fraction: float
    mean_residual: float
    worst_cond: float
    trials: int = 0  # straggler sets decoded (fewer than asked when time ran out)


def robustness(
    code: GradientCode,
    stragglers: int,
    rng: np.random.Generator,
    trials: int = 1000,
    seconds: float | None = None,
) -> RobustnessRow:
    """Decode ``trials`` uniformly random straggler sets of the given size (or as many as
    ``seconds`` allow, at least one)."""
    exact, residuals, worst = 0, [], float("nan")
    start = time.perf_counter()
    for _ in range(trials):
        if residuals and seconds is not None and time.perf_counter() - start > seconds:
            break
        out = set(rng.choice(code.n, stragglers, replace=False).tolist())
        d = code.decode([i for i in range(code.n) if i not in out])
        exact += d.exact
        residuals.append(d.residual)
        if not np.isnan(d.cond):
            worst = d.cond if np.isnan(worst) else max(worst, d.cond)
    done = len(residuals)
    return RobustnessRow(
        code.name, stragglers, exact / done, float(np.mean(residuals)), worst, done
    )
