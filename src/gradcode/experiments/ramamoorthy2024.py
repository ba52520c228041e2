"""Reproduction: partial-straggler gradient coding (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

"Leveraging partial stragglers within gradient coding".  A reconstruction
(see :mod:`gradcode.codes.partial`): the paper's figures are re-derived from
its stated setting, not copied.  Settings (:class:`Config`, CLI flags of
``gradcode reproduce ramamoorthy2024``): ``m`` workers, ``N`` chunks (a
multiple of ``m``: each vertex chunk of the graph is split in ``N / m``),
``delta`` holders per chunk, ``l`` parts; chunk compute times ``1 + Exp(1)``
per chunk of size ``1 / m`` (``iid``: a fresh draw per chunk; ``persistent``:
one speed per worker and trial); failures ``uniform`` (``f`` failed workers,
``f`` uniform on ``0 .. round(max_fail m)``), ``bernoulli`` (each worker
fails with probability ``max_fail``) or ``none``; an optional per-message
communication time (:class:`~gradcode.comm.CommModel`).  Assignments are
``adjacency + I`` of a ``(delta - 1)``-regular graph (circulant, or random
regular) in the matching-based optimal order unless stated otherwise.

Protocols and their transports: :mod:`gradcode.experiments.partial_protocols`.
The proposed protocol's curves use the streaming transport (V2); the
original protocol uses a *fixed* code (Tandon's ``B`` for ``l = 1``, the
Ye-Abbe polynomial code for ``l > 1``) decoded by least squares on the
finished workers; Tandon et al.'s two-message scheme (``tandon_partial``,
``s = delta - 1``) is a second baseline.

Panels (PNG + CSV each; means with standard deviations over trials):

(a) ``a_mse_vs_deadline``: NMSE vs deadline ``T`` for each ``l``.
(b) ``b_completion_vs_l``: exact completion time vs ``l`` on two graphs.
(c) ``c_ordering``: ``Qmax_l`` and completion time, optimal vs random order.
(d) ``d_vandermonde``: the instability of real Vandermonde interpolation.
(e) ``e_mse_ordering``: NMSE vs ``T``, optimal vs random order, two graphs.
``traffic.csv``: uplink messages and volume per round and extra rounds,
every protocol, at the exact completion time.
"""

from __future__ import annotations

import csv
import pathlib
from dataclasses import dataclass, field

import numpy as np

from ..codes.ordering import (
    ChunkAssignment,
    circulant_adjacency,
    graph_assignment,
    optimal_order,
    qmax,
    random_order,
)
from ..codes.partial_original import FixedCode
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
    import networkx as nx  # only the experiments need networkx

    seed = int(rng.integers(2**31))
    rand = nx.to_numpy_array(nx.random_regular_graph(delta - 1, m, seed=seed), dtype=np.int64)
    parts = (N or m) // m
    circ = graph_assignment(circulant_adjacency(m, circulant_offsets(m, delta)))
    return {
        "circulant": split(optimal_order(circ.A), parts),
        "random_regular": split(optimal_order(graph_assignment(rand).A), parts),
    }


# --- statistics and output ------------------------------------------------------------------


def _write(path: pathlib.Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (ddof 1) over the finite entries."""
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


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


def run(out_dir: pathlib.Path, trials=None, rng=None, cfg: Config | None = None) -> dict:
    """Write panels (a)-(e) and ``traffic.csv`` into ``out_dir``; return headline numbers.

    ``run(out_dir, trials, rng)`` keeps the old call form (default settings).
    """
    if cfg is None:
        if not isinstance(trials, (int, np.integer)) or trials < 2:
            raise ValueError(f"trials must be an integer >= 2, got {trials!r}")
        cfg = Config(trials=int(trials))
    rng = np.random.default_rng(0) if rng is None else rng
    from .plotting import plt
    from .ramamoorthy2024_panels import panel_a, panel_b, panel_c, panel_d, panel_e

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"trials": cfg.trials, "settings": _settings(cfg)}
    try:
        for panel in (panel_a, panel_b, panel_c, panel_e):
            summary.update(panel(out_dir, cfg, rng, plt))
        summary.update(panel_d(out_dir, rng, plt))
    finally:
        plt.close("all")
    summary["files"] = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".png", ".csv"))
    return summary


def _settings(cfg: Config) -> dict:
    return {
        "m": cfg.m,
        "N": cfg.N,
        "deltas": list(cfg.deltas),
        "failures": f"{cfg.failures} (max_fail={cfg.max_fail})",
        "chunk_model": cfg.chunk_model,
        "latency": cfg.comm.latency,
        "bandwidth": cfg.comm.bandwidth,
    }


__all__ = [
    "Config",
    "FixedCode",
    "chunk_times",
    "graphs",
    "mean_std",
    "qmax",
    "random_order",
    "run",
]
