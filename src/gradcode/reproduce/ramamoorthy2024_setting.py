"""The setting of the partial-straggler reproduction: configuration, random draws, graphs.

What :mod:`gradcode.reproduce.ramamoorthy2024` (the command) and
:mod:`gradcode.reproduce.ramamoorthy2024_panels` (its figures) share; the paper,
settings and panels are described in :mod:`gradcode.reproduce.ramamoorthy2024`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from ..codes.ordering import (
    ChunkAssignment,
    circulant_adjacency,
    graph_assignment,
    optimal_order,
)
from ..comm import CommModel
from . import partial_protocols as pp

M = 20
DELTAS = (4, 5)
MAX_FAIL = 0.1
FAILURES = ("uniform", "bernoulli", "none")
CHUNK_MODELS = ("iid", "persistent")


@dataclass(frozen=True)
class Config:
    """Settings of the reproduction (defaults: the paper's setting as reconstructed)."""

    m: int = M
    N: int | None = None  # default m
    deltas: tuple[int, ...] = DELTAS
    ls: tuple[int, ...] | None = None  # default 1 .. delta - 1
    trials: int = 1000
    failures: str = "uniform"
    max_fail: float = MAX_FAIL
    chunk_model: str = "iid"
    comm: CommModel = field(default_factory=CommModel)
    tandon_p: int | None = None  # default 2 delta: tolerates a 2x slowdown
    n_random: int = 20

    def __post_init__(self) -> None:
        N = self.m if self.N is None else self.N
        object.__setattr__(self, "N", N)
        if not isinstance(self.trials, (int, np.integer)) or self.trials < 2:
            raise ValueError(f"trials must be an integer >= 2, got {self.trials!r}")
        if self.m < 4 or N % self.m:
            raise ValueError(f"need m >= 4 and N a multiple of m, got m={self.m}, N={N}")
        if not self.deltas or any(not 2 <= d < self.m for d in self.deltas):
            raise ValueError(f"every delta must satisfy 2 <= delta < m={self.m}: {self.deltas}")
        for d in self.deltas:
            if (d - 1) % 2 and self.m % 2:
                raise ValueError(f"delta={d} needs an even m (a {d - 1}-regular graph)")
        if self.ls is not None and any(not 1 <= l < min(self.deltas) for l in self.ls):
            raise ValueError(f"every l must satisfy 1 <= l < delta, got {self.ls}")
        if self.failures not in FAILURES:
            raise ValueError(f"failures must be one of {', '.join(FAILURES)}: {self.failures!r}")
        if not 0 <= self.max_fail < 1:
            raise ValueError(f"max_fail must be in [0, 1), got {self.max_fail}")
        if self.chunk_model not in CHUNK_MODELS:
            raise ValueError(f"chunk model must be one of {', '.join(CHUNK_MODELS)}")

    def levels(self, delta: int) -> tuple[int, ...]:
        return tuple(l for l in (self.ls or range(1, delta)) if l < delta)


def _ints(text, what: str) -> tuple[int, ...] | None:
    if text is None or isinstance(text, tuple):
        return text
    try:
        return tuple(int(x) for x in str(text).split(",") if x.strip())
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def config_from_options(*, latency=0.0, bandwidth=float("inf"), deltas=DELTAS, ls=None, **kw):
    """A :class:`Config` from CLI-style options (comma-separated lists, comm parameters)."""
    return Config(
        deltas=_ints(deltas, "deltas"),
        ls=_ints(ls, "ls"),
        comm=CommModel(latency, bandwidth),
        **kw,
    )


# --- random draws -------------------------------------------------------------------------


def failed_workers(cfg: Config, trials: int, rng: np.random.Generator) -> np.ndarray:
    """``(trials, m)`` boolean: which workers fail in each trial."""
    mask = np.zeros((trials, cfg.m), dtype=bool)
    if cfg.failures == "bernoulli":
        return rng.random((trials, cfg.m)) < cfg.max_fail
    if cfg.failures == "uniform":
        fails = rng.integers(0, int(round(cfg.max_fail * cfg.m)) + 1, size=trials)
        for t in np.flatnonzero(fails):  # loop over trials only to place failures
            mask[t, rng.choice(cfg.m, fails[t], replace=False)] = True
    return mask


def draw_times(cfg, load, size, failed, speed, rng) -> np.ndarray:
    """``(trials, m, load)`` times of pieces of ``size`` (in units of ``1 / m`` of the data)."""
    trials = len(failed)
    if cfg.chunk_model == "iid":
        times = 1.0 + rng.exponential(1.0, size=(trials, cfg.m, load))
    else:
        times = np.repeat(speed[:, :, None], load, axis=2)
    times = times * size
    times[failed] = np.inf
    return times


def chunk_times(
    trials: int, m: int, load: int, rng: np.random.Generator, max_fail: float = MAX_FAIL
) -> np.ndarray:
    """``(trials, m, load)`` i.i.d. ``1 + Exp(1)`` chunk times, uniform failures (defaults)."""
    cfg = Config(m=m, deltas=(min(4, m - 1),), max_fail=max_fail, trials=max(trials, 2))
    failed = failed_workers(cfg, trials, rng)
    return draw_times(cfg, load, 1.0, failed, None, rng)


@dataclass(frozen=True)
class Draw:
    """One Monte-Carlo batch: chunk times of the assignment, piece times of Tandon's scheme."""

    times: np.ndarray
    piece_times: np.ndarray
    tandon: object


def draw(cfg: Config, a: ChunkAssignment, delta: int, rng: np.random.Generator) -> Draw:
    failed = failed_workers(cfg, cfg.trials, rng)
    speed = 1.0 + rng.exponential(1.0, size=(cfg.trials, cfg.m))
    times = draw_times(cfg, int(a.loads.max()), cfg.m / cfg.N, failed, speed, rng)
    tandon = pp.tandon_for(cfg.m, delta, cfg.tandon_p, np.random.default_rng(delta))
    piece = 1.0 / (tandon.p - tandon.s)  # a Tandon piece is 1 / ((p - s) m) of the data
    pieces = draw_times(cfg, tandon.p, piece, failed, speed, rng)
    return Draw(times, pieces, tandon)


# --- assignments ----------------------------------------------------------------------------


def circulant_offsets(m: int, delta: int) -> tuple[int, ...]:
    """Offsets of a ``(delta - 1)``-regular circulant graph on ``Z_m``."""
    half = (delta - 1) // 2
    return tuple(range(1, half + 1)) + ((m // 2,) if (delta - 1) % 2 else ())


def split(a: ChunkAssignment, parts: int) -> ChunkAssignment:
    """Split every chunk into ``parts`` sub-chunks with the same holders; layer by layer order."""
    if parts == 1:
        return a
    A = np.kron(a.A, np.ones((parts, 1), dtype=np.int64))
    order = tuple(tuple(c * parts + r for r in range(parts) for c in o) for o in a.order)
    return ChunkAssignment(A, order)


def graphs(delta: int, rng: np.random.Generator, m: int = M, N: int | None = None) -> dict:
    """Two ``(delta - 1)``-regular graphs on ``m`` vertices, optimal order: circulant, random."""
    seed = int(rng.integers(2**31))
    rand = nx.to_numpy_array(nx.random_regular_graph(delta - 1, m, seed=seed), dtype=np.int64)
    parts = (N or m) // m
    circ = graph_assignment(circulant_adjacency(m, circulant_offsets(m, delta)))
    return {
        "circulant": split(optimal_order(circ.A), parts),
        "random_regular": split(optimal_order(graph_assignment(rand).A), parts),
    }


# --- deadlines and interpolation -----------------------------------------------------------


def deadlines(delta: int) -> np.ndarray:
    """Deadlines of the NMSE panels: 0 .. 3.5 delta (a worker's list takes 2 delta on average)."""
    return np.linspace(0, 3.5 * delta, 57)


def round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    """Keep ``digits`` significant decimal digits of every entry."""
    x = np.asarray(x, dtype=np.float64)
    mag = np.floor(np.log10(np.where(x == 0, 1.0, np.abs(x))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def interpolation_error(degree: int, digits: int, trials: int, rng: np.random.Generator) -> float:
    """Median relative coefficient error of real Vandermonde interpolation (Chebyshev nodes)."""
    n = degree + 1
    x = np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))
    V = np.vander(x, increasing=True)
    coef = rng.standard_normal((n, trials))
    est = np.linalg.solve(V, round_sig(V @ coef, digits))
    return float(np.median(np.linalg.norm(est - coef, axis=0) / np.linalg.norm(coef, axis=0)))


__all__ = [
    "CHUNK_MODELS",
    "Config",
    "DELTAS",
    "Draw",
    "FAILURES",
    "MAX_FAIL",
    "M",
    "chunk_times",
    "circulant_offsets",
    "config_from_options",
    "deadlines",
    "draw",
    "draw_times",
    "failed_workers",
    "graphs",
    "interpolation_error",
    "round_sig",
    "split",
]
