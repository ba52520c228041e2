"""The ``ray`` backend: one Ray actor per worker, real time, real failures.

:class:`RayCluster` implements the :class:`~gradcode.runtime.cluster.Cluster`
protocol of :class:`~gradcode.runtime.cluster.LocalCluster` on Ray actors:

* **Workers.** One actor per worker.  The master builds the
  :class:`~gradcode.task.Task` from the :class:`RunConfig` (so partitions and
  initial weights are the master's) and ships each actor, through the object
  store, a :class:`WorkerTask` holding only the model and the training rows of
  the partitions its placement stores (no test set); worker nodes need
  gradcode and torch installed but no data files.  The scheme's worker
  state lives on the actor (PGC's stored gradients never travel).
* **A round.** The weights are put in the object store once
  (``ray.put``); each free worker gets one call ``round(t, weights)``.  The
  actor computes its plan (``scheme.compute_plan``), the gradients and its
  message (``scheme.worker_message``), then sleeps until
  ``schedule.times(t, loads)[w] * time_scale`` seconds after the call started
  (the straggler delay of the same seeded :class:`Schedule` as the local
  backend; compute time already spent counts towards it, so a worker never
  finishes *before* compute is done).  A worker whose scheduled time is
  ``inf`` is crashed for that round: it computes nothing and sends nothing.
* **The master** waits with ``ray.wait(num_returns=1)`` in arrival order until
  ``scheme.ready(arrived)``, or the deadline (``deadline * time_scale``
  seconds) passes, or no outstanding worker could make the scheme ready any
  more (all answered, crashed or dead).  A message with NaN/Inf is passed on
  (the master loop drops and logs it) but does not count towards ``ready``.
  The master never waits on a dead actor: a killed actor or a dead process
  surfaces as ``RayActorError``; the worker is marked dead for the rest of the
  run and logged in ``dropped``.
* **Late work.** At most one call is outstanding per worker.  A worker still
  busy with an older round is not sent the new round at the broadcast; when its
  old result arrives, it is sent the current round at once.  For *stateful*
  schemes (PGC and variants) an old result is handed to the master as ``late``
  in the round during which it arrives (collected both in the ``ray.wait``
  loop and by a non-blocking ``ray.wait(timeout=0)`` sweep at the start of each
  round), and dropped when more than ``late_cap`` rounds old (default
  ``s + 1``, as locally).  For *stateless* codes late work is useless: at the
  end of a round the outstanding calls are cancelled (the actors are async, so
  cancelling interrupts the delay) and the workers are free again.
  So the backlog is bounded by one call per worker.
* **Time.** ``RoundOutcome.duration`` and ``times`` are real elapsed seconds
  divided by ``time_scale``, i.e. in the straggler schedule's units (plus the
  real overheads: transfers, compute, Python).  ``times[w]`` is the measured
  arrival for workers that answered this round, ``inf`` for crashed or dead
  ones, and a lower bound (just above ``duration``) for those still running.
* **Checkpoints.** :meth:`state` fetches the worker states from the live
  actors; :meth:`restore` pushes them back into fresh actors.  A Ray resume
  restores model, optimizer, master state, round and worker states, but not
  results in flight at checkpoint time (lost) nor the dead set (a resumed run
  starts with every actor alive); arrival order is real time, so a resumed Ray
  run is *not* bit-identical to an uninterrupted one (only the local backend
  promises that).

Test hooks: ``nan_workers`` makes those workers send NaN vectors (the master
loop drops and logs them); ``on_round(cluster, t)`` is called at the start of
every round (e.g. to ``ray.kill`` actors); ``task_factory(cfg)`` replaces the
:class:`Task` on the workers (benchmarks use a constant-vector oracle).

Streaming (partial-straggler protocol): :meth:`RayCluster.stream_chunks` and
:func:`consume_stream` -- a worker yields one result per finished chunk through
a Ray streaming generator and the master consumes the stream until a predicate
holds.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..task import Task
from .cluster import RoundOutcome, Schedule

#: Real seconds per unit of the straggler schedule (``RayCluster(time_scale=...)``).
DEFAULT_TIME_SCALE = 0.01


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ValueError(
            "backend 'ray' needs the ray package: pip install 'ray[default]'"
        ) from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail fast (``ValueError``) when ``HOST:PORT`` does not accept connections.

    ``ray.init(address=...)`` keeps retrying an unreachable head for minutes;
    a plain TCP connect answers in at most ``timeout`` seconds.  ``"auto"``
    and addresses without a port are left to Ray.
    """
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or address in ("auto", "local"):
        return
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ValueError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc} "
            "(is 'ray start --head' running there?)"
        ) from None


