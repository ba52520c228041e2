"""The ``Cluster`` interface and the in-process backend (the embedded default).

A cluster runs one round at a time: it ships the weights to every live
worker, lets each compute what the scheme's ``compute_plan`` says, builds its
message with ``worker_message`` and returns the messages the master gets on
time (in arrival order), the late ones that arrived during the round, and the
round's duration.  The master loop (:mod:`gradcode.runtime.loop`) is the same
for every backend.

:class:`LocalCluster` computes real gradients in-process and keeps a *virtual*
clock: a worker's finishing time is drawn from the seeded straggler model
(:class:`Schedule`), at the load it actually computed.  Everything is
deterministic for a seed.  Each round, the partitions any worker computes
are computed *once*, in one batched call (``oracle.partition_gradients``):
on one process a partition's gradient for a round is the same for every
replica (same weights, same seeded minibatch), so recomputing it would only
burn time; the virtual clock still charges every worker its full load.
Stateless codes (as in Tandon et al.'s simulations): each worker starts
every round at the broadcast and a result that misses its round is abandoned.

Stateful schemes (PGC and its variants) keep what a worker computes, so a
late worker is modelled as *busy*: it finishes its computation (its memory is
refreshed then, with the gradient at the weights it started from) and starts
the next one only when it is free -- at ``max(broadcast, free_at)``, with the
latest weights.  A worker still busy when a round closes skips that round
(no message, no memory refresh); one that becomes free while the round is
open starts late and finishes ``free_at - broadcast`` later than its drawn
time.  So a persistently slow worker refreshes its memory at its own pace,
not every round.  A late result arrives at its own time and is handed to the
master in the round during which it arrives (schemes that fold late work in
use it; others ignore it).  Late results older than ``late_cap`` rounds are
dropped, so no backlog grows without bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from ..codes.protocol import Message
from ..stragglers import DelayModel
from .oracle import partition_gradients


def nan_like(v):
    """A NaN vector shaped like ``v`` (tensor or array): fault injection."""
    if isinstance(v, np.ndarray):
        return np.full_like(v, np.nan, dtype=float)
    return v.new_full(v.shape, float("nan"))


@dataclass(frozen=True)
class RoundOutcome:
    """What the master receives in one round."""

    on_time: list[Message]
    late: list[Message]
    duration: float
    times: np.ndarray  # per-worker finishing time in this round (inf = nothing)
    ready: bool  # the scheme's stop rule was met (False: deadline or fallback)
    dropped: list[str] = field(default_factory=list)
    decodable: bool = True  # could the stop rule ever be met this round (enough live workers)?
    predicted: float | None = None  # Ray: the calibrated prediction for the same schedule
    #: Extra fields for the round's log record (:func:`worker_fields`: per-worker times,
    #: loads, compute seconds; Ray: late workers' times resolved this round, calibration).
    log: dict = field(default_factory=dict)


class Cluster(Protocol):
    n: int

    def run_round(self, t: int, weights) -> RoundOutcome: ...

    def state(self) -> dict: ...

    def restore(self, state: dict) -> None: ...

    def close(self) -> None: ...


class Schedule:
    """Seeded per-(round, worker) times at any load, all from the same draws.

    ``times(t, loads)`` returns round ``t``'s finishing times for per-worker
    ``loads``.  The full ``(rounds, n)`` matrix for each distinct load is drawn
    once from a generator seeded with ``seed``: the random numbers do not
    depend on the load, so a worker's time at load 3 is its time at load 1
    scaled by the model.  Round ``t`` is the same whether or not a run was
    resumed.
    """

    def __init__(self, model: DelayModel, seed: int, rounds: int, n: int) -> None:
        self.model, self.seed, self.rounds, self.n = model, seed, rounds, n
        self._by_load: dict = {}

    def _matrix(self, load: float) -> np.ndarray:
        if load not in self._by_load:
            rng = np.random.default_rng(self.seed)
            self._by_load[load] = self.model.sample(rng, self.rounds, self.n, load=load)
        return self._by_load[load]

    def chunk_times(self, t: int, chunks: int, chunk_load: float = 1.0) -> np.ndarray:
        """Round ``t``'s times of chunks of ``chunk_load`` partitions, ``(n, chunks)``."""
        key = ("chunks", chunks, chunk_load)
        if key not in self._by_load:
            rng = np.random.default_rng(self.seed)
            self._by_load[key] = self.model.chunk_times(
                rng, self.rounds, self.n, chunks, chunk_load
            )
        return self._by_load[key][t]

    def with_message_bytes(self, nbytes: float | None) -> Schedule:
        """The schedule of a model that knows the message size (``nbytes`` per message)."""
        model = self.model if nbytes is None else self.model.with_message_bytes(nbytes)
        return self if model is self.model else Schedule(model, self.seed, self.rounds, self.n)

    def times(self, t: int, loads) -> np.ndarray:
        if not 0 <= t < self.rounds:
            raise ValueError(f"round {t} outside the schedule's 0..{self.rounds - 1}")
        loads = np.broadcast_to(np.asarray(loads, dtype=float), (self.n,))
        out = np.empty(self.n)
        for load in np.unique(loads):
            mask = loads == load
            out[mask] = self._matrix(float(load))[t, mask]
        return out


