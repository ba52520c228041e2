"""The rounds of the Ray backend (same semantics as the local one).

**Plain and stateful schemes** (:func:`run_plain`): see
:class:`~gradcode.runtime.ray.cluster.RayCluster`.

**Chunked schemes** (``scheme.chunked``: ``partial``, and any scheme speaking
the same protocol -- ``placement``, ``chunk_message``, ``ready`` over
``(chunk, worker)`` pairs).  Every live worker gets one *streaming* call
(a Ray streaming generator, ``num_returns="streaming"``) that yields one
message per finished chunk of its plan; chunk ``i`` is reported at the
cumulative sum of the worker's seeded per-chunk times
(``schedule.chunk_times(t, width)``, as the local backend) times
``time_scale``.  The master consumes all streams in arrival order and stops as
soon as every chunk has ``l`` finishers (``scheme.ready``), at the deadline,
or when every stream has ended (dead or crashed workers: best-effort decode,
logged by the loop); the other streams are then cancelled.

**Sequential schemes** (``scheme.sequential``: ``sr_sgc``).  The master keeps
the plan (who owes which job) and the weights of recent rounds in the object
store.  In round ``t`` worker ``w`` computes job ``scheme.jobs(plan, t)[w]``
(``t``, or ``t - B`` for an owed recompute) at that job's weights, reporting
at ``schedule.times(t, load)[w] * time_scale``.  The round ends -- in real
time, by the rule of :meth:`SRSGC.stop` -- once every owed recompute has
answered and either job ``t`` is decodable (``n - s'`` fresh results) or
``patience`` x the time of the ``(n - lambda)``-th arrival has passed (later
workers are this round's stragglers); a dead or crashed recomputer makes the
round wait for every live worker and reports ``ready = False``.  Then
``scheme.advance`` records who answered, and outstanding calls are cancelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ..cluster import RoundOutcome, worker_fields
from .connect import import_ray
from .worker import finite as finite_vector
from .worker import ship, unship_message


def finite(m) -> bool:
    """Is a message's payload finite (NumPy or torch)?"""
    return finite_vector(m.vector)


def _scaled(times: np.ndarray, scale: float) -> np.ndarray:
    fin = np.isfinite(times)
    return np.where(fin, np.where(fin, times, 0.0) * scale, np.inf)


def _next(ray, gen):
    """The next item of a ready streaming generator: a value, ``StopIteration`` or an error."""
    from ray.exceptions import RayActorError, RayTaskError, TaskCancelledError

    try:
        return unship_message(ray.get(next(gen)))
    except StopIteration:
        return StopIteration
    except TaskCancelledError:
        return StopIteration
    except (RayActorError, RayTaskError) as exc:
        return exc


def consume_stream(
    streams: dict[int, object],
    predicate: Callable[[list], bool],
    timeout: float | None = None,
) -> tuple[list, bool]:
    """Consume Ray streaming generators (one per worker) in arrival order.

    Returns ``(received, satisfied)``: every item received, in arrival order,
    stopping as soon as ``predicate(received)`` holds, all streams are
    exhausted or dead, or ``timeout`` seconds pass.  A dead worker's stream
    just ends.
    """
    ray = import_ray()
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
        w = next(k for k, v in gens.items() if v is ready[0])
        item = _next(ray, gens[w])
        if item is StopIteration or isinstance(item, Exception):
            del gens[w]
            continue
        received.append(item)
    return received, predicate(received)