def placement_of(scheme, worker: int) -> tuple[int, ...] | None:
    """The partitions ``worker`` stores (``None``: unknown, keep all data)."""
    pl = getattr(scheme, "placement", None)
    if pl is None:
        pl = getattr(getattr(scheme, "code", None), "placement", None)
    return None if pl is None else tuple(int(p) for p in pl[worker])


class _DataStub:
    """What a worker's task keeps of the dataset: its name and the training-set size."""

    def __init__(self, name: str, n_train: int) -> None:
        self.name, self.n_train = name, int(n_train)


def worker_task(task, parts: Iterable[int]):
    """A copy of ``task`` holding only the training rows of ``parts`` (no test set).

    Its partition gradients equal ``task``'s for the kept partitions (the
    ``1/N`` normalisation keeps the full training-set size); any other
    partition raises ``ValueError``.  This is what each actor receives.
    """
    wt = object.__new__(WorkerTask)
    wt.__dict__.update(task.__dict__)
    parts = sorted({int(p) for p in parts})
    keep = [task._idx[j] for j in parts]
    rows = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)
    wt._X, wt._y = task._X[rows].clone(), task._y[rows].clone()
    new_idx, start = [], 0
    for j in range(task.num_partitions):
        if j in parts:
            size = len(task._idx[j])
            new_idx.append(torch.arange(start, start + size))
            start += size
        else:
            new_idx.append(torch.zeros(0, dtype=torch.long))
    wt._idx = new_idx
    wt._Xt = wt._yt = None
    wt.dataset = _DataStub(task.dataset.name, task.dataset.n_train)
    wt.kept = frozenset(parts)
    return wt


class WorkerTask(Task):
    """A :class:`~gradcode.task.Task` restricted to some partitions (see :func:`worker_task`)."""

    kept: frozenset = frozenset()

    def partition_gradient(self, j: int, weights):
        if j not in self.kept:
            raise ValueError(f"this worker does not store partition {j}")
        return super().partition_gradient(j, weights)


@dataclass(frozen=True)
class _Reply:
    """What an actor returns for one round call."""

    worker: int
    round: int
    message: object | None  # None: crashed for that round (schedule time inf)
    compute_seconds: float


class _WorkerActor:
    """One worker: its own task (its partitions only), scheme state and delay."""

    def __init__(self, w, scheme, task, schedule, time_scale, nan):
        import torch

        torch.set_num_threads(1)
        self.w, self.scheme, self.schedule, self.time_scale = w, scheme, schedule, time_scale
        self.nan = nan
        self.task = task() if callable(task) else task
        self.state = scheme.init_worker(w)

    def ping(self) -> int:
        return self.w

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = state

    async def round(self, t: int, weights) -> _Reply:
        start = time.perf_counter()
        plan = self.scheme.compute_plan(self.state, self.w, t)
        loads = np.full(self.scheme.n, len(plan))
        target = float(self.schedule.times(t, loads)[self.w])
        if not np.isfinite(target):
            return _Reply(self.w, t, None, 0.0)
        grads = {p: self.task.partition_gradient(p, weights) for p in plan}
        self.state, msg = self.scheme.worker_message(self.state, self.w, t, grads)
        if self.nan:
            from dataclasses import replace

            msg = replace(msg, vector=np.full_like(np.asarray(msg.vector, dtype=float), np.nan))
        spent = time.perf_counter() - start
        wait = target * self.time_scale - spent
        if wait > 0:
            await asyncio.sleep(wait)
        return _Reply(self.w, t, msg, spent)

    async def chunks(self, t: int, weights, parts, delays=None):
        """Streaming generator: one ``(partition, gradient)`` per finished chunk."""
        start = time.perf_counter()
        for i, p in enumerate(parts):
            g = self.task.partition_gradient(p, weights)
            if delays is not None:
                wait = float(delays[i]) * self.time_scale - (time.perf_counter() - start)
                if wait > 0:
                    await asyncio.sleep(wait)
            yield (self.w, int(p), g)


