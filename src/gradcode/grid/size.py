"""How big a grid is, counted without expanding it: cells, skipped cells, tuning runs.

A grid is a union of sub-grids (``[grid]`` and each ``[[grids]]``), each a
product of axes, deduplicated by cell.  A cell is (scheme, ``s``) x straggler
model x seed x dataset/model x partitioning, so each sub-grid is a *box*: one
set per axis, the (scheme, ``s``) pairs a scheme cannot be built for taken out.
The union's size is counted by inclusion-exclusion (:func:`union_size`), so
``gradcode experiment run`` prints and caps a grid of a million cells in
milliseconds, before a single cell exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..runtime.stale import stale_schemes


@dataclass(frozen=True)
class GridSize:
    """What a grid will run: cells, cells skipped (scheme not buildable), tuning runs."""

    cells: int
    skipped: int
    tuning_runs: int
    exact: bool = True  # False: counts are upper bounds (too many overlapping sub-grids)

    @property
    def runs(self) -> int:
        """Training runs in all: reported cells plus tuning runs."""
        return self.cells + self.tuning_runs


#: Most overlapping sub-grid intersections :func:`union_size` adds up before it gives
#: an upper bound instead (a grid file has a handful of sub-grids; never reached there).
MAX_TERMS = 1 << 16


def union_size(boxes: list[tuple[frozenset, ...]]) -> tuple[int, bool]:
    """Size of a union of product sets ("boxes", one frozenset per axis), and whether exact.

    Inclusion-exclusion over the boxes: the intersection of boxes is the box of
    the axes' intersections, and a subset whose intersection is empty adds
    nothing (nor does any superset of it), so the search stops there.  Identical
    boxes count once.  Past :data:`MAX_TERMS` terms, the sum of the box sizes
    (an upper bound) is returned with ``False``.

    >>> a = (frozenset({1, 2}), frozenset({"x"}))
    >>> b = (frozenset({2, 3}), frozenset({"x", "y"}))
    >>> union_size([a, b]), union_size([a, a]), union_size([])
    ((5, True), (2, True), (0, True))
    """
    boxes = list(dict.fromkeys(boxes))
    size = lambda box: math.prod(len(axis) for axis in box)  # noqa: E731
    total = terms = 0
    stack = [(i, boxes[i], 1) for i in reversed(range(len(boxes)))]
    while stack:  # one entry per subset of boxes (indices increasing), depth first
        i, box, sign = stack.pop()
        n = size(box)
        if n == 0:
            continue
        terms += 1
        if terms > MAX_TERMS:
            return sum(size(b) for b in boxes), False
        total += sign * n
        for j in reversed(range(i + 1, len(boxes))):
            stack.append((j, tuple(a & b for a, b in zip(box, boxes[j], strict=True)), -sign))
    return total, True


def grid_size(cfg, invalid: dict) -> GridSize:
    """Cells, skipped cells and tuning runs of an
    :class:`~gradcode.grid.schema.ExperimentConfig` (``invalid``: its (scheme, ``s``)
    pairs that cannot be built, :func:`gradcode.grid.checks.invalid_pairs`)."""
    tune = cfg.tune

    def boxes(valid_only: bool, tuning: bool = False, only=None) -> list[tuple[frozenset, ...]]:
        out = []
        for g in cfg.grids:
            pairs = {(sch, s) for sch in g.schemes for s in g.s if only is None or sch in only}
            if valid_only:
                pairs -= set(invalid)
            seeds = {tune.seed} if tuning else g.seeds
            strags = {tune.straggler} if tuning and tune.straggler is not None else g.stragglers
            tasks = {(t.dataset, t.model) for t in g.tasks}
            out.append(tuple(map(frozenset, (pairs, strags, seeds, tasks, g.partitionings))))
        return out

    cells, exact = union_size(boxes(True))
    every, exact_every = union_size(boxes(False))
    tuning = 0
    if tune is not None and cells:
        # stale schemes run every candidate once per [tune] stale_correction
        per = len(tune.lr) * max(1, len(tune.momentum))
        stale = frozenset(stale_schemes()) if tune.stale_correction else frozenset()
        bases, exact_bases = union_size(boxes(True, tuning=True))
        stale_bases, exact_stale = union_size(boxes(True, tuning=True, only=stale))
        tuning = per * (bases + stale_bases * (len(tune.stale_correction) - 1))
        exact = exact and exact_bases and exact_stale
    return GridSize(cells, max(every - cells, 0), tuning, exact and exact_every)


__all__ = ["MAX_TERMS", "GridSize", "grid_size", "union_size"]
