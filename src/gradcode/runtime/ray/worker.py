"""The worker side of the Ray backend: what each actor holds and computes.

Each worker is one :class:`WorkerActor`.  It receives, through the object
store, its *payload*: either the master's task cut down to the partitions the
worker's placement stores (:func:`worker_payload`: the oracle's
``restrict(parts)``, e.g. :meth:`gradcode.task.Task.restrict`) or, for an
oracle that cannot be cut, the whole oracle, which every actor shares
read-only (one ``ray.put``, mapped zero-copy by every actor on a node).  The scheme's worker
state (e.g. PGC's stored gradients) lives on the actor and never travels.

All uses of the task are in :func:`gradients`, so a change of the task's API
(minibatches keyed by (partition, round), tensors) is one small edit there.

Delays: a call carries the real number of seconds after its start at which
the result may be reported (``target``); compute time already spent counts
towards it, so a worker never finishes *before* its compute is done.
``inf`` means crashed for that call: nothing is computed or sent.  A call
cancelled while it waits (a stateless scheme's straggler, after the round
ended) is *abandoned* by the master (:meth:`WorkerActor.abandon`): it returns at
once, without its message, stamped with when it would have finished
(:attr:`Reply.abandoned`), so the master can log every worker's finishing time;
a call cancelled outright says so in its next reply (:attr:`Reply.unsent`).

Zero-copy vectors: weights and message vectors that are CPU torch tensors
travel as :class:`Shipped` NumPy views (:func:`ship`), which Ray stores with
one copy into the object store and hands to every reader on the node without
copying (a pickled tensor is copied on both ends); :func:`unship` turns them
back into tensors (read-only memory: gradcode never writes a received vector
in place).  NumPy gradients are viewed as tensors for the scheme's encode, so
an uncoded message is the gradient itself (no copy) and a coded one is
accumulated in place (one pass per term), then checked for finiteness once.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..oracle import oracle_methods, partition_gradients

#: Ray options of every worker actor (no CPU reservation: delays are sleeps; spread over
#: the nodes; a few concurrent calls, e.g. a round and a state fetch).
ACTOR_OPTIONS = {"num_cpus": 0, "scheduling_strategy": "SPREAD", "max_concurrency": 4}


def placement_of(scheme, worker: int) -> tuple[int, ...] | None:
    """The partitions ``worker`` stores (``None``: unknown, keep all data)."""
    pl = getattr(scheme, "placement", None)
    if pl is None:
        pl = getattr(getattr(scheme, "code", None), "placement", None)
    return None if pl is None else tuple(int(p) for p in pl[worker])


def gradients(task, parts: Iterable[int], weights, t: int) -> dict:
    """Partition gradients of ``parts`` at ``weights`` for round ``t`` (the one task call).

    ``t`` is the round whose data (minibatch) the gradient uses: the job's
    round for sequential schemes.  Tasks with a batched
    ``partition_gradients(weights, t, parts)`` are called once; others once per
    partition (``partition_gradient(j, weights)``, full batch).
    """
    return dict(partition_gradients(task, weights, t, [int(p) for p in parts]))


def worker_payloads(task, scheme, n: int) -> list | None:
    """Per worker, ``task`` cut down to the partitions it stores (``None``: the oracle
    cannot be cut, or the placement is unknown; then every worker shares it whole)."""
    restrict = oracle_methods(task).restrict
    out = []
    for w in range(n):
        parts = placement_of(scheme, w)
        cut = None if parts is None else restrict(parts)
        if cut is None:
            return None
        out.append(cut)
    return out


@dataclass(frozen=True)
class Reply:
    """What an actor returns for one call."""

    worker: int
    round: int  # the round of the call (the job's round is message.round)
    message: object | None  # None: crashed for that call
    compute_seconds: float
    load: int = 0  # partitions computed (what the straggler schedule was read at)
    finite: bool = True  # the payload has no NaN/Inf (checked here, off the master's path)
    started: float = 0.0  # wall clock (time.time()) when the call started on the actor
    finished: float = 0.0  # wall clock when the actor returned
    #: Earlier calls cancelled while they waited: ``(round, wall clock at which it would
    #: have finished, compute seconds)`` each.
    unsent: tuple = ()
    #: The master abandoned the call (:meth:`WorkerActor.abandon`): ``message`` is None and
    #: ``finished`` is when it would have finished.
    abandoned: bool = False


@dataclass(frozen=True)
class Shipped:
    """A CPU torch tensor travelling as a NumPy view (zero-copy through Ray's store)."""

    array: object


def ship(v):
    """``v`` ready for the object store: a CPU torch tensor as :class:`Shipped`, else ``v``."""
    if type(v).__module__.startswith("torch") and getattr(v, "device", None) is not None:
        if v.device.type == "cpu" and not v.requires_grad:
            return Shipped(v.numpy())
    return v


def unship(v):
    """The tensor back from a :class:`Shipped` (sharing its memory), else ``v``."""
    if not isinstance(v, Shipped):
        return v
    import torch

    with warnings.catch_warnings():  # the store's memory is read-only: never written here
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(v.array)


def ship_message(msg):
    return msg if msg is None else replace(msg, vector=ship(msg.vector))


def unship_message(msg):
    if not isinstance(getattr(msg, "vector", None), Shipped):  # None, or a stream's tuple
        return msg
    return replace(msg, vector=unship(msg.vector))


def as_tensors(grads: dict) -> tuple[dict, bool]:
    """NumPy float gradients viewed as CPU tensors (no copy) so the scheme's encode takes
    its in-place path; ``(grads, True)`` when they were converted."""
    import numpy as np

    if not grads or not all(
        isinstance(g, np.ndarray) and g.dtype.kind == "f" for g in grads.values()
    ):
        return grads, False
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return {p: torch.from_numpy(g) for p, g in grads.items()}, True


def as_array(v):
    """A CPU tensor's NumPy view (the inverse of :func:`as_tensors` for a message)."""
    return v.numpy() if hasattr(v, "numpy") and not isinstance(v, Shipped) else v


def finite(v) -> bool:
    """No NaN/Inf in ``v`` (NumPy or torch).  A finite sum proves it without a temporary
    array; only a non-finite sum (or an overflow) pays for the element-wise check."""
    if hasattr(v, "isfinite"):  # torch
        return bool(v.sum().isfinite()) or bool(v.isfinite().all())
    import numpy as np

    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(v))) or bool(np.isfinite(v).all())