def round_log(cluster, t: int, times, loads, compute=None, simulated=None) -> dict:
    """The record fields of round ``t``: per-worker times (``None``: not reported
    in this round -- a late one is resolved in a later record's ``late_times``),
    loads, compute seconds; late times resolved since the last round; start-up and
    calibration in the first round of this cluster; the virtual clock's duration.

    ``compute`` is measured in seconds and logged in the round's clock units (divided
    by the time scale, as ``times`` are), so ``worker_times - worker_compute`` is the
    fixed part of a worker's time in one unit."""
    if compute is not None:
        compute = np.asarray(compute, dtype=float) / cluster.scale
    log = worker_fields(times, loads, compute)
    if cluster.late_times:  # [round, worker, time, compute seconds] -> compute in units
        log["late_times"] = [
            [r, w, at, round(c / cluster.scale, 6)] for r, w, at, c in cluster.late_times
        ]
        cluster.late_times = []
    if getattr(cluster, "reload", None) is not None:  # a switch before this round
        log["reload"], cluster.reload = cluster.reload, None
    if simulated is not None:
        log["simulated_duration"] = round(float(simulated), 9)
    if not cluster._startup_logged:
        cluster._startup_logged = True
        log["startup_seconds"] = cluster.startup.get("total", 0.0)
        log["startup"] = dict(cluster.startup)
        if cluster.calibration:
            log["calibration"] = dict(cluster.calibration)
    for r in [r for r in cluster.round_wall if r < t - cluster.late_cap - 2]:
        del cluster.round_wall[r]
    return log


