"""Another scheme on the same Ray actors (``--scheme auto`` switching at a round boundary).

Starting an actor costs seconds (a process, ``import torch``); switching the
scheme of a running :class:`~gradcode.runtime.ray.cluster.RayCluster` costs
one call per actor.  :func:`switch` keeps everything that does not depend on
the scheme -- the actors, the Ray connection, ``time_scale``, the calibrated
overheads and their tracker, the seeded straggler schedule (its draws are
keyed by (round, worker), not by scheme), dead workers and replacements being
started -- and changes what does:

* **Partitions.**  A worker whose placement stores other partitions under the
  new scheme (compared as sets; e.g. DGD's ``{w}`` -> FRC's group) is sent the
  task cut to its new partitions (the oracle's ``restrict``, as at start-up);
  the others keep the data they hold, so a switch between schemes with the
  same placement ships no data at all.  A task that cannot be cut stays shared.
* **Scheme state.**  Every actor gets the new scheme and its *initial* worker
  state, and warms up as at start-up (one gradient, untimed); the master's
  sequential plan and weight history start afresh.  Work in flight under the
  old scheme is cancelled (abandoned, as on the local backend); calls already
  abandoned still report their finishing times later (``late_times``).
* **Failures.**  A dead worker without a replacement stays dead; a replacement
  still starting gets the new scheme queued behind its start-up and rejoins
  once both are done.  An actor that dies while reloading, or has not answered
  within :data:`RELOAD_TIMEOUT` seconds (then it is killed), is marked dead
  (respawned with the new scheme when the cluster respawns); the note goes
  into the next round's record.  Nothing waits without a bound.

The next round's record carries ``"reload": {"seconds", "workers"}`` (the
workers sent new partitions; a dead one gets them only if it is respawned).
"""

from __future__ import annotations

import time

from ..cluster import refuse_deadline
from ..oracle import oracle_methods
from .worker import placement_of

#: Seconds the live actors get, all together, to load a new scheme and partitions.
RELOAD_TIMEOUT = 120.0


def placements(scheme, n: int) -> list[frozenset[int]] | None:
    """The partitions each worker stores under ``scheme`` (``None``: unknown for some).

    >>> from gradcode.codes import make_scheme
    >>> placements(make_scheme("frc", 4, 1), 4)
    [frozenset({0, 1}), frozenset({0, 1}), frozenset({2, 3}), frozenset({2, 3})]
    """
    out = [placement_of(scheme, w) for w in range(n)]
    return None if any(p is None for p in out) else [frozenset(p) for p in out]


def new_payloads(cluster, scheme, task) -> dict[int, object]:
    """Per worker whose data must change, its new payload (an object-store ref); updates
    ``cluster.payloads`` and ``cluster.held`` (``None``: every worker shares the task)."""
    ray, n = cluster.ray, cluster.n
    want = placements(scheme, n)
    restrict = oracle_methods(task).restrict
    if want is not None:
        old = cluster.held
        moved = [w for w in range(n) if old is None or want[w] != old[w]]
        cuts = {w: restrict(sorted(want[w])) for w in moved}
        if all(c is not None for c in cuts.values()):
            refs = {w: ray.put(c) for w, c in cuts.items()}
            cluster.payloads = [refs.get(w, cluster.payloads[w]) for w in range(n)]
            cluster.held = want
            return refs
    if cluster.held is None:  # already one shared copy: nothing to ship
        return {}
    shared = ray.put(task)
    cluster.payloads, cluster.held = [shared] * n, None
    return dict.fromkeys(range(n), shared)


def switch(cluster, scheme, task, timeout: float = RELOAD_TIMEOUT) -> dict:
    """Run ``scheme`` on ``cluster``'s actors from the next round on (module docstring);
    returns what the next record logs as ``"reload"``."""
    from ray.exceptions import RayActorError

    if scheme.n != cluster.n:
        raise ValueError(f"cannot switch {cluster.n} workers to a scheme for {scheme.n}")
    refuse_deadline(scheme, cluster.deadline)
    sequential = bool(getattr(scheme, "sequential", False))
    ray, t0 = cluster.ray, time.perf_counter()
    for ref, _ in cluster.busy.values():  # work in flight under the old scheme: abandoned
        ray.cancel(ref)
    cluster.busy.clear()
    refs = new_payloads(cluster, scheme, task)
    cluster.scheme, cluster.sequential = scheme, sequential
    cluster.chunked = bool(getattr(scheme, "chunked", False))
    cluster.stateful = bool(getattr(scheme, "stateful", False))
    cluster.late_cap = scheme.s + 1
    cluster.plan = scheme.init_plan() if sequential else None
    cluster.history = {}
    cluster._scheme_ref = ray.put(scheme)
    waiting: dict = {}
    sent = []  # workers sent new partitions
    for w, actor in enumerate(cluster.actors):
        if w in cluster.dead and w not in cluster.starting:
            continue  # dead for good (or until mark_dead's respawn, which uses the new scheme)
        ref = actor.switch.remote(cluster._scheme_ref, refs.get(w))
        sent += [w] if w in refs else []
        if w in cluster.starting:  # rejoins once started *and* reloaded
            cluster.starting[w] = ref
        else:
            waiting[ref] = w
    done, late = ray.wait(list(waiting), num_returns=len(waiting), timeout=timeout)
    notes = cluster.pending_notes
    for ref in done:
        try:
            ray.get(ref)
        except RayActorError:
            cluster.mark_dead(waiting[ref], notes, "died while loading the new scheme")
    for ref in late:
        w = waiting[ref]
        cluster.kill(w)
        cluster.mark_dead(w, notes, f"did not load the new scheme within {timeout:g} s; killed")
    return {"seconds": round(time.perf_counter() - t0, 3), "workers": sent}
