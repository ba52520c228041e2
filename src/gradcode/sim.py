"""Virtual-clock simulator: when can the master decode, and what does it get?

The simulator drives the scheme objects of :mod:`gradcode.codes` -- the same
objects the runtime uses -- through three vectorised hooks:

* ``code.completion_time(times)``: earliest time ``code.ready`` holds;
* ``code.decode_batch(used)``: exactness and residual per arrival pattern
  (closed forms, or one cached decode per distinct pattern);
* ``code.load``: partitions each worker processes per round;
* ``code.simulate_rounds(times)`` for sequential schemes only (round ``t``
  depends on earlier rounds), returning plain arrays, so :mod:`gradcode.codes`
  never imports the simulator;
* ``code.chunk_completion_time(increments)`` and ``code.decode_chunks_batch(done)``
  for chunked (streaming) schemes, on per-chunk times (:func:`simulate_chunked`),
  with the communication model of :mod:`gradcode.comm`.

Given worker finishing times ``T`` of shape ``(rounds, n)`` (``inf`` = never
reports), round ``r`` ends at ``t_r = completion_time(T[r])`` -- or, with a
deadline ``D``, at ``min(t_r, D)`` with whatever has arrived by then.  The
workers used are those with ``T[r, i] <= t_r``.  Rounds that can never
complete (``t_r = inf`` without a deadline) are reported as *not decodable*:
nothing ever hangs.  There is no Python loop over rounds or workers.

Example::

    >>> import numpy as np
    >>> from gradcode.codes import make_code
    >>> T = np.array([[1.0, 5.0, 2.0, 3.0]])
    >>> simulate(make_code("frc", 4, 1), T).times.tolist()   # max(min(1,5), min(2,3))
    [2.0]
    >>> simulate(make_code("dgd", 4, 0), T).times.tolist()
    [5.0]
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .codes import GradientCode
from .comm import arrival_increments
from .stragglers import DelayModel


@dataclass(frozen=True)
class SimResult:
    """Per-round outcome of a simulation (arrays over rounds).

    Attributes:
        scheme: the scheme's name.
        times: duration of each round (``inf`` = not decodable, never ends).
        used: ``(rounds, n)`` workers whose messages the master used.
        exact: the decode recovers the full gradient exactly.
        residual: ``||a B - 1||`` of the decode.
        decodable: the round ended (finite time).
    """

    scheme: str
    times: np.ndarray
    used: np.ndarray
    exact: np.ndarray
    residual: np.ndarray

    @property
    def decodable(self) -> np.ndarray:
        return np.isfinite(self.times)

    @property
    def rounds(self) -> int:
        return len(self.times)

    def summary(self) -> dict[str, float]:
        """Mean time per round over decodable rounds, fractions and residuals."""
        ok = self.decodable
        return {
            "scheme": self.scheme,
            "rounds": self.rounds,
            "mean_time": float(self.times[ok].mean()) if ok.any() else float("inf"),
            "p99_time": float(np.quantile(self.times[ok], 0.99)) if ok.any() else float("inf"),
            "decodable_fraction": float(ok.mean()),
            "exact_fraction": float(self.exact.mean()),
            "mean_residual": float(self.residual[ok].mean()) if ok.any() else float("nan"),
            "mean_workers_used": float(self.used.sum(axis=1).mean()),
        }


def simulate(
    code: GradientCode, worker_times: np.ndarray, deadline: float | None = None, comm=None
) -> SimResult:
    """Simulate rounds given each worker's finishing time ``(rounds, n)``.

    Extra leading axes (e.g. trials x rounds) are flattened in the result.
    For sequential schemes (``code.sequential``: round ``t`` depends on earlier
    rounds, as in SR-SGC) they are independent trials: every trial starts
    from a fresh plan, through the scheme's ``simulate_rounds`` hook.  Optional
    ``comm`` (a :class:`gradcode.comm.CommModel`) adds each message's send
    time ``latency + size / bandwidth``.  Chunked (streaming) schemes take
    per-chunk times ``(rounds, n, chunks)`` (:func:`simulate_chunked`).
    """
    if getattr(code, "chunked", False):
        return simulate_chunked(code, worker_times, deadline, comm)
    T = np.asarray(worker_times, dtype=float)
    if getattr(code, "sequential", False):  # rounds depend on earlier rounds
        if comm is not None:  # one message per worker and round
            T = T + comm.send_time(getattr(code, "message_size", 1.0))
        times, used, exact, residual = code.simulate_rounds(T, deadline)
        return SimResult(code.name, times, used, exact, residual)
    if T.shape[-1] != code.n:
        raise ValueError(f"worker_times has {T.shape[-1]} columns but the code has n={code.n}")
    T = _check_times(T.reshape(-1, code.n), "worker times")
    if comm is not None:  # one message of message_size gradients per worker
        T = T + comm.send_time(getattr(code, "message_size", 1.0))
    t = _cut(code.completion_time(T), deadline)
    used = T <= t[:, None]
    stuck = ~np.isfinite(t)
    if stuck.any():  # never decodable: report what would eventually arrive
        used[stuck] = np.isfinite(T[stuck])
    exact, residual = code.decode_batch(used)
    exact = exact & ~stuck
    return SimResult(code.name, t, used, exact, residual)


def simulate_chunked(scheme, chunk_times: np.ndarray, deadline=None, comm=None) -> SimResult:
    """The simulator for chunked schemes: per-chunk compute times ``(rounds, n, width)``.

    A piece arrives with the message that carries it
    (:func:`gradcode.comm.arrival_increments`; ``comm=None``: free sending); the
    round ends at ``scheme.chunk_completion_time`` (or the deadline).  Returns
    round times, workers with any piece used, and ``(exact, residual)`` from
    ``scheme.decode_chunks_batch``.
    """
    T = np.asarray(chunk_times, dtype=np.float64)
    width = max(len(p) for p in scheme.placement)
    if T.ndim != 3 or T.shape[1:] != (scheme.n, width):
        raise ValueError(
            f"chunk times must have shape (rounds, n={scheme.n}, chunks={width}), got {T.shape}"
        )
    _check_times(T, "chunk times")
    inc = arrival_increments(scheme, T, comm)
    A = np.cumsum(inc, axis=-1)
    t = _cut(scheme.chunk_completion_time(inc), deadline)
    stuck = ~np.isfinite(t)
    done = A <= t[:, None, None]
    done[stuck] = np.isfinite(A[stuck])
    exact, residual = scheme.decode_chunks_batch(done)
    return SimResult(scheme.name, t, done.any(axis=-1), exact & ~stuck, residual)


def _check_times(T: np.ndarray, what: str) -> np.ndarray:
    """``T`` itself; a ``ValueError`` if any entry is NaN or negative (``inf`` is allowed)."""
    if np.isnan(T).any() or (T < 0).any():
        raise ValueError(f"{what} must be non-negative numbers (inf = never reports)")
    return T


def _cut(t: np.ndarray, deadline: float | None) -> np.ndarray:
    """Round ends ``t`` cut at a positive ``deadline`` (``None``: no deadline)."""
    if deadline is None:
        return t
    if not deadline > 0:
        raise ValueError(f"deadline must be positive, got {deadline}")
    return np.minimum(t, deadline)


def simulate_model(
    code: GradientCode,
    model: DelayModel,
    rng: np.random.Generator,
    rounds: int,
    deadline: float | None = None,
    message_bytes: float | None = None,
) -> SimResult:
    """Draw ``rounds`` rounds of worker times from ``model`` at the code's load and simulate.

    Models draw the same random numbers whatever the load, so calling this for
    several schemes with generators of the same seed compares them on one
    straggler schedule.  ``message_bytes`` (the model's gradient size in bytes)
    feeds a model with a communication part; the model's ``master_time`` (the
    master's receive and decode time) is added to every round.
    """
    if message_bytes is not None:
        model = model.with_message_bytes(message_bytes)
    if getattr(code, "chunked", False):
        width = max(len(p) for p in code.placement)
        load = getattr(code, "chunk_load", 1.0)
        res = simulate(code, model.chunk_times(rng, rounds, code.n, width, load), deadline)
    else:
        res = simulate(code, model.sample(rng, rounds, code.n, load=code.load), deadline)
    if model.master_time:
        res = replace(res, times=res.times + model.master_time)
    return res


__all__ = ["SimResult", "simulate", "simulate_chunked", "simulate_model"]