def stop_time(scheme, times: np.ndarray, deadline: float | None) -> tuple[float, bool]:
    """When the master stops waiting, and whether the scheme's rule was met."""
    t = float(scheme.completion_time(times[None, :])[0])
    ready = np.isfinite(t)
    if deadline is not None and t > deadline:
        return float(deadline), False
    return t, bool(ready)


class LocalCluster:
    """In-process workers, real gradients, virtual clock (deterministic)."""

    def __init__(
        self,
        scheme,
        oracle,
        schedule: Schedule,
        deadline: float | None = None,
        late_cap: int | None = None,
        corrupt=None,
    ) -> None:
        if oracle.num_partitions != scheme.k:
            raise ValueError(
                f"the data has {oracle.num_partitions} partitions but the scheme needs {scheme.k}"
            )
        self.scheme, self.oracle = scheme, oracle
        self.schedule = schedule.with_message_bytes(gradient_bytes(oracle))
        self.n = scheme.n
        self.deadline = deadline
        self.late_cap = scheme.s + 1 if late_cap is None else late_cap
        self.worker_states = [scheme.init_worker(w) for w in range(self.n)]
        self.clock = 0.0
        #: Stateful schemes: when each worker finishes its current computation (absolute).
        self.free_at = np.zeros(self.n)
        self.pending: list[tuple[float, Message]] = []  # (absolute arrival, message)
        #: Fault injection: ``corrupt(t, w) -> bool`` makes worker w's round-t message NaN.
        self.corrupt = corrupt
        refuse_deadline(scheme, deadline)
        sequential = getattr(scheme, "sequential", False)
        self.plan = scheme.init_plan() if sequential else None
        self.history: dict = {}  # sequential schemes: recent weights by round
        #: Per-worker message buffers (schemes with ``message_buffers``): encoding into
        #: last round's buffer saves allocating and first-touching n d-vectors a round.
        self._buffers: dict = {}

    def run_round(self, t: int, weights) -> RoundOutcome:
        if getattr(self.scheme, "chunked", False):
            return self._run_chunked(t, weights)
        if self.plan is not None:
            return self._run_sequential(t, weights)
        plans = [self.scheme.compute_plan(self.worker_states[w], w, t) for w in range(self.n)]
        stateful = getattr(self.scheme, "stateful", False)
        # a stateful worker still busy with earlier work starts this round's when free
        lag = np.maximum(self.free_at - self.clock, 0.0) if stateful else np.zeros(self.n)
        times = self.schedule.times(t, [len(p) for p in plans]) + lag
        duration, ready = stop_time(self.scheme, times, self.deadline)
        if not np.isfinite(duration):  # never ready: take everything that ever arrives
            finite = times[np.isfinite(times)]
            duration = float(finite.max()) if finite.size else 0.0
        on_time = []
        keep_late = getattr(self.scheme, "uses_late", False)
        order = [int(w) for w in np.argsort(times, kind="stable")]
        # crashed workers compute nothing; a stateless code never uses a late message; a
        # stateful worker busy for the whole round skips it
        busy = [
            w
            for w in order
            if np.isfinite(times[w]) and (times[w] <= duration or (stateful and lag[w] < duration))
        ]
        if stateful:
            self.free_at[busy] = self.clock + times[busy]
        release = getattr(self.scheme, "release", None)  # stateful: free what is recomputed
        if release is not None:
            for w in busy:
                self.worker_states[w] = release(self.worker_states[w], w, plans[w])
        grads = partition_gradients(
            self.oracle, weights, t, sorted({p for w in busy for p in plans[w]})
        )
        reuse = getattr(self.scheme, "message_buffers", False)
        for w in busy:
            kw = {"out": self._buffers.get(w)} if reuse else {}
            self.worker_states[w], msg = self.scheme.worker_message(
                self.worker_states[w], w, t, {p: grads[p] for p in plans[w]}, **kw
            )
            if reuse and all(msg.vector is not grads[p] for p in plans[w]):
                self._buffers[w] = msg.vector  # overwritten by w's next message
            if self.corrupt is not None and self.corrupt(t, w):
                msg = replace(msg, vector=nan_like(msg.vector))
            if times[w] <= duration:
                on_time.append(msg)
            elif keep_late:
                self.pending.append((self.clock + times[w], msg))
        duration += self.schedule.model.master_time  # the master receives and decodes
        end = self.clock + duration
        dropped = [
            f"late result of worker {m.worker} from round {m.round} too old"
            for a, m in self.pending
            if a <= end and t - m.round > self.late_cap
        ]
        late_now = [m for a, m in self.pending if a <= end and t - m.round <= self.late_cap]
        self.pending = [(a, m) for a, m in self.pending if a > end and t - m.round <= self.late_cap]
        self.clock = end
        decodable = bool(np.isfinite(self.scheme.completion_time(times[None, :])[0]))
        if stateful:  # a worker that skipped the round finished nothing in it
            times = np.where(np.isin(np.arange(self.n), busy), times, np.inf)
        log = worker_fields(times, [len(p) for p in plans])
        return RoundOutcome(on_time, late_now, duration, times, ready, dropped, decodable, log=log)

    def _run_chunked(self, t: int, weights) -> RoundOutcome:
        """Streaming schemes: every finished chunk is its own message, in arrival order."""
        sch = self.scheme
        width = max(len(p) for p in sch.placement)
        chunk_times = self.schedule.chunk_times(t, width, getattr(sch, "chunk_load", 1.0))
        finish = np.cumsum(chunk_times, axis=1)
        full = float(sch.chunk_completion_time(chunk_times[None])[0])
        duration, ready = full, bool(np.isfinite(full))
        if self.deadline is not None and duration > self.deadline:
            duration, ready = float(self.deadline), False
        if not np.isfinite(duration):
            finite = finish[np.isfinite(finish)]
            duration = float(finite.max()) if finite.size else 0.0
        events = sorted(
            (finish[w, pos], w, chunk)
            for w, plan in enumerate(sch.placement)
            for pos, chunk in enumerate(plan)
            if finish[w, pos] <= duration
        )
        msgs = []
        grads = partition_gradients(self.oracle, weights, t, sorted({c for _, _, c in events}))
        for _, w, chunk in events:
            msg = sch.chunk_message(w, t, chunk, grads[chunk])
            if self.corrupt is not None and self.corrupt(t, w):
                msg = replace(msg, vector=nan_like(msg.vector))
            msgs.append(msg)
        duration += self.schedule.model.master_time
        self.clock += duration
        worker_done = np.where(np.isfinite(finish[:, -1]), finish[:, -1], np.inf)
        load = [len(p) * getattr(sch, "chunk_load", 1.0) for p in sch.placement]
        return RoundOutcome(
            msgs, [], duration, worker_done, ready, [], bool(np.isfinite(full)),
            log=worker_fields(worker_done, load),
        )  # fmt: skip

    def _run_sequential(self, t: int, weights) -> RoundOutcome:
        """Sequential codes (SR-SGC): a worker may recompute an older job at its old weights
        (and that job's minibatch)."""
        sch = self.scheme
        self.history[t] = weights.clone() if hasattr(weights, "clone") else np.array(weights)
        jobs = sch.jobs(self.plan, t)
        times = self.schedule.times(t, sch.load)
        duration, ready = sch.stop(self.plan, t, times)
        msgs, answered = [], []
        busy = [int(w) for w in np.argsort(times, kind="stable") if times[int(w)] <= duration]
        need: dict[int, set] = {}
        for w in busy:
            need.setdefault(int(jobs[w]), set()).update(sch.compute_plan(None, w, t))
        grads = {
            job: partition_gradients(self.oracle, self.history[job], job, sorted(ps))
            for job, ps in need.items()
        }
        for w in busy:
            job = int(jobs[w])
            parts = sch.compute_plan(None, w, t)
            _, msg = sch.worker_message(None, w, job, {p: grads[job][p] for p in parts})
            if self.corrupt is not None and self.corrupt(t, w):
                msg = replace(msg, vector=nan_like(msg.vector))
            msgs.append(msg)
            if all_finite(msg.vector):  # the master drops non-finite messages too
                answered.append(w)
        self.plan = sch.advance(self.plan, t, sch.by_job(self.plan, t, answered))
        self.history = {r: v for r, v in self.history.items() if r > t - sch.delay - 1}
        duration += self.schedule.model.master_time
        self.clock += duration
        log = worker_fields(times, np.full(self.n, float(sch.load)))
        return RoundOutcome(msgs, [], duration, times, ready, [], ready, log=log)

    def state(self) -> dict:
        """What resume needs: worker memories only for stateful schemes."""
        stateful = getattr(self.scheme, "stateful", False)
        return {
            "worker_states": self.worker_states if stateful else None,
            "clock": self.clock,
            "free_at": self.free_at.tolist(),
            "pending": self.pending,
            "plan": self.plan,
            "history": dict(self.history),
        }

    def restore(self, state: dict) -> None:
        if state.get("worker_states") is not None:
            self.worker_states = list(state["worker_states"])
        self.clock = float(state["clock"])
        self.free_at = np.asarray(state.get("free_at", np.zeros(self.n)), dtype=float)
        self.pending = list(state["pending"])
        self.plan = state.get("plan", self.plan)
        self.history = dict(state.get("history", {}))

    def close(self) -> None:
        pass


