"""Replaying measured traces through the simulator, and checking a fitted clock against them.

* :func:`replay` -- every round of a long-format trace (:class:`~gradcode.stragglers.LoadTrace`)
  through a scheme, at the scheme's load, by the replay rule (round ``r`` ->
  trace round ``r mod R``, worker ``i`` -> trace worker ``i``, the measured
  time at the load).  ``blocks=True`` also replays workers ``n..2n-1``,
  ``2n..3n-1``, ... as further rounds: a 256-worker trace gives ten 24-worker
  clusters, ten times the data for the same rule.
* :func:`check_fit` -- a fitted model's simulated mean round time next to the
  replay's, per scheme (the check behind ``gradcode trace fit``).
* :func:`regimes` -- mean round time vs ``s`` for the schemes under two
  readings of one trace: as measured (time at load ``L`` = the measurement at
  ``L``: latency-bound on AWS Lambda) and time ∝ load (the load-1 measurement
  times ``L``: what a compute-bound cluster would pay).
* :func:`predict_duration` -- a round's duration from the workers' compute
  finishing times plus measured communication and master overheads (the
  calibrated prediction a real runtime can log next to its measured rounds).

Example: a worker measured at 1 s (load 1) and 1.2 s (load 2) costs FRC at
``s = 1`` 1.2 s, not the 2 s a time ∝ load reading says::

    >>> import numpy as np
    >>> from gradcode.codes import make_code
    >>> from gradcode.stragglers import LoadTrace
    >>> t = LoadTrace(np.tile([1.0, 1.2], (1, 2, 1)), loads=(1.0, 2.0))
    >>> replay(make_code("frc", 2, 1), t).tolist()
    [1.2]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .codes import make_code
from .sim import simulate
from .stragglers import DelayModel, LoadTrace, TraceReplay


def _times(code, model: DelayModel, rounds: int, n: int, rng=None) -> np.ndarray:
    if getattr(code, "chunked", False):
        width = max(len(p) for p in code.placement)
        load = getattr(code, "chunk_load", 1.0)
        return model.chunk_times(rng, rounds, n, width, load)
    return model.sample(rng, rounds, n, load=code.load)


def replay(code, trace: LoadTrace | TraceReplay, blocks: bool = False) -> np.ndarray:
    """Round times of ``code`` replaying every measured round of ``trace`` once.

    With ``blocks``, each disjoint block of ``n`` trace workers is replayed too
    (``floor(W / n)`` blocks; the rounds of block ``b`` follow block ``b - 1``).
    """
    n = code.n
    table = trace.table if isinstance(trace, LoadTrace) else trace.trace
    R, W = table.shape[0], table.shape[1]
    if n > W:
        raise ValueError(f"the trace has {W} workers, the scheme needs n={n}")
    starts = range(0, W - n + 1, n) if blocks else [0]
    out = []
    for b in starts:
        part = trace if b == 0 and not blocks else _workers(trace, range(b, b + n))
        out.append(round_times(code, _times(code, part, R, n)))
    return np.concatenate(out)


def round_times(code, worker_times: np.ndarray) -> np.ndarray:
    """The simulator's round times without its decode (timing only: much faster at large n)."""
    if getattr(code, "chunked", False) or getattr(code, "sequential", False):
        return simulate(code, worker_times).times
    return code.completion_time(np.asarray(worker_times, dtype=float))


def _workers(trace, idx):
    if isinstance(trace, LoadTrace):
        return trace.select_workers(idx)
    return TraceReplay(trace.trace[:, list(idx)], trace.trace_load)


def _finite_mean(x: np.ndarray) -> float:
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("inf")


def model_mean(code, model: DelayModel, rounds: int, seed: int = 0) -> float:
    """Mean round time of ``code`` over ``rounds`` simulated rounds of ``model``."""
    times = round_times(code, _times(code, model, rounds, code.n, np.random.default_rng(seed)))
    return _finite_mean(times + model.master_time)


@dataclass(frozen=True)
class FitCheck:
    """One scheme's mean round time: replayed trace vs simulated model."""

    scheme: str
    s: int
    n: int
    replay: float
    model: float

    @property
    def ratio(self) -> float:
        return self.model / self.replay


def check_fit(
    trace: LoadTrace,
    model: DelayModel,
    n: int | None = None,
    schemes=(("dgd", 0), ("frc", 3)),
    cells: int = 2_000_000,
    seed: int = 0,
) -> list[FitCheck]:
    """Simulated (``cells / n`` rounds) vs replayed mean round time per ``(scheme, s)``.

    ``n`` defaults to the trace's worker count (replayed as is); a smaller
    ``n`` replays every block of ``n`` workers (:func:`replay`).
    """
    n = trace.workers if n is None else n
    rows = []
    for name, s in schemes:
        code = make_code(name, n, s)
        measured = _finite_mean(replay(code, trace, blocks=n < trace.workers))
        rows.append(
            FitCheck(name, s, n, measured, model_mean(code, model, max(cells // n, 1), seed))
        )
    return rows


def linear_reading(trace: LoadTrace) -> TraceReplay:
    """The trace read as time ∝ load: the smallest positive measured load's times, scaled."""
    k = next(i for i, x in enumerate(trace.loads) if x > 0)
    return TraceReplay(trace.table[:, :, k], trace.loads[k])


def regimes(
    trace: LoadTrace, n: int = 24, s_values=range(5), schemes=("is_sgd", "frc", "crc")
) -> list[dict]:
    """Mean round time (block replay) per scheme and ``s``, as measured and as time ∝ load.

    ``s = 0`` is DGD for every scheme.  Schemes that cannot be built at
    ``(n, s)`` (FRC needs ``s + 1`` to divide ``n``) are left out.
    """
    readings = {"measured": trace, "linear": linear_reading(trace)}
    rows = []
    for regime, source in readings.items():
        for s in s_values:
            for name in ("dgd",) if s == 0 else schemes:
                try:
                    code = make_code(name, n, s)
                except ValueError:
                    continue
                t = replay(code, source, blocks=True)
                rows.append(
                    {"regime": regime, "scheme": name, "s": s, "n": n, "load": code.load,
                     "mean_round_time": _finite_mean(t), "rounds": int(t.size)}
                )  # fmt: skip
    return rows


@dataclass(frozen=True)
class Overheads:
    """Measured costs a real runtime adds to the straggler schedule (seconds).

    Attributes:
        message: sending one message (latency + bytes / bandwidth).
        master: the master's receive, decode and update per round.
    """

    message: float = 0.0
    master: float = 0.0


def predict_duration(code, compute_done: np.ndarray, overheads: Overheads) -> np.ndarray:
    """Round durations from per-worker compute finishing times ``(rounds, n)``.

    A worker's message arrives ``overheads.message`` after its compute ends;
    the round ends when the scheme can decode, plus the master's time.

    >>> from gradcode.codes import make_code
    >>> T = np.array([[1.0, 3.0, 2.0, 5.0]])
    >>> predict_duration(make_code("frc", 4, 1), T, Overheads(0.5, 0.25)).tolist()
    [2.75]
    """
    arrivals = np.asarray(compute_done, dtype=float) + overheads.message
    return simulate(code, arrivals).times + overheads.master