def poison(msg):
    """The same message with a NaN payload (fault injection; numpy or torch)."""
    return replace(msg, vector=msg.vector * float("nan"))


class WorkerActor:
    """One worker: its payload (task), the scheme's worker state, its delays."""

    def __init__(self, w: int, scheme=None, task=None, schedule=None, nan: bool = False,
                 threads: int = 1, preload: tuple[str, ...] = ()) -> None:  # fmt: skip
        """A worker, configured now or (``scheme=None``: started early, while the master
        still builds the task) by a later :meth:`configure`; ``preload`` names modules to
        import at once (``"torch"``: the import overlaps with the master's work)."""
        for module in preload:
            __import__(module)
        self.w, self.unsent, self.scheme = w, [], None
        self.abandoned, self.waiting = set(), {}
        if scheme is not None:
            self.configure(w, scheme, task, schedule, nan, threads)

    def configure(self, w: int, scheme, task, schedule, nan: bool, threads: int = 1,
                  warm: bool = False) -> int:  # fmt: skip
        """(Re)load everything a run needs; an existing actor can serve a new run.
        ``warm``: then :meth:`ping` with ``warm=True``."""
        if "torch" in sys.modules:  # the payload is a torch task (unpickling imported torch)
            sys.modules["torch"].set_num_threads(threads)
        self.w, self.scheme, self.schedule, self.nan = w, scheme, schedule, nan
        self.task, self.unsent = task, []
        self.abandoned, self.waiting = set(), {}
        self.state = scheme.init_worker(w)
        return self.ping(True) if warm else w

    def switch(self, scheme, task=None) -> int:
        """Another scheme from the next round on (``--scheme auto``): its initial worker
        state, new partitions ``task`` (``None``: keep the data held), warmed as at start."""
        task = self.task if task is None else task
        return self.configure(self.w, scheme, task, self.schedule, self.nan, warm=True)

    def ping(self, warm: bool = False) -> int:
        """Ready check; ``warm=True`` also computes (and discards) one gradient of the
        worker's first partition, so one-time costs (first autograd/vmap call, page
        faults of the data) are paid before round 0 and not timed as part of it."""
        if warm:
            try:
                state = self.scheme.init_worker(self.w)
                parts = list(self.scheme.compute_plan(state, self.w, 0))[:1]
                init = getattr(self.task, "initial_weights", None)
                if parts and init is not None:
                    gradients(self.task, parts, init(), 0)
            except Exception:  # noqa: BLE001 - warming is best effort; rounds report errors
                pass
        return self.w

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def get_state(self):
        return self.state

    def set_state(self, state) -> None:
        self.state = state

    async def _sleep_until(self, start: float, target: float) -> None:
        wait = target - (time.perf_counter() - start)
        if wait > 0:
            await asyncio.sleep(wait)

    def _message(self, plan, weights, t: int):
        """Gradients and this worker's message for ``plan``; ``(state, message, finite)``."""
        grads, converted = as_tensors(gradients(self.task, plan, unship(weights), t))
        state, msg = self.scheme.worker_message(self.state, self.w, t, grads)
        msg = poison(msg) if self.nan else msg
        ok = finite(msg.vector)
        if converted:
            msg = replace(msg, vector=as_array(msg.vector))
        return state, ship_message(msg), ok

    def _unsent(self) -> tuple:
        unsent, self.unsent = tuple(getattr(self, "unsent", ())), []
        return unsent

    async def round(self, t: int, weights, time_scale: float) -> Reply:
        """Plain and stateful schemes: plan, gradients, message; delay from the schedule."""
        import numpy as np

        wall, start = time.time(), time.perf_counter()
        plan = self.scheme.compute_plan(self.state, self.w, t)
        target = float(self.schedule.times(t, np.full(self.scheme.n, len(plan)))[self.w])
        if not math.isfinite(target):
            return Reply(self.w, t, None, 0.0, len(plan), True, wall, time.time(), self._unsent())
        self.state, msg, ok = self._message(plan, weights, t)
        spent = time.perf_counter() - start
        finish = wall + max(spent, target * time_scale)  # when it is due, wall clock
        try:
            if await self._wait_unless_abandoned(t, start, target * time_scale):
                # the round ended without it: say when it would have finished, send nothing
                return Reply(self.w, t, None, spent, len(plan), ok, wall, finish, abandoned=True)
        except asyncio.CancelledError:  # cancelled instead (a checkpoint, detach, close)
            self.unsent.append((t, finish, spent))
            raise
        return Reply(self.w, t, msg, spent, len(plan), ok, wall, time.time(), self._unsent())

    async def _wait_unless_abandoned(self, t: int, start: float, target: float) -> bool:
        """Sleep until ``target`` seconds after ``start``; True at once if round ``t`` is
        (or gets) abandoned by the master (:meth:`abandon`)."""
        if t in self.abandoned:
            return True
        wait = target - (time.perf_counter() - start)
        if wait <= 0:
            return False
        event = self.waiting[t] = asyncio.Event()
        try:
            await asyncio.wait_for(event.wait(), timeout=wait)
            return True
        except TimeoutError:
            return t in self.abandoned
        finally:
            self.waiting.pop(t, None)

    async def abandon(self, t: int) -> None:
        """The master's round ``t`` ended without this worker's call: the call returns now,
        without its message, stamped with when it would have finished."""
        self.abandoned.add(t)
        self.abandoned = {r for r in self.abandoned if r > t - 8}
        if t in self.waiting:
            self.waiting[t].set()

    async def warmup(self, weights, t: int, fresh: bool = False) -> Reply:
        """Calibration: round ``t`` of this worker on a scratch copy of its state (``fresh``:
        start that copy anew), no delay, nothing kept; the reply times the compute and
        carries the real message, so its way back is timed too."""
        wall, start = time.time(), time.perf_counter()
        sch = self.scheme
        if fresh or getattr(self, "scratch", None) is None:
            self.scratch = sch.init_worker(self.w)
        saved = self.state
        try:
            if getattr(sch, "chunked", False):
                plan = tuple(sch.placement[self.w])
                grads = gradients(self.task, plan, unship(weights), t)
                msg = sch.chunk_message(self.w, t, int(plan[0]), grads[int(plan[0])])
                load = len(plan) * float(getattr(sch, "chunk_load", 1.0))
                msg, ok = ship_message(msg), True
            else:
                state = None if getattr(sch, "sequential", False) else self.scratch
                plan = sch.compute_plan(state, self.w, t)
                self.state = state
                state, msg, ok = self._message(plan, weights, t)
                self.scratch, load = state, len(plan)
        finally:
            self.state = saved
        spent = time.perf_counter() - start
        return Reply(self.w, t, msg, spent, load, ok, wall, time.time())

    async def echo(self, payload, compute: float = 0.0):
        """Calibration: wall-clock stamps of a call that returns ``payload`` (a message-sized
        or tiny vector) after ``compute`` seconds of busy work."""
        wall = time.time()
        end = time.perf_counter() + compute
        while time.perf_counter() < end:
            pass
        return wall, time.time(), payload

    async def job(self, t: int, job: int, weights, target: float) -> Reply:
        """Sequential schemes: this round's task is job ``job`` at that job's weights."""
        wall, start = time.time(), time.perf_counter()
        if not math.isfinite(target):
            return Reply(self.w, t, None, 0.0, 0, True, wall, time.time())
        parts = self.scheme.compute_plan(None, self.w, t)
        grads, converted = as_tensors(gradients(self.task, parts, unship(weights), job))
        _, msg = self.scheme.worker_message(None, self.w, job, grads)
        msg = poison(msg) if self.nan else msg
        if converted:
            msg = replace(msg, vector=as_array(msg.vector))
        spent = time.perf_counter() - start
        await self._sleep_until(start, target)
        return Reply(self.w, t, ship_message(msg), spent, len(parts), True, wall, time.time())

    async def chunks(self, t: int, weights, plan, finish):
        """Chunked schemes, a streaming generator: one message per finished chunk.

        ``plan`` is the worker's chunk order (``scheme.placement[w]``, as the local
        backend uses); ``finish[i]`` (real seconds from the call's start) is when
        chunk ``plan[i]`` may be reported; ``inf``: the worker stops there.
        """
        start = time.perf_counter()
        for i, chunk in enumerate(plan):
            if i >= len(finish) or not math.isfinite(finish[i]):
                return
            g = gradients(self.task, (chunk,), unship(weights), t)[int(chunk)]
            msg = self.scheme.chunk_message(self.w, t, int(chunk), g)
            await self._sleep_until(start, float(finish[i]))
            yield ship_message(poison(msg) if self.nan else msg)

    async def partitions(self, t: int, weights, parts, delays=None):
        """Streaming generator: ``(worker, partition, gradient)`` per partition of ``parts``."""
        start = time.perf_counter()
        for i, p in enumerate(parts):
            g = gradients(self.task, (p,), unship(weights), t)[int(p)]
            if delays is not None:
                await self._sleep_until(start, float(delays[i]))
            yield (self.w, int(p), g)