def run_plain(cluster, t: int, weights, dropped: list[str]) -> RoundOutcome:
    """A plain or stateful round (``cluster``: the :class:`RayCluster`); see its docstring."""
    ray = cluster.ray
    cluster.round_wall[t] = time.time()
    start = time.perf_counter()
    wref = ray.put(ship(weights))
    on_time, late = [], []
    times = np.full(cluster.n, np.inf)
    logged = np.full(cluster.n, np.nan)  # per-worker times for the log (nan: not yet)
    compute = np.full(cluster.n, np.nan)
    arrived: list[int] = []  # senders of finite on-time messages (count for ready)
    loads = np.full(cluster.n, float(getattr(cluster.scheme, "load", 1)))
    nbytes = cluster.calibration.get("message_bytes", 0.0)

    def handle(w: int, ref, rnd: int) -> None:
        del cluster.busy[w]
        rep = cluster.get(w, ref, dropped)
        if rep == "dead":
            return
        if rnd == t:
            loads[w] = rep.load if rep is not None and rep.load else loads[w]
            if rep is not None and rep.message is not None:
                on_time.append(rep.message)
                if rep.finite:
                    arrived.append(w)
                times[w] = logged[w] = (time.perf_counter() - start) / cluster.scale
                compute[w] = rep.compute_seconds
                if cluster.tracker is not None:  # this round's own overheads, for later rounds
                    back = time.time() - rep.finished
                    launch = rep.started - cluster.round_wall[t]
                    cluster.tracker.observe((w, loads[w], launch, compute[w], back, nbytes))
            return
        if rep is not None and rep.message is not None:
            cluster.resolve_late(rnd, w, rep.finished, rep.compute_seconds)
        if rep is not None and rep.message is not None and cluster.stateful:
            if t - rep.round <= cluster.late_cap:
                late.append(rep.message)
            else:
                dropped.append(f"late result of worker {w} from round {rep.round} too old")
        if w not in cluster.dead:
            cluster._launch(w, t, wref)  # free again: send it the current round

    sweep_cancelled(cluster)
    if cluster.busy:  # non-blocking sweep of results that arrived between rounds
        refs = {ref: (w, rnd) for w, (ref, rnd) in cluster.busy.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            handle(refs[ref][0], ref, refs[ref][1])
    for w in cluster.live():
        if w not in cluster.busy:
            cluster._launch(w, t, wref)

    limit, ready = cluster.limit(), False
    while True:
        if cluster.scheme.ready(arrived):
            ready = True
            break
        if not cluster.busy:
            break  # every live worker answered: decode best-effort from what came
        remaining = None
        if limit is not None:
            remaining = limit - (time.perf_counter() - start)
            if remaining <= 0:
                break
        refs = {ref: (w, rnd) for w, (ref, rnd) in cluster.busy.items()}
        done, rest = ray.wait(list(refs), num_returns=1, timeout=remaining)
        if not done:
            break  # deadline
        if rest:  # take every result already in with one more call, in arrival order
            done += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in done:
            handle(refs[ref][0], ref, refs[ref][1])
            if cluster.scheme.ready(arrived):
                break

    # Could the stop rule have been met (live workers still computing)?
    decodable = ready or cluster.scheme.ready(arrived + list(cluster.busy))
    duration = (time.perf_counter() - start) / cluster.scale
    for w in cluster.busy:
        times[w] = np.nextafter(duration, np.inf)
    if not cluster.stateful and cluster.busy:  # late work is useless: stop it
        stop_late_calls(cluster, t, logged, compute)
    predicted, simulated = cluster.predicted(t, loads)
    log = round_log(cluster, t, logged, loads, compute, simulated)
    return RoundOutcome(
        on_time, late, duration, times, ready, dropped, bool(decodable), predicted, log
    )


def stop_late_calls(cluster, t: int, logged: np.ndarray, compute: np.ndarray) -> None:
    """End a stateless round's outstanding calls: results already in are only timed
    (into ``logged`` and ``compute``); the others are abandoned (:meth:`WorkerActor.abandon`: they
    return at once, without their message, stamped with when they would have finished;
    read at the next rounds, :func:`sweep_cancelled`)."""
    ray = cluster.ray
    refs = {ref: w for w, (ref, _) in cluster.busy.items()}
    done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
    start = cluster.round_wall[t]
    for ref in done:
        rep = cluster.get(refs[ref], ref, [])
        if rep is not None and rep != "dead" and rep.message is not None:
            logged[refs[ref]] = (rep.finished - start + cluster.back()) / cluster.scale
    for ref, w in refs.items():
        if ref not in done:
            cluster.actors[w].abandon.remote(t)
            cluster.cancelled.append((w, ref, t))
    cluster.busy.clear()
    if t == getattr(cluster.schedule, "rounds", 0) - 1:  # the last round: no later record
        pending = [r for _, r, rnd in cluster.cancelled if rnd == t]
        ray.wait(pending, num_returns=len(pending), timeout=LAST_ROUND_WAIT)
    sweep_cancelled(cluster)  # abandoned calls of earlier rounds that returned meanwhile
    for rnd, w, at, comp in [e for e in cluster.late_times if e[0] == t]:
        logged[w], compute[w] = at, comp  # this round's own: straight into its record
        cluster.late_times.remove([rnd, w, at, comp])


#: Seconds the last round waits for its abandoned calls' finishing times.
LAST_ROUND_WAIT = 2.0


def sweep_cancelled(cluster) -> None:
    """Abandoned calls (and cancelled ones that finished before their cancel arrived) that
    have returned: their workers' finishing times go into ``late_times``."""
    from ray.exceptions import RayActorError, TaskCancelledError

    if not cluster.cancelled:
        return
    ray, keep = cluster.ray, []
    done, _ = ray.wait([r for _, r, _ in cluster.cancelled], timeout=0,
                       num_returns=len(cluster.cancelled))  # fmt: skip
    done = set(done)
    for w, ref, rnd in cluster.cancelled:
        if ref not in done:
            if rnd in cluster.round_wall:
                keep.append((w, ref, rnd))
            continue
        try:
            rep = ray.get(ref)
        except (TaskCancelledError, RayActorError):
            continue
        if getattr(rep, "message", None) is not None or getattr(rep, "abandoned", False):
            cluster.resolve_late(rnd, w, rep.finished, rep.compute_seconds)
        for r, finish, compute in getattr(rep, "unsent", ()):
            cluster.resolve_late(r, w, finish, compute)
    cluster.cancelled = keep


def run_chunked(cluster, t: int, weights, notes: list[str]) -> RoundOutcome:
    from ray.exceptions import RayActorError

    ray, sch = cluster.ray, cluster.scheme
    width = max(len(p) for p in sch.placement)
    chunk_times = cluster.schedule.chunk_times(t, width)
    chunk_times = chunk_times * getattr(sch, "chunk_load", 1.0)  # smaller pieces: less time
    simulated = float(sch.chunk_completion_time(chunk_times[None])[0])
    finish = _scaled(np.cumsum(chunk_times, axis=1), cluster.time_scale)
    predicted = _chunked_prediction(cluster, finish)
    cluster.round_wall[t] = time.time()
    start = time.perf_counter()
    wref = ray.put(ship(weights))
    gens = {
        w: cluster.actors[w]
        .chunks.options(num_returns="streaming")
        .remote(t, wref, tuple(sch.placement[w]), tuple(float(x) for x in finish[w]))
        for w in cluster.live()
    }
    msgs, pairs = [], []
    got = np.zeros(cluster.n, dtype=int)
    times = np.full(cluster.n, np.inf)
    limit, ready = cluster.limit(), False
    while gens:
        if sch.ready(pairs):
            ready = True
            break
        remaining = None
        if limit is not None:
            remaining = limit - (time.perf_counter() - start)
            if remaining <= 0:
                break
        done, _ = ray.wait(list(gens.values()), num_returns=1, timeout=remaining)
        if not done:
            break
        w = next(k for k, v in gens.items() if v is done[0])
        item = _next(ray, gens[w])
        if item is StopIteration:
            del gens[w]
            continue
        if isinstance(item, RayActorError):
            del gens[w]
            cluster.mark_dead(w, notes)
            continue
        if isinstance(item, Exception):
            raise item
        msgs.append(item)
        got[w] += 1
        if got[w] == len(sch.placement[w]):
            times[w] = (time.perf_counter() - start) / cluster.scale
        if finite(item):
            pairs.append((item.partitions[0], w))
    ready = ready or sch.ready(pairs)
    duration = (time.perf_counter() - start) / cluster.scale
    possible = ready or _chunks_possible(sch, pairs, gens, got)
    for w, gen in gens.items():
        times[w] = np.nextafter(duration, np.inf)
        try:
            ray.cancel(gen)
        except Exception:  # already finished
            pass
    load = [len(p) * float(getattr(sch, "chunk_load", 1.0)) for p in sch.placement]
    log = round_log(cluster, t, np.where(times > duration, np.nan, times), load, None, simulated)
    return RoundOutcome(msgs, [], duration, times, ready, notes, bool(possible), predicted, log)


def _chunked_prediction(cluster, finish: np.ndarray) -> float:
    """Calibrated duration (schedule units) of a chunked round: chunk ``i`` of worker ``w``
    arrives at ``launch_w + max(compute_w x (i+1) / width, finish[w, i]) + back``."""
    sch, over = cluster.scheme, cluster.overheads
    n, width = finish.shape
    finish = np.where(np.isin(np.arange(n), sorted(cluster.dead))[:, None], np.inf, finish)
    load = width * float(getattr(sch, "chunk_load", 1.0))
    launch, compute, back = over.parts(n, load, cluster.calibration.get("message_bytes", 0.0))
    frac = np.arange(1, width + 1) / width
    arr = launch[:, None] + back + np.maximum(compute[:, None] * frac, finish)
    arr = np.where(np.isfinite(finish), arr, np.inf)
    with np.errstate(invalid="ignore"):  # inf - inf after a worker's last chunk: nan -> inf
        steps = np.diff(np.concatenate([np.zeros((n, 1)), arr], axis=1), axis=1)
    steps = np.where(np.isnan(steps), np.inf, steps)
    t = float(sch.chunk_completion_time(steps[None])[0])
    if cluster.deadline is not None:
        t = min(t, cluster.deadline * cluster.scale)
    if not np.isfinite(t):
        fin = arr[np.isfinite(arr)]
        t = float(fin.max()) if fin.size else 0.0
    return (t + over.master) / cluster.scale


def _chunks_possible(sch, pairs, gens, got) -> bool:
    """Could the streams still running have completed every chunk?"""
    extra = [(chunk, w) for w in gens for chunk in sch.placement[w][int(got[w]) :]]
    return bool(sch.ready(list(pairs) + extra))


def run_sequential(cluster, t: int, weights, notes: list[str]) -> RoundOutcome:
    ray, sch = cluster.ray, cluster.scheme
    for ref, _ in cluster.busy.values():  # nothing carries over between rounds
        ray.cancel(ref)
    cluster.busy.clear()
    cluster.round_wall[t] = time.time()
    start = time.perf_counter()
    cluster.history[t] = ray.put(ship(weights))
    plan = cluster.plan
    jobs = sch.jobs(plan, t)
    sched = cluster.schedule.times(t, sch.load)
    simulated = float(sch.stop(plan, t, sched)[0])
    arrivals = cluster.overheads.arrivals(
        _scaled(np.where(np.isin(np.arange(cluster.n), sorted(cluster.dead)), np.inf, sched),
                cluster.time_scale),
        np.full(cluster.n, float(sch.load)),
        cluster.calibration.get("message_bytes", 0.0),
    )  # fmt: skip
    predicted = (float(sch.stop(plan, t, arrivals)[0]) + cluster.overheads.master) / cluster.scale
    target = _scaled(sched, cluster.time_scale)
    for w in cluster.live():
        job = int(jobs[w])
        ref = cluster.actors[w].job.remote(t, job, cluster.history[job], float(target[w]))
        cluster.busy[w] = (ref, t)
    owed = set(sch.busy(plan, t))
    need, quorum_k = sch.n - sch.s_code, sch.n - sch.s
    msgs, answered, arrivals = [], set(), []  # arrivals: elapsed seconds of finite times
    compute = np.full(cluster.n, np.nan)
    crashed: set[int] = set()
    fresh = 0
    while cluster.busy:
        if owed & (cluster.dead | crashed):
            owed_done = False  # a recompute will never come: wait for every live worker
        else:
            owed_done = not (owed & set(cluster.busy))
        if owed_done and fresh >= need:
            break
        now = time.perf_counter() - start
        patience_end = None
        if len(arrivals) >= quorum_k:
            patience_end = sch.patience * sorted(arrivals)[quorum_k - 1]
            if owed_done and now >= patience_end:
                break
        remaining = None
        if owed_done and patience_end is not None:
            remaining = max(0.0, patience_end - now)
        refs = {ref: w for w, (ref, _) in cluster.busy.items()}
        done, _ = ray.wait(list(refs), num_returns=1, timeout=remaining)
        if not done:
            continue  # the patience window closed: re-check the rule
        w = refs[done[0]]
        del cluster.busy[w]
        rep = cluster.get(w, done[0], notes)
        if rep == "dead" or rep is None or rep.message is None:
            crashed.add(w)
            continue
        arrivals.append(time.perf_counter() - start)
        compute[w] = rep.compute_seconds
        msgs.append(rep.message)
        if finite(rep.message):
            answered.add(w)
            fresh += int(jobs[w]) == t
    ready = all(w in answered for w in owed)
    duration = (time.perf_counter() - start) / cluster.scale
    times = np.full(cluster.n, np.inf)
    for m, a in zip(msgs, arrivals, strict=True):
        times[m.worker] = a / cluster.scale
    logged = times.copy()
    for ref, _ in cluster.busy.values():
        ray.cancel(ref)
    for w in cluster.busy:
        times[w], logged[w] = np.nextafter(duration, np.inf), np.nan
    cluster.busy.clear()
    cluster.plan = sch.advance(plan, t, sch.by_job(plan, t, sorted(answered)))
    cluster.history = {r: v for r, v in cluster.history.items() if r > t - sch.delay - 1}
    log = round_log(cluster, t, logged, np.full(cluster.n, float(sch.load)), compute, simulated)
    return RoundOutcome(msgs, [], duration, times, ready, notes, ready, predicted, log)