def clock_list(values) -> list:
    """Per-worker times for a log record: rounded like ``time`` (9 digits), ``None`` for a
    worker that never reported (``inf``) or has not reported yet (``nan``).

    >>> clock_list([1.0, np.inf, np.nan, 2.0000000004])
    [1.0, None, None, 2.0]
    """
    return [round(float(x), 9) if np.isfinite(x) else None for x in np.asarray(values, float)]


def refuse_deadline(scheme, deadline: float | None) -> None:
    """A sequential scheme (SR-SGC) waits for its reattempts, so it takes no deadline:
    one :class:`ValueError` for every place a scheme meets a deadline (building a run,
    either backend, an auto switch)."""
    if getattr(scheme, "sequential", False) and deadline is not None:
        raise ValueError(f"{scheme.name} has no deadline mode (its rounds wait for reattempts)")


def worker_fields(times, loads, compute=None) -> dict:
    """The per-worker fields of a round record (every backend logs them).

    * ``worker_times``: each worker's finishing time on the round's clock (the
      same units as ``duration``), ``null`` for never reported; workers that
      finished after the round ended included (the local backend knows their
      times; Ray resolves them later, see :mod:`gradcode.runtime.ray.cluster`);
    * ``worker_load``: partitions each worker computed (what its time was read at);
    * ``worker_compute`` (only where measured: Ray): time each worker spent computing,
      in the same clock units as ``worker_times`` (seconds / the time scale).

    >>> worker_fields(np.array([2.5, np.inf]), [1, 1])
    {'worker_times': [2.5, None], 'worker_load': [1.0, 1.0]}
    """
    out = {
        "worker_times": clock_list(times),
        "worker_load": [round(float(x), 6) for x in np.asarray(loads, dtype=float)],
    }
    if compute is not None:
        out["worker_compute"] = [
            round(float(x), 6) if np.isfinite(x) else None for x in np.asarray(compute, float)
        ]
    return out


def gradient_bytes(oracle) -> float | None:
    """Bytes of one gradient message: ``num_params`` x the dtype's size (None: unknown)."""
    size = getattr(getattr(oracle, "dtype", None), "itemsize", None)
    params = getattr(oracle, "num_params", None)
    if not isinstance(size, int) or not isinstance(params, int | np.integer):
        return None
    return float(params * size)


def all_finite(v) -> bool:
    """No NaN and no Inf in ``v`` (tensor or array): one vectorised ``sum`` (finite sum
    => every entry finite), confirmed by a min/max pass only when the sum is not finite
    (overflow of a finite vector); ``isfinite(v).all()`` would allocate a d-sized mask."""
    if isinstance(v, np.ndarray):
        return bool(np.isfinite(v.min()) and np.isfinite(v.max())) if v.size else True
    import torch

    if not isinstance(v, torch.Tensor):
        return bool(np.all(np.isfinite(np.asarray(v))))
    if v.numel() == 0:
        return True
    if bool(torch.isfinite(v.sum())):
        return True
    lo, hi = torch.aminmax(v)  # NaN propagates into both
    return bool(torch.isfinite(lo)) and bool(torch.isfinite(hi))
