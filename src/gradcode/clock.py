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
  finishing times plus measured communication and master overheads;
* :class:`Overheads`, :func:`predict_round`, :func:`fit_overheads` -- the
  calibrated clock of a real runtime: per-worker launch, compute per
  partition, the way back per message and per byte, fitted from a warm-up
  (the Ray backend's, :mod:`gradcode.runtime.ray.calibrate`) and used to
  predict each round from the scheme's stop rule over the arrivals.

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

    A worker's result reaches the master at

    ``arrival_w = launch_w + max(compute_w(L_w), target_w) + message + bytes x per_byte``

    where ``target_w`` is its scheduled finishing time (the straggler delay, counted
    from the start of its call, compute included), ``compute_w(L) = compute_w +
    per_partition_w x L`` the seconds it computes ``L`` partitions, ``launch_w`` the
    seconds from the round's start until its call starts (putting the weights in the
    store, the calls launched before it) and ``message`` + ``bytes x per_byte`` the
    way back (sending, receiving, deserialising).  The round ends when the scheme
    can decode from the arrivals, plus ``master``.  Per-worker fields are tuples
    (empty: 0 for every worker).

    Attributes:
        message: fixed cost of one message on its way back (latency).
        master: the master's own time per round beyond the arrivals.
        per_byte: seconds per message byte (``1 / bandwidth``).
        launch: per worker, round start -> its call starts.
        compute: per worker, fixed compute seconds per call.
        per_partition: per worker, compute seconds per partition.
    """

    message: float = 0.0
    master: float = 0.0
    per_byte: float = 0.0
    launch: tuple = ()
    compute: tuple = ()
    per_partition: tuple = ()

    def _per(self, values: tuple, n: int) -> np.ndarray:
        return np.zeros(n) if not values else np.asarray(values, dtype=float)

    def arrivals(self, targets, loads, message_bytes: float = 0.0) -> np.ndarray:
        """Per-worker arrival times (seconds after the round's start) for scheduled
        finishing times ``targets`` (``inf``: never) at per-worker ``loads``.

        >>> o = Overheads(message=0.5, launch=(0.0, 0.1), per_partition=(1.0, 1.0))
        >>> o.arrivals(np.array([3.0, 0.0]), [2, 2]).tolist()   # worker 1 is compute-bound
        [3.5, 2.6]
        """
        targets = np.asarray(targets, dtype=float)
        launch, compute, back = self.parts(targets.shape[-1], loads, message_bytes)
        out = launch + np.maximum(compute, targets) + back
        return np.where(np.isfinite(targets), out, np.inf)

    def parts(self, n: int, loads, message_bytes: float = 0.0):
        """``(launch, compute, back)``: per-worker launch and compute seconds at ``loads``,
        and the way back of one message of ``message_bytes``."""
        loads = np.asarray(loads, dtype=float)
        compute = self._per(self.compute, n) + self._per(self.per_partition, n) * loads
        back = self.message + float(message_bytes) * self.per_byte
        return self._per(self.launch, n), compute, back

    def to_dict(self) -> dict:
        """Medians of the per-worker parts and the scalars, for logs (seconds)."""
        med = {k: float(np.median(v)) if v else 0.0
               for k, v in (("launch", self.launch), ("compute", self.compute),
                            ("per_partition", self.per_partition))}  # fmt: skip
        return {"message": self.message, "per_byte": self.per_byte, "master": self.master,
                **{f"{k}_median": v for k, v in med.items()}}  # fmt: skip


def predict_duration(code, compute_done: np.ndarray, overheads: Overheads) -> np.ndarray:
    """Round durations from per-worker compute finishing times ``(rounds, n)``.

    A worker's message arrives ``overheads.message`` after its compute ends;
    the round ends when the scheme can decode, plus the master's time.

    >>> from gradcode.codes import make_code
    >>> T = np.array([[1.0, 3.0, 2.0, 5.0]])
    >>> predict_duration(make_code("frc", 4, 1), T, Overheads(0.5, 0.25))
    array([2.75])
    """
    arrivals = np.asarray(compute_done, dtype=float) + overheads.message
    return simulate(code, arrivals).times + overheads.master


def predict_round(
    scheme, targets, loads, overheads: Overheads, message_bytes: float = 0.0,
    deadline: float | None = None,
) -> float:  # fmt: skip
    """One round's calibrated duration (seconds): the scheme's stop rule over
    :meth:`Overheads.arrivals`, capped at ``deadline``, plus ``overheads.master``.
    A round that can never decode takes every finite arrival.

    >>> from gradcode.codes import make_code
    >>> o = Overheads(message=0.01, master=0.002, per_partition=(0.05,) * 4)
    >>> round(predict_round(make_code("frc", 4, 1), [1.0, 3.0, 0.0, 0.01], 2, o), 6)
    1.012
    """
    arr = overheads.arrivals(np.asarray(targets, dtype=float), loads, message_bytes)
    t = float(scheme.completion_time(arr[None, :])[0])
    if deadline is not None and t > deadline:
        t = float(deadline)
    if not np.isfinite(t):
        finite = arr[np.isfinite(arr)]
        t = float(finite.max()) if finite.size else 0.0
    return t + overheads.master


def _low(x: np.ndarray, q: float) -> float:
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, q)) if x.size else 0.0


def fit_overheads(
    samples, tiny: tuple = (), n: int | None = None, master: float = 0.0, quantile: float = 0.25
) -> Overheads:
    """:class:`Overheads` from warm-up measurements.

    ``samples``: one ``(worker, load, launch, compute, back, nbytes)`` per worker per
    warm-up round (seconds: round start -> call start, computing, actor's return ->
    the master holding the result; ``nbytes`` of the message).  ``tiny``: the same
    for calls returning a message of a few bytes with no compute (they separate the
    per-message latency from the per-byte cost).  Per worker: the median launch,
    and compute per load (medians; two or more loads: a least-squares line
    ``compute + per_partition x load``; one load: ``per_partition = compute / load``).
    The way back is the ``quantile`` of all measurements: warm-up results arrive
    together and queue at the master, which real rounds (spread out by their
    delays) mostly do not.

    >>> S = [(w, L, 0.01 * w, 0.1 + 0.2 * L, 0.004, 1008.0) for w in range(2) for L in (1, 3)]
    >>> o = fit_overheads(S, tiny=[(0, 0, 0.0, 0.0, 0.001, 8.0)])
    >>> o.launch, [round(x, 9) for x in o.per_partition], round(o.message, 9), o.per_byte
    ((0.0, 0.01), [0.2, 0.2], 0.000976, 3e-06)
    """
    S = np.asarray(samples, dtype=float).reshape(-1, 6)
    n = int(S[:, 0].max()) + 1 if n is None else n
    launch, compute, per_part = [], [], []
    for w in range(n):
        mine = S[S[:, 0] == w]
        if not len(mine):
            launch.append(0.0), compute.append(0.0), per_part.append(0.0)
            continue
        launch.append(float(np.median(mine[:, 2])))
        loads = np.unique(mine[:, 1])
        med = np.array([np.median(mine[mine[:, 1] == L, 3]) for L in loads])
        if len(loads) >= 2:
            slope, icept = np.polyfit(loads, med, 1)
            slope = max(float(slope), 0.0)
            icept = float(np.mean(med - slope * loads))
        else:
            slope, icept = float(med[0] / max(loads[0], 1.0)), 0.0
        compute.append(icept)
        per_part.append(slope)
    back, nbytes = _low(S[:, 4], quantile), float(np.median(S[:, 5])) if len(S) else 0.0
    message, per_byte = back, 0.0
    T = np.asarray(tiny, dtype=float).reshape(-1, 6)
    if len(T):
        message = min(_low(T[:, 4], quantile), back)
        tiny_bytes = float(np.median(T[:, 5]))
        if nbytes > tiny_bytes:
            per_byte = (back - message) / (nbytes - tiny_bytes)
            message -= tiny_bytes * per_byte
    return Overheads(
        message=message, master=master, per_byte=per_byte,
        launch=tuple(launch), compute=tuple(compute), per_partition=tuple(per_part),
    )  # fmt: skip


def merge_late_times(records: list[dict]) -> list[dict]:
    """Round records with every late worker's time filled in.

    A Ray round ends before its stragglers finish; their times become known
    later and are logged in a later record as ``late_times``: ``[round, worker,
    time, compute]`` each, ``time`` on round ``round``'s clock.  This puts them
    into that round's ``worker_times`` (and ``worker_compute``), so a run folder
    replays like a measured trace.  The records are copied, not modified.

    >>> recs = [{"round": 0, "worker_times": [1.0, None]},
    ...         {"round": 1, "worker_times": [2.0, 2.5], "late_times": [[0, 1, 3.5, 0.1]]}]
    >>> [r["worker_times"] for r in merge_late_times(recs)]
    [[1.0, 3.5], [2.0, 2.5]]
    """
    out = [dict(r) for r in records]
    by_round = {r.get("round"): r for r in out}
    for r in out:
        for entry in r.get("late_times") or ():
            rnd, w, at = entry[0], int(entry[1]), entry[2]
            target = by_round.get(rnd)
            times = None if target is None else target.get("worker_times")
            if not isinstance(times, list) or not 0 <= w < len(times):
                continue
            target["worker_times"] = times = list(times)
            times[w] = at
            comp = target.get("worker_compute")
            if isinstance(comp, list) and len(entry) > 3 and 0 <= w < len(comp):
                target["worker_compute"] = comp = list(comp)
                comp[w] = entry[3]
    return out
