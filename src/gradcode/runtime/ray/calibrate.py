"""The Ray backend's own clock: measure its overheads in a warm-up, predict every round.

The straggler schedule says when each worker *should* finish (its injected
delay, in schedule units times ``time_scale``); a real runtime adds its own
costs, and on a small machine they are of the same order as the delays.  So
right after the actors are up, :func:`calibrate` runs a short warm-up on the
run's own actors, scheme and task, at the initial weights, with no injected
delay and without touching any worker's state:

* ``rounds`` *warm-up rounds* (more for stateful schemes, whose load changes
  after their first rounds): every live worker computes its plan of round
  ``t`` on a scratch copy of its state and returns its real message, launched
  and collected exactly as a training round does.  Each reply carries the
  actor's wall-clock stamps, so per worker and round the warm-up records
  *launch* (round start -> the call starts on the actor: putting the weights
  in the store, the calls launched before it), *compute* (seconds computing
  the plan's gradients and the message; with ``n`` actors on few cores this
  is contended time, as in a real round) and *back* (the actor returns -> the
  master holds the deserialised result);
* ``rounds`` *echo rounds* returning a 1-element vector after no compute: the
  way back of a tiny message, which separates the per-message latency from the
  per-byte cost;
* the master's decode and update of one warm-up round's messages (timed, logged:
  the loop does it between rounds, outside a round's ``duration``).

:func:`gradcode.clock.fit_overheads` turns these into
:class:`~gradcode.clock.Overheads`, and every round's ``predicted_duration``
is then :func:`gradcode.clock.predict_round`: each worker arrives at
``launch + max(compute(load), target) + back``, and the round ends when the
scheme's stop rule is met over those arrivals.  The virtual clock's value
(no overheads) is logged beside it as ``simulated_duration``.

Start-up is timed separately (``RayCluster.startup``: connecting, starting or
reloading the actors, calibrating) and logged once, in the first round's record
and in ``summary.json`` (``startup_seconds``), never as part of a round.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace

import numpy as np

from ...clock import Overheads, fit_overheads
from .worker import ship, unship_message

#: Warm-up rounds of a stateless scheme (and echo rounds).
WARMUP_ROUNDS = 3


def warmup_rounds(scheme, rounds: int = WARMUP_ROUNDS) -> list[int]:
    """The rounds ``t`` the warm-up replays: ``rounds`` of them, plus enough for a
    stateful scheme to reach its steady load (PGC: past its filling rounds).

    >>> from gradcode.codes import make_scheme
    >>> warmup_rounds(make_scheme("frc", 4, 1)), len(warmup_rounds(make_scheme("pgc", 4, 1)))
    ([0, 1, 2], 7)
    """
    extra = 0
    if getattr(scheme, "stateful", False):
        extra = int(getattr(scheme, "fill", 0)) + 2
    return list(range(rounds + extra))


def _collect(ray, refs: dict, round_wall: float):
    """Replies in arrival order: ``(worker, reply, master's wall clock on arrival)``."""
    out = []
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        rep = ray.get(done[0])
        out.append((refs[done[0]], rep, time.time()))
    return out


class OverheadTracker:
    """The warm-up's measurements plus those of the latest rounds -> current overheads.

    Every on-time reply of a training round measures its worker's launch, compute
    and way back just as the warm-up does; the prediction of round ``t`` uses the
    warm-up and rounds ``< t`` only (the last ``window`` rounds' worth), so it
    follows a machine whose load changes and never sees the round it predicts.
    Launch and compute are per worker over both sets (a worker that is never on
    time keeps its warm-up values); the way back is the median of the rounds'
    own measurements once there are ``n / 2`` of them (real results arrive spread
    out by their delays, unlike the warm-up's, which queue at the master), else
    the warm-up's lower quartile.
    """

    def __init__(self, n: int, warmup: list, tiny: list, window: int = 10) -> None:
        self.n, self.warmup, self.tiny = n, list(warmup), list(tiny)
        self.recent: deque = deque(maxlen=max(window * n, 1))
        self._fitted, self._new = None, 0

    def observe(self, sample: tuple) -> None:
        """One reply: ``(worker, load, launch, compute, back, nbytes)``."""
        self.recent.append(sample)
        self._new += 1

    def current(self) -> Overheads:
        """The overheads to predict the next round with; refitted once about three rounds'
        worth of new replies (``3 n``) came in, so the master spends ~0.1 ms a round here."""
        if self._fitted is None or self._new >= 3 * self.n:
            self._fitted, self._new = self._fit(), 0
        return self._fitted

    def _fit(self) -> Overheads:
        over = fit_overheads(self.warmup + list(self.recent), self.tiny, n=self.n)
        if len(self.recent) < max(self.n // 2, 1):
            return over
        back = float(np.median([s[4] for s in self.recent]))
        nbytes = float(np.median([s[5] for s in self.recent]))
        message = max(back - nbytes * over.per_byte, 0.0)
        return replace(over, message=message)


def calibrate(cluster, weights, rounds: int = WARMUP_ROUNDS) -> tuple[Overheads, dict]:
    """Measure ``cluster``'s overheads (see the module docstring); ``(overheads, info)``
    with ``info`` the numbers logged (medians in seconds, message bytes, decode)."""
    ray, live = cluster.ray, cluster.live()
    samples, tiny, last = [], [], []
    for i, t in enumerate(warmup_rounds(cluster.scheme, rounds)):
        wall = time.time()
        wref = ray.put(ship(weights))
        refs = {cluster.actors[w].warmup.remote(wref, t, i == 0): w for w in live}
        got = _collect(ray, refs, wall)
        for w, rep, arrived in got:
            vec = getattr(rep.message, "vector", None)
            nbytes = float(getattr(getattr(vec, "array", vec), "nbytes", 0.0))
            samples.append((w, rep.load, rep.started - wall, rep.compute_seconds,
                            arrived - rep.finished, nbytes))  # fmt: skip
        last = [unship_message(rep.message) for _, rep, _ in got]
    probe = np.zeros(1)
    for _ in range(rounds):
        wall = time.time()
        refs = {cluster.actors[w].echo.remote(probe): w for w in live}
        for w, (started, finished, _), arrived in _collect(ray, refs, wall):
            tiny.append((w, 0, started - wall, 0.0, arrived - finished, float(probe.nbytes)))
    cluster.tracker = OverheadTracker(cluster.n, samples, tiny)
    decode = _decode_seconds(cluster.scheme, last)
    over = fit_overheads(samples, tiny, n=cluster.n)
    S = np.asarray(samples, dtype=float).reshape(-1, 6)
    info = {
        **{k: round(v, 6) for k, v in over.to_dict().items() if k != "per_byte"},
        "per_byte": over.per_byte,
        "message_bytes": float(np.median(S[:, 5])) if len(S) else 0.0,
        "decode_seconds": round(decode, 6),
        "warmup_rounds": len(warmup_rounds(cluster.scheme, rounds)),
    }
    return over, info


def _decode_seconds(scheme, messages) -> float:
    """Seconds of the master's decode of ``messages`` (0 when they cannot be decoded
    from a fresh master state, e.g. chunks of a streaming scheme)."""
    msgs = [m for m in messages if m is not None]
    if not msgs or getattr(scheme, "chunked", False) or getattr(scheme, "sequential", False):
        return 0.0
    try:
        t0 = time.perf_counter()
        scheme.master_update(scheme.init_master(), msgs[0].round, msgs)
        return time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - informational only
        return 0.0
