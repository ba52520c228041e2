"""Timing, NMSE and uplink traffic of every protocol in the partial-straggler reproduction.

Protocols (``m`` workers, ``N`` chunks, ``delta`` holders per chunk, gradient
split into ``l`` parts, ``s = delta - l``):

* ``stream`` -- Ramamoorthy et al.'s protocol, streaming transport (V2): one
  coded piece of ``d / l`` numbers per finished chunk; done once every chunk
  has pieces from ``l`` workers.  No extra round.
* ``reference`` -- the same protocol, reference transport (V1): a tiny
  acknowledgement per finished chunk; once every chunk is acknowledged by
  ``l`` workers the master sends the per-chunk encodings back (**one extra
  round**: a downlink latency) and every worker answers with one ``d / l``
  vector.
* ``original`` -- the original GC protocol with a fixed code
  (:mod:`gradcode.codes.partial_original`): one ``d / l`` vector per worker
  after its whole list, least squares on the finished workers; exact from
  any ``m - s``.
* ``tandon_partial`` -- Tandon et al.'s partial-straggler scheme
  (:mod:`gradcode.codes.tandon_partial`) with ``s = delta - 1``: two
  full-size messages per worker on its own ``(p - s) m`` pieces.

Sizes are in gradients (``d`` numbers); a :class:`~gradcode.comm.CommModel`
turns a message into ``latency + size / bandwidth`` on the worker's one
uplink.  With the default free model every protocol's time is its
computation time.
"""

from __future__ import annotations

import numpy as np

from ..codes.ordering import ChunkAssignment
from ..codes.partial import completion_time_original, completion_time_partial, nmse_partial
from ..codes.partial_original import FixedCode, nmse_original, worker_finish
from ..codes.tandon_partial import TandonPartial
from ..comm import CommModel, arrival_increments, chunked_traffic, message_arrivals

PROTOCOLS = ("stream", "reference", "original", "tandon_partial")
TRANSPORT = {
    "stream": "one d/l piece per finished chunk (V2), no feedback",
    "reference": "per-chunk acks, 1 feedback round, one d/l vector per worker (V1)",
    "original": "one d/l vector per worker after its whole list (fixed code)",
    "tandon_partial": "two d-vectors per worker (unique part, then coded shared part)",
}


def stream_increments(a: ChunkAssignment, l: int, times: np.ndarray, comm: CommModel):
    """Per-chunk increments whose running sum is each streamed piece's arrival."""
    load = int(a.loads.max())
    F = np.cumsum(times, axis=-1)
    arr = message_arrivals(F, [(p, 1.0 / l) for p in range(load)], comm)
    with np.errstate(invalid="ignore"):
        inc = np.diff(arr, axis=-1, prepend=0.0)
    inc[np.isinf(arr)] = np.inf
    return inc


def _ack_times(times: np.ndarray, comm: CommModel) -> np.ndarray:
    """Chunk times shifted so that the running sum is the acknowledgement's arrival."""
    out = np.array(times, dtype=np.float64)
    out[..., 0] += comm.latency
    return out


def _v1_overhead(l: int, comm: CommModel) -> float:
    """Feedback downlink plus the one ``d / l`` uplink message of the reference transport."""
    return comm.latency + comm.send_time(1.0 / l)


def completion(protocol, a, l, times, comm, *, tandon=None, piece_times=None) -> np.ndarray:
    """Exact completion time per trial (``inf`` where the protocol cannot finish)."""
    if protocol == "stream":
        return completion_time_partial(a, l, stream_increments(a, l, times, comm))
    if protocol == "reference":
        return completion_time_partial(a, l, _ack_times(times, comm)) + _v1_overhead(l, comm)
    if protocol == "original":
        shifted = np.array(times, dtype=np.float64)
        shifted[..., -1] += comm.send_time(1.0 / l)  # one d/l message after the whole list
        return completion_time_original(a, l, shifted)
    if protocol == "tandon_partial":
        return tandon.chunk_completion_time(arrival_increments(tandon, piece_times, comm))
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def nmse(protocol, a, l, times, comm, T, *, code=None, tandon=None, piece_times=None):
    """``(trials, len(T))`` normalised MSE of each protocol's estimate at deadlines ``T``."""
    T = np.asarray(T, dtype=np.float64)
    if protocol == "stream":
        return nmse_partial(a, l, stream_increments(a, l, times, comm), T)
    if protocol == "reference":  # encodings must leave by T - overhead
        return nmse_partial(a, l, _ack_times(times, comm), T - _v1_overhead(l, comm))
    if protocol == "original":
        finish = worker_finish(a, times) + comm.send_time(1.0 / l)
        return nmse_original(code, finish, T)
    if protocol == "tandon_partial":
        A = np.cumsum(arrival_increments(tandon, piece_times, comm), axis=-1)
        out = np.empty((len(A), T.size))
        for k, deadline in enumerate(T):
            _, res = tandon.decode_chunks_batch(A <= deadline)
            out[:, k] = res**2 / tandon.k
        return out
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def traffic(protocol, a, l, times, stop, *, tandon=None, piece_times=None) -> dict:
    """Uplink messages and volume (in gradients) per round up to ``stop``, and extra rounds.

    Messages whose computation ends by the stop time count (they are on the
    wire whether used or not).  Trials where ``stop`` is infinite count up to
    the end of all finite work.
    """
    stop = np.where(np.isfinite(stop), stop, np.inf)
    if protocol == "tandon_partial":
        t = chunked_traffic(tandon, piece_times, stop)
        return {"messages": t.messages, "volume": t.volume, "extra_rounds": 0}
    F = np.cumsum(times, axis=-1)[..., : int(a.loads.max())]
    if protocol == "stream":
        sent = (F <= stop[:, None, None]).sum(axis=(1, 2))
        return {"messages": sent.mean(), "volume": sent.mean() / l, "extra_rounds": 0}
    if protocol == "reference":
        acks = (F <= stop[:, None, None]).sum(axis=(1, 2))
        vectors = (F[..., 0] <= stop[:, None]).sum(axis=1)  # every worker with a finished chunk
        return {
            "messages": (acks + vectors).mean(),
            "volume": vectors.mean() / l,
            "extra_rounds": 1,
        }
    if protocol == "original":
        W = worker_finish(a, times)
        sent = (W <= stop[:, None]).sum(axis=1)
        return {"messages": sent.mean(), "volume": sent.mean() / l, "extra_rounds": 0}
    raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")


def tandon_for(m: int, delta: int, p: int | None, rng: np.random.Generator) -> TandonPartial:
    """Tandon's partial-straggler scheme with the same straggler tolerance ``s = delta - 1``."""
    return TandonPartial(m, delta - 1, p=p, variant="cyclic", rng=rng)


__all__ = [
    "PROTOCOLS",
    "TRANSPORT",
    "FixedCode",
    "completion",
    "nmse",
    "stream_increments",
    "tandon_for",
    "traffic",
]