def consume_stream(
    streams: dict[int, object],
    predicate: Callable[[list[tuple[int, int, np.ndarray]]], bool],
    timeout: float | None = None,
) -> tuple[list[tuple[int, int, np.ndarray]], bool]:
    """Consume Ray streaming generators (one per worker) in arrival order.

    Returns ``(received, satisfied)``: every ``(worker, chunk, result)``
    received, in arrival order, stopping as soon as ``predicate(received)``
    holds, all streams are exhausted or dead, or ``timeout`` seconds pass.
    A dead worker's stream just ends (its ``RayActorError`` is swallowed).
    """
    ray = _import_ray()
    from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

    t_end = None if timeout is None else time.perf_counter() + timeout
    received: list = []
    gens = dict(streams)
    while gens:
        if predicate(received):
            return received, True
        remaining = None if t_end is None else max(0.0, t_end - time.perf_counter())
        ready, _ = ray.wait(list(gens.values()), num_returns=1, timeout=remaining)
        if not ready:
            break
        gen = ready[0]
        w = next(k for k, v in gens.items() if v is gen)
        try:
            ref = next(gen)
            item = ray.get(ref)
        except StopIteration:
            del gens[w]
            continue
        except (RayActorError, RayTaskError, TaskCancelledError):
            del gens[w]
            continue
        received.append(item)
    return received, predicate(received)


