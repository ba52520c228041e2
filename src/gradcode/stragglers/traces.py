"""Measured traces as delay models: the wide table (time ∝ load) and the long table (by load).

Two CSV formats, told apart by the header (:func:`read_trace`: a header naming
any of ``round``, ``worker``, ``load``, ``seconds`` means the long format):

* **wide** (:class:`TraceReplay`): one row per round, one column per worker,
  optional header.  Worker ``i`` in round ``r`` takes
  ``trace[r mod R, i] * load / trace_load`` -- time proportional to load.
* **long** (:class:`LoadTrace`): a header naming the columns
  ``round,worker,load,seconds`` (any order, extra columns ignored) and one
  row per measurement, ``load`` in partitions computed that round.  The rule
  (the *replay rule* the docs and tests refer to):

  - round ``r`` replays the ``(r mod R)``-th smallest measured round id and
    worker ``i`` replays worker id ``i`` (ids must be ``0 .. W-1``);
  - at a measured load the time is the measured time, exactly; between two
    measured loads it is linearly interpolated; below the smallest or above
    the largest it is extrapolated from the two nearest measured loads
    (clipped at 0).  ``inf`` (never reports) at either neighbour gives ``inf``.

  So a scheme at load ``s + 1`` pays exactly what the trace measured at that
  load -- on the AWS Lambda traces of Krishnan, Ebrahimi and Khisti
  ("Sequential gradient coding for straggler mitigation", ICLR 2023) that is
  only ~10 % more than at load 1, where a time ∝ load reading says 4x.

  Chunked schemes see the load curve's increments: the ``c``-th chunk of
  ``chunk_load`` partitions finishes at ``max(T(chunk_load), ..., T(c chunk_load))``
  (a running maximum, so noisy measurements never make a chunk take negative time).

Every malformed file is refused with one line naming the file and the row.

Example (a worker measured at loads 0 and 2; load 1 interpolates, load 3
extrapolates)::

    >>> import numpy as np
    >>> t = LoadTrace(np.array([[[1.0, 2.0]]]), loads=(0.0, 2.0))
    >>> [float(t.sample(None, 1, 1, load=L)[0, 0]) for L in (0, 1, 2, 3)]
    [1.0, 1.5, 2.0, 2.5]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .models import DelayModel, check_shape

#: Columns of the long format.
LONG_COLUMNS = ("round", "worker", "load", "seconds")


@dataclass(frozen=True)
class TraceReplay(DelayModel):
    """Replay measured times: ``trace[r % len(trace), i]`` scaled by ``load / trace_load``.

    Build from a CSV with :meth:`from_csv` (one row per round, one column per
    worker, optional header).  The generator is not used: a trace is a fixed
    schedule.
    """

    trace: np.ndarray = field(repr=False, default_factory=lambda: np.ones((1, 1)))
    trace_load: float = 1.0

    def __post_init__(self) -> None:
        t = np.asarray(self.trace, dtype=float)
        if t.ndim != 2 or t.size == 0:
            raise ValueError(f"trace must be a non-empty rounds x workers table, got {t.shape}")
        if np.isnan(t).any() or (t <= 0).any():
            raise ValueError("trace times must be positive numbers (inf allowed for crashes)")
        object.__setattr__(self, "trace", t)

    @classmethod
    def from_csv(cls, path: str | Path, trace_load: float = 1.0) -> TraceReplay:
        path = _existing(path)
        try:
            data = np.genfromtxt(path, delimiter=",", dtype=float)
        except ValueError as exc:
            raise ValueError(f"cannot parse trace {path}: {exc}") from None
        data = np.atleast_2d(data)
        first = 1
        if np.isnan(data[0]).all():  # header row
            data, first = data[1:], 2
        bad = np.flatnonzero(np.isnan(data).any(axis=1))
        if bad.size:
            line = int(bad[0]) + first
            raise ValueError(f"trace {path} line {line}: missing or non-numeric entries")
        bad = np.flatnonzero((data <= 0).any(axis=1))
        if bad.size:
            line = int(bad[0]) + first
            raise ValueError(f"trace {path} line {line}: times must be positive numbers")
        return cls(data, trace_load)

    def unit(self, rng, shape):
        rounds, n = shape[0], shape[1]
        if n > self.trace.shape[1]:
            raise ValueError(f"trace has {self.trace.shape[1]} workers, asked for n={n}")
        rows = self.trace[np.arange(rounds) % self.trace.shape[0], :n] / self.trace_load
        if len(shape) == 3:  # chunks: split each worker's time evenly
            return np.repeat(rows[:, :, None] / shape[2], shape[2], axis=2)
        return rows


@dataclass(frozen=True)
class LoadTrace(DelayModel):
    """Replay a long-format trace: measured times at measured loads (module docstring).

    Attributes:
        table: ``(R, W, K)`` seconds of round ``r``, worker ``i`` at ``loads[k]``.
        loads: the ``K >= 2`` measured loads, increasing.
        rounds: the measured round ids (``R``), increasing (for messages and fits).
        source: where it came from (for messages).
    """

    table: np.ndarray = field(repr=False, default_factory=lambda: np.ones((1, 1, 2)))
    loads: tuple[float, ...] = (0.0, 1.0)
    rounds: tuple[int, ...] | None = None
    source: str = "trace"

    load_aware = True

    def __post_init__(self) -> None:
        t = np.asarray(self.table, dtype=float)
        loads = tuple(float(x) for x in self.loads)
        if t.ndim != 3 or t.size == 0:
            raise ValueError(f"{self.source}: need a rounds x workers x loads table, got {t.shape}")
        if len(loads) != t.shape[2] or len(loads) < 2:
            raise ValueError(
                f"{self.source}: needs at least two measured loads (got {len(loads)}); "
                "a single load has no load dependence: use the wide format (time ∝ load)"
            )
        if any(b <= a for a, b in zip(loads, loads[1:], strict=False)) or loads[0] < 0:
            raise ValueError(f"{self.source}: loads must be distinct, >= 0 and increasing")
        if np.isnan(t).any() or (t < 0).any():
            raise ValueError(f"{self.source}: times must be numbers >= 0 (inf = never reports)")
        t.setflags(write=False)
        rounds = tuple(range(t.shape[0])) if self.rounds is None else tuple(self.rounds)
        object.__setattr__(self, "table", t)
        object.__setattr__(self, "loads", loads)
        object.__setattr__(self, "rounds", rounds)

    @classmethod
    def from_csv(cls, path: str | Path) -> LoadTrace:
        """Read the long format; refuse a malformed file with one line naming the row."""
        return read_long_csv(path)

    @property
    def workers(self) -> int:
        return self.table.shape[1]

    def select_workers(self, workers) -> LoadTrace:
        """The same trace restricted to ``workers`` (renumbered ``0..len-1``)."""
        idx = np.asarray(workers, dtype=int)
        return LoadTrace(self.table[:, idx, :], self.loads, self.rounds, self.source)

    def _rows(self, rounds: int, n: int) -> np.ndarray:
        check_shape(rounds, n)
        if n > self.workers:
            raise ValueError(f"trace {self.source} has {self.workers} workers, asked for n={n}")
        return self.table[np.arange(rounds) % self.table.shape[0], :n, :]

    def sample(self, rng, rounds, n, load=1.0):
        """Times at per-worker ``load`` (scalar or length ``n``); ``rng`` is not used."""
        return at_loads(self._rows(rounds, n), self.loads, load)

    def sample_chunks(self, rng, rounds, n, chunks):
        return self.chunk_times(rng, rounds, n, chunks)

    def chunk_times(self, rng, rounds, n, chunks, chunk_load=1.0):
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        rows = self._rows(rounds, n)
        finish = np.stack(
            [at_loads(rows, self.loads, c * chunk_load) for c in range(1, chunks + 1)], axis=-1
        )
        return load_increments(finish)


def at_loads(values: np.ndarray, loads, load) -> np.ndarray:
    """The replay rule: ``values[..., i, k]`` measured at ``loads[k]``, read at
    ``load`` (scalar or one per worker ``i``) -> ``(..., n)``.

    Exact at measured loads, linear in between, extrapolated from the two
    nearest measured loads outside them (clipped at 0).

    >>> at_loads(np.array([[[1.0, 3.0, 4.0]]]), (1.0, 2.0, 4.0), [3.0]).tolist()
    [[3.5]]
    """
    values = np.asarray(values, dtype=float)
    grid = np.asarray(loads, dtype=float)
    n, K = values.shape[-2], values.shape[-1]
    L = np.broadcast_to(np.asarray(load, dtype=float), (n,))
    if np.isnan(L).any() or np.isinf(L).any():
        raise ValueError(f"load must be finite, got {load!r}")
    cols = np.arange(n)
    j = np.clip(np.searchsorted(grid, L, side="right") - 1, 0, K - 2)
    a, b = values[..., cols, j], values[..., cols, j + 1]
    w = (L - grid[j]) / (grid[j + 1] - grid[j])
    with np.errstate(invalid="ignore"):
        out = np.maximum(a + w * (b - a), 0.0)
    out = np.where(np.isinf(a) | np.isinf(b), np.inf, out)
    k = np.clip(np.searchsorted(grid, L), 0, K - 1)
    measured = grid[k] == L
    return np.where(measured, values[..., cols, k], out)


def load_increments(finish: np.ndarray) -> np.ndarray:
    """Per-chunk times from finishing times ``(..., chunks)`` at growing loads.

    A running maximum first, so each increment is ``>= 0``; after an ``inf``
    every increment is ``inf``.

    >>> load_increments(np.array([2.0, 1.5, 3.0, np.inf])).tolist()
    [2.0, 0.0, 1.0, inf]
    """
    F = np.maximum.accumulate(np.asarray(finish, dtype=float), axis=-1)
    with np.errstate(invalid="ignore"):
        inc = np.diff(F, axis=-1, prepend=0.0)
    inc[np.isinf(F)] = np.inf
    return inc


def _existing(path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trace file not found: {path}")
    return path


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        first = next(csv.reader(fh), [])
    return [c.strip().lower() for c in first]


def is_long_format(path: str | Path) -> bool:
    """Does the CSV's header name any of the long format's columns ``round,worker,load,seconds``?

    (Any, so that a long table missing a column is refused as such rather
    than read as a wide table.)
    """
    return bool(set(LONG_COLUMNS) & set(_header(_existing(path))))


def read_trace(path: str | Path, trace_load: float | None = None) -> DelayModel:
    """A trace from a CSV, long or wide format (told apart by the header).

    ``trace_load`` (partitions the wide table's times were measured at,
    default 1) applies to the wide format only.
    """
    if is_long_format(path):
        if trace_load is not None:
            raise ValueError(
                f"trace {path}: trace_load applies to the wide format only; "
                "the long format names each measurement's load"
            )
        return read_long_csv(path)
    return TraceReplay.from_csv(path, 1.0 if trace_load is None else trace_load)


def _integer(text: str, what: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if not (np.isfinite(value) and value >= 0 and value == int(value)):
        raise ValueError(f"{where}: {what} must be an integer >= 0, got {text!r}")
    return int(value)


def _number(text: str, what: str, where: str, allow_inf: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: {what} {text!r} is not a number") from None
    if np.isnan(value) or (np.isinf(value) and not (allow_inf and value > 0)):
        raise ValueError(f"{where}: {what} must be a finite number, got {text!r}")
    if value < 0:
        raise ValueError(f"{where}: {what} must be >= 0, got {text!r}")
    return value


def read_long_csv(path: str | Path) -> LoadTrace:
    """Parse ``round,worker,load,seconds`` rows into a :class:`LoadTrace`.

    Refused, with one line naming the file and the line: a missing column, a
    short row, a non-numeric or negative value, a repeated measurement, a
    worker id missing from ``0..W-1`` and a (round, worker, load) cell with no
    row.  ``seconds`` may be ``inf`` (the worker never reported).
    """
    path = _existing(path)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [c.strip().lower() for c in next(reader, [])]
        missing = [c for c in LONG_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"trace {path} line 1: header lacks column(s) {', '.join(missing)}")
        col = {c: header.index(c) for c in LONG_COLUMNS}
        rows: list[tuple[int, int, float, float, int]] = []
        for line, row in enumerate(reader, start=2):
            if not any(x.strip() for x in row):
                continue
            where = f"trace {path} line {line}"
            if len(row) < len(header):
                raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
            r = _integer(row[col["round"]], "round", where)
            w = _integer(row[col["worker"]], "worker", where)
            load = _number(row[col["load"]], "load", where, allow_inf=False)
            sec = _number(row[col["seconds"]], "seconds", where, allow_inf=True)
            rows.append((r, w, load, sec, line))
    if not rows:
        raise ValueError(f"trace {path}: no measurements after the header")
    rid = sorted({x[0] for x in rows})
    lid = sorted({x[2] for x in rows})
    workers = 1 + max(x[1] for x in rows)
    seen_workers = {x[1] for x in rows}
    if len(seen_workers) != workers:
        gap = min(set(range(workers)) - seen_workers)
        raise ValueError(f"trace {path}: no row for worker {gap} (worker ids must be 0..W-1)")
    if len(lid) < 2:
        raise ValueError(
            f"trace {path}: every row has load {lid[0]:g}; the long format needs at least two "
            "measured loads (use the wide format for time ∝ load)"
        )
    r_at = {r: k for k, r in enumerate(rid)}
    l_at = {x: k for k, x in enumerate(lid)}
    table = np.full((len(rid), workers, len(lid)), np.nan)
    first = np.zeros(table.shape, dtype=np.int64)
    for r, w, load, sec, line in rows:
        cell = (r_at[r], w, l_at[load])
        if first[cell]:
            raise ValueError(
                f"trace {path} line {line}: repeats round {r}, worker {w}, load {load:g} "
                f"(first at line {first[cell]})"
            )
        table[cell], first[cell] = sec, line
    holes = np.argwhere(np.isnan(table))
    if holes.size:
        r, w, k = holes[0]
        raise ValueError(
            f"trace {path}: no row for round {rid[r]}, worker {w}, load {lid[k]:g} "
            f"({len(holes)} cell(s) missing; every round x worker x load needs one)"
        )
    return LoadTrace(table, tuple(lid), tuple(rid), str(path))
