"""The ``ray`` backend: one Ray actor per worker, real time, real failures.

:class:`RayCluster` implements the :class:`~gradcode.runtime.cluster.Cluster`
protocol of :class:`~gradcode.runtime.cluster.LocalCluster` on Ray actors
(worker side: :mod:`gradcode.runtime.ray.worker`; start/join:
:mod:`gradcode.runtime.ray.connect`; chunked and sequential rounds:
:mod:`gradcode.runtime.ray.rounds`).  It receives what it needs -- scheme,
task, schedule -- and imports nothing from the composition root
(:mod:`gradcode.runtime.run`).

* **Workers.** One actor per worker, all created at once (their start-ups run
  concurrently).  The task is cut per worker to the partitions its placement
  stores (its ``restrict(parts)``, :func:`~gradcode.runtime.ray.worker.worker_payloads`)
  and put in the object store; a task that cannot be cut is put once and shared
  read-only.
* **A round** (plain and stateful schemes).  The weights -- whatever object
  the loop passes, NumPy array or torch tensor -- are put in the object store
  once; each free live worker gets one call.  It computes its plan, gradients
  and message and reports ``schedule.times(t, loads)[w] * time_scale`` seconds
  after the call started (``inf``: crashed this round, nothing sent).  The
  master collects in arrival order (``ray.wait``) until ``scheme.ready``, the
  deadline, or until every live worker has answered: with more than ``s``
  workers dead or crashed the round waits for all the survivors and the loop
  decodes best-effort from them (a logged fallback), exactly as the local
  backend does.  Non-finite messages are passed on (the loop drops and logs
  them) but do not count towards ``ready``.
* **Late work.** At most one call is outstanding per worker.  Stateful schemes
  get old results as ``late`` in the round during which they arrive (dropped
  when more than ``late_cap`` rounds old); stateless codes abandon outstanding
  calls at the end of each round (they return at once, without the message).
* **Failures and rejoin.** A killed actor (or a removed node) surfaces as
  ``RayActorError``: the worker is dead (logged) and never waited for.  With
  ``respawn=True`` (default) a replacement actor is started at once, on any
  node, with the dead worker's partitions and the scheme's *initial* worker
  state (``scheme.init_worker``); it rejoins at the first round after it is up
  (logged).  For PGC this means its stored gradients are *recomputed*: an
  empty memory makes ``compute_plan`` return all ``s + 1`` stored partitions
  (the warm-up), at the current weights.  ``CrashStop`` schedules (with or
  without ``rejoin_after``) act on live actors, as on the local backend: a
  crashed worker sends nothing and keeps its state.
* **Time.** ``duration`` and ``times`` are real elapsed seconds divided by
  ``time_scale`` (schedule units plus real overheads); ``times[w]`` is the
  measured arrival, ``inf`` for crashed or dead workers, just above
  ``duration`` for those still running.  With ``time_scale=0`` they are
  seconds.  Each round's log fields (:func:`~gradcode.runtime.ray.rounds.round_log`)
  carry every worker's time (late ones resolved in later records' ``late_times``),
  the calibrated ``predicted_duration`` and the virtual clock's
  ``simulated_duration`` (:mod:`~gradcode.runtime.ray.calibrate`); start-up is
  logged once, in the first round's record, never inside a round.
* **Losing the cluster.** When this process's Ray node dies (its raylet and
  object store; Ray would terminate the process at its next object-store call)
  or the connection to the cluster breaks, the round raises
  :class:`RayClusterLost`, a :class:`~gradcode.runtime.loop.TrainingStopped`:
  one line naming what died; the run folder keeps its last checkpoint, and
  ``--resume`` continues from it.  The node is probed (one Unix-socket connect)
  when a worker dies, before any replacement is started.
* **Checkpoints.** :meth:`state` fetches worker states from live actors;
  :meth:`restore` pushes them back.  Results in flight are lost and arrival
  order is real time, so a resumed Ray run is close to, not bit-identical
  with, an uninterrupted one.

Reuse: ``actors=`` (from :meth:`detach` of an earlier cluster with the same
``n``) reloads running actors with a new run's scheme, task and schedule,
skipping their start-up (a few seconds each, mostly ``import torch``);
:meth:`switch` gives the running actors another scheme within a run
(:mod:`gradcode.runtime.ray.switch`).

Test hooks: ``nan_workers`` send NaN messages; ``on_round(cluster, t)`` runs
at the start of every round (e.g. to kill actors); ``actor_options`` (one
dict, or one per worker) pins actors, e.g. to nodes through custom resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from ...clock import Overheads, predict_round
from ..cluster import RoundOutcome, Schedule, refuse_deadline, stop_time
from ..loop import TrainingStopped
from .calibrate import calibrate as measure_overheads
from .connect import (
    check_address,
    cluster_lost_errors,
    connect,
    disconnect,
    first_line,
    import_ray,
    kill_actors,
    local_node_alive,
)
from .pool import EarlyWorkers
from .rounds import consume_stream, run_chunked, run_plain, run_sequential
from .switch import placements
from .switch import switch as switch_scheme
from .worker import (
    ACTOR_OPTIONS,
    WorkerActor,
    placement_of,
    ship,
    unship,
    unship_message,
    worker_payloads,
)

__all__ = ["DEFAULT_TIME_SCALE", "RayCluster", "check_address", "consume_stream", "placement_of"]

#: Real seconds per unit of the straggler schedule (``RayCluster(time_scale=...)``).
DEFAULT_TIME_SCALE = 0.01


#: What died when this process's own Ray node is gone.
NODE = "this process's Ray node (raylet and object store)"


class RayClusterLost(TrainingStopped):
    """The Ray cluster under a run is gone (not one worker): training cannot go on."""


def cluster_lost(t: int, what: str) -> RayClusterLost:
    """The one-line error for round ``t`` when ``what`` died.

    >>> str(cluster_lost(7, "this process's Ray node"))
    "round 7: this process's Ray node died; resume from the run's last checkpoint"
    """
    return RayClusterLost(f"round {t}: {what} died; resume from the run's last checkpoint")


class RayCluster:
    """Workers as Ray actors; see the module docstring for the exact semantics."""

    #: Actors pass the round to ``Task.partition_gradients(weights, t, parts)``, so
    #: minibatches are the (partition, round) ones of the local backend.
    minibatch_rounds = True

    def __init__(
        self,
        scheme,
        task,
        schedule: Schedule,
        deadline: float | None = None,
        late_cap: int | None = None,
        time_scale: float | None = None,
        *,
        address: str | None = None,
        respawn: bool = True,
        max_respawns: int = 3,
        nan_workers: Iterable[int] = (),
        on_round: Callable[[RayCluster, int], None] | None = None,
        actor_options: dict | Sequence[dict] | None = None,
        actors: Sequence | None = None,
        calibrate: bool = True,
    ) -> None:
        t_start = time.perf_counter()
        time_scale = DEFAULT_TIME_SCALE if time_scale is None else float(time_scale)
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self.sequential = bool(getattr(scheme, "sequential", False))
        self.chunked = bool(getattr(scheme, "chunked", False))
        refuse_deadline(scheme, deadline)
        self.ray = import_ray()
        self.scheme, self.schedule, self.n = scheme, schedule, scheme.n
        self.deadline, self.time_scale = deadline, time_scale
        self.late_cap = scheme.s + 1 if late_cap is None else late_cap
        self.stateful = bool(getattr(scheme, "stateful", False))
        self.on_round, self.respawn, self.max_respawns = on_round, respawn, max_respawns
        self.nan = {int(w) for w in nan_workers}
        self.actors: list = []
        self.busy: dict[int, tuple[object, int]] = {}  # worker -> (ref, round)
        self.dead: set[int] = set()
        self.starting: dict[int, object] = {}  # worker -> ping ref of its replacement
        self.respawns: dict[int, int] = {}
        self.plan = scheme.init_plan() if self.sequential else None
        self.node_lost = False  # a worker's death revealed that this process's node is gone
        self.history: dict[int, object] = {}  # sequential: round -> ObjectRef of its weights
        self.round_wall: dict[int, float] = {}  # round -> wall clock at its start (late times)
        self.late_times: list[list] = []  # [round, worker, time, compute] resolved since last round
        self.cancelled: list[tuple] = []  # (worker, ref, round) of abandoned/cancelled calls
        self.overheads, self.calibration = Overheads(), {}
        self.tracker = None  # OverheadTracker, set by the calibration
        self.task, self.held = task, None  # held: each worker's partitions (None: shared task)
        self.pending_notes: list[str] = []  # for the next round's record (a switch's deaths)
        self.reload: dict | None = None  # the last switch, logged in the next round's record
        early = actors if isinstance(actors, EarlyWorkers) else None
        self._owns_ray = connect(address) or (early is not None and early.owns_ray)
        self.startup = {"connect": round(time.perf_counter() - t_start, 3)}
        if early is not None:
            self.startup["connect"] = round(early.connect_seconds, 3)
            early.owns_ray, actors = False, early.actors  # the cluster owns both now
        try:
            t0 = time.perf_counter()
            self._start(task, actor_options, actors)
            self.startup["actors"] = round(time.perf_counter() - t0, 3)
            if early is not None:  # created before the task: part of their start-up overlapped
                self.startup["actors_since_created"] = round(time.perf_counter() - early.created, 3)
            self._calibrate_pending = calibrate
            init = getattr(task, "initial_weights", None)
            if calibrate and init is not None:  # else at the first round, with its weights
                self._calibrate(init())
        except Exception:
            self.close()
            raise
        self.startup["total"] = round(
            sum(v for k, v in self.startup.items() if k != "actors_since_created"), 3
        )
        self._startup_logged = False

    def _calibrate(self, weights) -> None:
        """Measure this cluster's overheads (:mod:`gradcode.runtime.ray.calibrate`), once."""
        t0 = time.perf_counter()
        self._calibrate_pending = False
        try:
            self.overheads, self.calibration = measure_overheads(self, weights)
        except Exception as exc:  # noqa: BLE001 - no calibration: predictions without overheads
            self.calibration = {"error": first_line(exc)}
        self.startup["calibrate"] = round(time.perf_counter() - t0, 3)

    # ------------------------------------------------------------------ start-up

    def _start(self, task, actor_options, actors) -> None:
        ray = self.ray
        base = dict(ACTOR_OPTIONS)
        if isinstance(actor_options, dict) or actor_options is None:
            per = [dict(actor_options or {})] * self.n
        else:
            per = [dict(o) for o in actor_options]
        self._base_opts = base
        self._opts = [{**base, **o} for o in per]
        self._scheme_ref = ray.put(self.scheme)
        self._schedule_ref = ray.put(self.schedule)
        cut = worker_payloads(task, self.scheme, self.n)
        if cut is not None:  # each actor holds only its partitions' data
            self.payloads = [ray.put(payload) for payload in cut]
            self.held = placements(self.scheme, self.n)
        else:  # one shared read-only copy for every actor
            self.payloads = [ray.put(task)] * self.n
        if actors is not None:  # reuse running actors (no start-up cost): reload them
            if len(actors) != self.n:
                raise ValueError(f"got {len(actors)} actors for {self.n} workers")
            self.actors = list(actors)
            pings = [
                a.configure.remote(
                    w,
                    self._scheme_ref,
                    self.payloads[w],
                    self._schedule_ref,
                    w in self.nan,
                    warm=True,
                )  # fmt: skip
                for w, a in enumerate(self.actors)
            ]
        else:  # all created at once: their start-ups run concurrently
            self.actors = [self._new_actor(w, self._opts[w]) for w in range(self.n)]
            pings = [a.ping.remote(True) for a in self.actors]
        try:  # wait until every actor is ready (a bad config fails here, clearly)
            ray.get(pings)
        except Exception as exc:
            raise ValueError(f"Ray workers failed to start: {first_line(exc)}") from None

    def _new_actor(self, w: int, opts: dict):
        Actor = self.ray.remote(WorkerActor).options(**opts)
        return Actor.remote(
            w, self._scheme_ref, self.payloads[w], self._schedule_ref, w in self.nan
        )

    # ------------------------------------------------------------------ faults

    def kill(self, worker: int) -> None:
        """Kill a worker's actor (its process); the cluster notices on its next result."""
        self.ray.kill(self.actors[worker], no_restart=True)

    def live(self) -> list[int]:
        return [w for w in range(self.n) if w not in self.dead]

    def mark_dead(self, w: int, notes: list[str], why: str = "Ray actor error") -> None:
        """Record a death; start a replacement actor when ``respawn`` allows."""
        self.busy.pop(w, None)
        self.dead.add(w)
        note = f"worker {w} died ({why}); marked dead"
        self.node_lost = self.node_lost or not local_node_alive()  # no replacement then
        used = self.respawns.get(w, 0)
        if self.respawn and used < self.max_respawns and not self.node_lost:
            self.respawns[w] = used + 1
            self.actors[w] = self._new_actor(w, self._base_opts)  # any node
            self.starting[w] = self.actors[w].ping.remote()
            note += ", replacement actor starting"
        notes.append(note)

    def _sweep_starting(self, notes: list[str]) -> None:
        """Replacements that are up rejoin now (fresh scheme state); failed ones retry."""
        from ray.exceptions import RayActorError

        for w, ref in list(self.starting.items()):
            done, _ = self.ray.wait([ref], timeout=0)
            if not done:
                continue
            del self.starting[w]
            try:
                self.ray.get(ref)
            except RayActorError:
                self.mark_dead(w, notes, "replacement failed to start")
                continue
            self.dead.discard(w)
            notes.append(f"worker {w} rejoined (replacement actor, initial worker state)")

    def get(self, w: int, ref, notes: list[str]):
        """The reply, ``None`` if cancelled, or ``"dead"`` (recorded) when the actor is gone."""
        from ray.exceptions import RayActorError, TaskCancelledError

        try:
            rep = self.ray.get(ref)
        except TaskCancelledError:
            return None
        except RayActorError:
            self.mark_dead(w, notes)
            return "dead"
        for rnd, finish, compute in getattr(rep, "unsent", ()):  # earlier cancelled calls
            self.resolve_late(rnd, w, finish, compute)
        if getattr(rep, "message", None) is not None:
            from dataclasses import replace

            rep = replace(rep, message=unship_message(rep.message))
        return rep

    def resolve_late(self, rnd: int, w: int, finished: float, compute: float) -> None:
        """Worker ``w``'s finishing time in round ``rnd`` (ended without it), known now:
        its actor's wall clock ``finished`` plus the calibrated way back, on round
        ``rnd``'s clock; logged in the current round's record (``late_times``)."""
        start = self.round_wall.get(rnd)
        if start is None:
            return
        at = (finished - start + self.back()) / self.scale
        self.late_times.append([int(rnd), int(w), round(at, 9), round(float(compute), 6)])

    def back(self) -> float:
        """The calibrated way back of one message (seconds), from actor to master."""
        nbytes = self.calibration.get("message_bytes", 0.0)
        return self.overheads.message + nbytes * self.overheads.per_byte

    # ------------------------------------------------------------------ rounds

    @property
    def scale(self) -> float:
        """Real seconds per reported time unit (1 when no delays are injected)."""
        return self.time_scale if self.time_scale > 0 else 1.0

    def limit(self) -> float | None:
        return None if self.deadline is None else self.deadline * self.scale

    def run_round(self, t: int, weights) -> RoundOutcome:
        """One round (see the module docstring); :class:`RayClusterLost` when the cluster
        itself is gone."""
        if self.on_round is not None:
            self.on_round(self, t)
        if self.node_lost:
            raise cluster_lost(t, NODE)
        notes, self.pending_notes = self.pending_notes, []
        if self._calibrate_pending:  # a task without initial weights: calibrate with these
            self._calibrate(weights)
            self.startup["total"] = round(
                sum(
                    v for k, v in self.startup.items() if k not in ("total", "actors_since_created")
                ),
                3,
            )
        if self.tracker is not None:  # overheads from the warm-up and rounds < t
            self.overheads = self.tracker.current()
        try:
            self._sweep_starting(notes)
            if self.chunked:
                return run_chunked(self, t, weights, notes)
            if self.sequential:
                return run_sequential(self, t, weights, notes)
            return run_plain(self, t, weights, notes)
        except cluster_lost_errors() as exc:
            what = NODE if not local_node_alive() else f"the Ray cluster ({first_line(exc)})"
            raise cluster_lost(t, what) from None

    def _launch(self, w: int, t: int, wref) -> None:
        """Call worker ``w`` for round ``t`` (weights ``wref``, already in the store)."""
        self.busy[w] = (self.actors[w].round.remote(t, wref, self.time_scale), t)

    def targets(self, t: int, loads) -> np.ndarray:
        """Round ``t``'s scheduled finishing times (schedule units; dead workers: inf)."""
        sched = self.schedule.times(t, loads).copy()
        sched[sorted(self.dead)] = np.inf
        return sched

    def predicted(self, t: int, loads) -> tuple[float, float]:
        """``(calibrated, simulated)`` duration of round ``t`` in schedule units: the
        scheme's stop rule over the calibrated arrivals (:func:`gradcode.clock.predict_round`),
        and the local backend's virtual-clock duration for the same schedule."""
        sched = self.targets(t, loads)
        pt, _ = stop_time(self.scheme, sched, self.deadline)
        if not np.isfinite(pt):  # never ready: everything that arrives is taken
            finite = sched[np.isfinite(sched)]
            pt = float(finite.max()) if finite.size else 0.0
        fin, target = np.isfinite(sched), np.full(self.n, np.inf)
        target[fin] = sched[fin] * self.time_scale  # real seconds (0 without delays)
        real = predict_round(
            self.scheme,
            target,
            loads,
            self.overheads,
            self.calibration.get("message_bytes", 0.0),
            None if self.deadline is None else self.deadline * self.scale,
        )
        return real / self.scale, float(pt)

    def switch(self, scheme) -> None:
        """Run ``scheme`` from the next round on, on the same actors (``--scheme auto``):
        workers whose partitions change load them (:mod:`gradcode.runtime.ray.switch`)."""
        self.reload = switch_scheme(self, scheme, self.task)

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict:
        """Worker states fetched from the live actors (``None`` for dead ones)."""
        from ray.exceptions import RayActorError

        states = []
        for w, a in enumerate(self.actors):
            if w in self.dead:
                states.append(None)
                continue
            try:
                states.append(self.ray.get(a.get_state.remote()))
            except RayActorError:
                self.dead.add(w)
                states.append(None)
        history = {r: unship(self.ray.get(ref)) for r, ref in self.history.items()}
        return {
            "worker_states": states,
            "dead": sorted(self.dead),
            "plan": self.plan,
            "history": history,
        }

    def restore(self, state: dict) -> None:
        """Push worker states into the actors (initial state for workers that were dead)."""
        from ray.exceptions import RayActorError

        for w, st in enumerate(state["worker_states"]):
            if w in self.dead:
                continue
            st = self.scheme.init_worker(w) if st is None else st
            try:
                self.ray.get(self.actors[w].set_state.remote(st))
            except RayActorError:
                self.dead.add(w)
        self.plan = state.get("plan", self.plan)
        self.history = {r: self.ray.put(ship(v)) for r, v in state.get("history", {}).items()}
        self.busy.clear()

    # ------------------------------------------------------------------ streaming

    def stream_chunks(self, worker: int, t: int, weights, parts, delays=None):
        """A Ray streaming generator yielding ``(worker, partition, gradient)`` per partition.

        ``delays[i]`` (schedule units, scaled by ``time_scale``) is when partition
        ``i`` may be reported, counted from the start of the call.
        """
        wref = weights if isinstance(weights, self.ray.ObjectRef) else self.ray.put(weights)
        real = None if delays is None else tuple(float(x) * self.time_scale for x in delays)
        return (
            self.actors[worker]
            .partitions.options(num_returns="streaming")
            .remote(t, wref, tuple(parts), real)
        )

    def nodes(self) -> list[str]:
        """The Ray node id each worker's actor runs on."""
        return self.ray.get([a.node.remote() for a in self.actors])

    # ------------------------------------------------------------------ shutdown

    def detach(self) -> list:
        """Close the run but keep its actors alive; pass them as ``actors=`` to a new cluster."""
        for ref, _ in self.busy.values():
            self.ray.cancel(ref)
        actors, self.actors = [a for w, a in enumerate(self.actors) if w not in self.dead], []
        self.close()
        return actors

    def close(self) -> None:
        kill_actors(self.actors)
        self.actors, self.busy, self.starting, self.cancelled = [], {}, {}, []
        if self._owns_ray:
            disconnect()
            self._owns_ray = False