class RayCluster:
    """Workers as Ray actors; see the module docstring for the exact semantics."""

    def __init__(
        self,
        scheme,
        cfg,
        schedule: Schedule,
        deadline: float | None = None,
        late_cap: int | None = None,
        time_scale: float | None = None,
        *,
        nan_workers: Iterable[int] = (),
        on_round: Callable[[RayCluster, int], None] | None = None,
        task_factory: Callable | None = None,
        actor_options: dict | None = None,
    ) -> None:
        ray = _import_ray()
        self.ray = ray
        if time_scale is None:  # a RunConfig field if there is one, else 0.01 s per unit
            time_scale = getattr(cfg, "time_scale", None)
            if time_scale is None:
                time_scale = DEFAULT_TIME_SCALE
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self.scheme, self.cfg, self.schedule = scheme, cfg, schedule
        self.n = scheme.n
        self.deadline = deadline
        self.time_scale = float(time_scale)
        self.late_cap = scheme.s + 1 if late_cap is None else late_cap
        self.stateful = bool(getattr(scheme, "stateful", False))
        self.on_round = on_round
        self._owns_ray = False
        if not ray.is_initialized():
            address = getattr(cfg, "address", None)
            if address:
                check_address(address)
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
                where = f"at {address}" if address else "locally"
                msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"cannot start/join a Ray cluster {where}: {msg}") from None
            self._owns_ray = True
        opts = {"num_cpus": 0, "scheduling_strategy": "SPREAD", "max_concurrency": 4}
        opts.update(actor_options or {})
        Actor = ray.remote(_WorkerActor).options(**opts)
        nan = set(int(w) for w in nan_workers)
        if task_factory is not None:
            payloads = [functools.partial(task_factory, cfg)] * self.n
        else:
            from .run import build_task

            task = build_task(cfg, scheme.k)
            payloads = []
            for w in range(self.n):
                parts = placement_of(scheme, w)
                payloads.append(ray.put(task if parts is None else worker_task(task, parts)))
        self.actors = [
            Actor.remote(w, scheme, payloads[w], schedule, self.time_scale, w in nan)
            for w in range(self.n)
        ]
        self.dead: set[int] = set()
        self.busy: dict[int, tuple[object, int]] = {}  # worker -> (ref, round)
        del payloads
        # Wait until every actor is constructed (a bad config fails here, clearly).
        try:
            ray.get([a.ping.remote() for a in self.actors])
        except Exception as exc:
            self.close()
            raise ValueError(f"Ray workers failed to start: {_first_line(exc)}") from None

    # ------------------------------------------------------------------ rounds

    def _launch(self, w: int, t: int, wref) -> None:
        self.busy[w] = (self.actors[w].round.remote(t, wref), t)

    def _get(self, w: int, ref):
        """The reply, or None (recording death) when the actor is gone."""
        from ray.exceptions import RayActorError, TaskCancelledError

        try:
            return self.ray.get(ref)
        except TaskCancelledError:
            return None
        except RayActorError:
            self.dead.add(w)
            return "dead"

    def run_round(self, t: int, weights: np.ndarray) -> RoundOutcome:
        ray = self.ray
        if self.on_round is not None:
            self.on_round(self, t)
        start = time.perf_counter()
        wref = ray.put(np.asarray(weights, dtype=np.float64))
        on_time, late, dropped = [], [], []
        times = np.full(self.n, np.inf)
        answered: set[int] = set()  # replied for round t (message or crash)
        arrived: list[int] = []  # senders of finite on-time messages (count for ready)

        def handle(w: int, ref, rnd: int) -> None:
            del self.busy[w]
            rep = self._get(w, ref)
            if rep == "dead":
                dropped.append(f"worker {w} died (Ray actor error); marked dead")
                return
            if rnd == t:
                answered.add(w)
                if rep is not None and rep.message is not None:
                    on_time.append(rep.message)
                    if _finite(rep.message):
                        arrived.append(w)
                    times[w] = (time.perf_counter() - start) / self._scale
                return
            # A result of an older round (stateful schemes only keep these).
            if rep is not None and rep.message is not None and self.stateful:
                if t - rep.round <= self.late_cap:
                    late.append(rep.message)
                else:
                    dropped.append(f"late result of worker {w} from round {rep.round} too old")
            if w not in self.dead:
                self._launch(w, t, wref)  # free again: send it the current round

        # Non-blocking sweep of results that arrived between rounds.
        if self.busy:
            refs = {ref: (w, rnd) for w, (ref, rnd) in self.busy.items()}
            done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in done:
                w, rnd = refs[ref]
                handle(w, ref, rnd)
        for w in range(self.n):
            if w not in self.dead and w not in self.busy:
                self._launch(w, t, wref)

        limit = None if self.deadline is None else self.deadline * self.time_scale
        ready = False
        while True:
            if self.scheme.ready(arrived):
                ready = True
                break
            possible = arrived + [w for w in self.busy if w not in self.dead]
            if not self.busy or not self.scheme.ready(possible):
                break  # nobody left who could make the scheme ready
            remaining = None
            if limit is not None:
                remaining = limit - (time.perf_counter() - start)
                if remaining <= 0:
                    break
            refs = {ref: (w, rnd) for w, (ref, rnd) in self.busy.items()}
            done, _ = ray.wait(list(refs), num_returns=1, timeout=remaining)
            if not done:
                break  # deadline
            w, rnd = refs[done[0]]
            handle(w, done[0], rnd)

        # Could this round's stop rule have been met at all (live workers still computing)?
        decodable = ready or self.scheme.ready(
            arrived + [w for w in self.busy if w not in self.dead]
        )
        elapsed = time.perf_counter() - start
        duration = elapsed / self._scale
        for w in self.busy:
            if w not in self.dead:
                times[w] = np.nextafter(duration, np.inf)
        if not self.stateful and self.busy:  # late work is useless: stop it
            for ref, _ in self.busy.values():
                ray.cancel(ref)
            self.busy.clear()
        return RoundOutcome(on_time, late, duration, times, ready, dropped, bool(decodable))

    @property
    def _scale(self) -> float:
        return self.time_scale if self.time_scale > 0 else 1.0

    # ------------------------------------------------------------------ faults

    def kill(self, worker: int) -> None:
        """Kill a worker's actor (its process); the cluster notices on its next result."""
        self.ray.kill(self.actors[worker], no_restart=True)

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
        return {"worker_states": states, "dead": sorted(self.dead)}

    def restore(self, state: dict) -> None:
        """Push worker states into the actors (fresh workers for dead ones)."""
        from ray.exceptions import RayActorError

        for w, st in enumerate(state["worker_states"]):
            if w in self.dead:
                continue
            st = self.scheme.init_worker(w) if st is None else st
            try:
                self.ray.get(self.actors[w].set_state.remote(st))
            except RayActorError:
                self.dead.add(w)
        self.busy.clear()

    # ------------------------------------------------------------------ streaming

    def stream_chunks(self, worker: int, t: int, weights, parts, delays=None):
        """A Ray streaming generator yielding ``(worker, partition, gradient)`` per chunk.

        ``delays[i]`` (schedule units, scaled by ``time_scale``) is when chunk
        ``i`` may be reported, counted from the start of the call.
        """
        wref = weights if isinstance(weights, self.ray.ObjectRef) else self.ray.put(weights)
        return (
            self.actors[worker]
            .chunks.options(num_returns="streaming")
            .remote(t, wref, tuple(parts), None if delays is None else tuple(delays))
        )

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self.ray.kill(a, no_restart=True)
            except Exception:
                pass
        self.actors = []
        self.busy = {}
        if self._owns_ray:
            self.ray.shutdown()
            self._owns_ray = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _finite(m) -> bool:
    return bool(np.isfinite(np.asarray(m.vector)).all())
