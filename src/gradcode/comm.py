"""Communication in the timing model: per-message send time, uplink volume, extra rounds.

A message of ``size`` gradients (``size = 1`` is one vector of ``d`` numbers)
takes

    send_time = latency + size / bandwidth

from the moment its sender has computed it until the master holds it
(:class:`CommModel`; ``bandwidth`` in gradients per time unit).  A worker has
one uplink, so its messages queue: message ``k`` starts sending at
``max(ready_k, end of sending message k - 1)`` (:func:`message_arrivals`).
The default model (no latency, infinite bandwidth) reproduces the
computation-only timing exactly.

Chunked (streaming) schemes describe their messages with
``scheme.message_ends(worker)``: ``(position, size)`` pairs, a message leaving
after the piece at ``position`` of ``placement[worker]`` is computed
(:class:`~gradcode.codes.partial_scheme.PartialScheme`: one ``1/l`` piece per
chunk; :class:`~gradcode.codes.tandon_partial.TandonPartial`: two
full-size messages).  :func:`arrival_increments` turns per-chunk compute times
into per-piece arrival increments, which the simulator
(:func:`gradcode.sim.simulate_chunked`) and the local backend feed to the same
``chunk_completion_time`` hook.

Example: two messages of one gradient each, latency 0.5, bandwidth 1::

    >>> import numpy as np
    >>> comm = CommModel(latency=0.5, bandwidth=1.0)
    >>> finish = np.array([1.0, 1.5])      # both computed early: the second queues
    >>> message_arrivals(finish, [(0, 1.0), (1, 1.0)], comm).tolist()
    [2.5, 3.5]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .codes.protocol import Message


@dataclass(frozen=True)
class CommModel:
    """Per-message communication time ``latency + size / bandwidth``.

    Attributes:
        latency: fixed cost of one message (time units).
        bandwidth: gradients (vectors of ``d`` numbers) per time unit; ``inf``
            makes sending free apart from the latency.
    """

    latency: float = 0.0
    bandwidth: float = float("inf")

    def __post_init__(self) -> None:
        if not (np.isfinite(self.latency) and self.latency >= 0):
            raise ValueError(f"latency must be a finite number >= 0, got {self.latency!r}")
        if not self.bandwidth > 0:
            raise ValueError(f"bandwidth must be positive (inf = free), got {self.bandwidth!r}")

    def transfer(self, size: float) -> float:
        """Time the uplink is busy with a message of ``size`` gradients."""
        return 0.0 if np.isinf(self.bandwidth) else float(size) / self.bandwidth

    def send_time(self, size: float) -> float:
        """``latency + size / bandwidth``."""
        return self.latency + self.transfer(size)

    @property
    def free(self) -> bool:
        return self.latency == 0 and np.isinf(self.bandwidth)


def message_arrivals(
    finish: np.ndarray, ends: Sequence[tuple[int, float]], comm: CommModel
) -> np.ndarray:
    """Arrival time of each message of one worker, shape ``(..., len(ends))``.

    ``finish[..., pos]`` is when the piece at ``pos`` is computed; message
    ``k`` leaves after piece ``ends[k][0]`` and has size ``ends[k][1]``.  The
    messages share one uplink (queue in order).  ``inf`` stays ``inf``.
    """
    finish = np.asarray(finish, dtype=np.float64)
    out = np.empty(finish.shape[:-1] + (len(ends),))
    link_free = np.full(finish.shape[:-1], -np.inf)
    for k, (pos, size) in enumerate(ends):
        start = np.maximum(finish[..., pos], link_free)
        link_free = start + comm.transfer(size)
        out[..., k] = link_free + comm.latency
    return out


def arrival_increments(scheme, times: np.ndarray, comm: CommModel | None = None) -> np.ndarray:
    """Per-piece times whose running sum is each piece's *arrival* at the master.

    A piece arrives with the message that carries it (the first message
    ending at or after its position).  Feeding the result to
    ``scheme.chunk_completion_time`` gives the completion time including
    communication; with ``comm=None`` or a free model the pieces arrive when
    their message's last piece is computed.
    """
    times = np.asarray(times, dtype=np.float64)
    comm = CommModel() if comm is None else comm
    F = np.cumsum(times, axis=-1)
    A = np.empty_like(F)
    width = F.shape[-1]
    for w in range(F.shape[-2]):
        ends = scheme.message_ends(w)
        arr = message_arrivals(F[..., w, :], ends, comm)
        start = 0
        for k, (pos, _) in enumerate(ends):
            A[..., w, start : pos + 1] = arr[..., k : k + 1]
            start = pos + 1
        A[..., w, start:width] = np.inf  # pieces after the last message are never sent
    with np.errstate(invalid="ignore"):
        inc = np.diff(A, axis=-1, prepend=0.0)
    inc[np.isinf(A)] = np.inf
    return inc


def segment_messages(scheme, worker: int, t: int, pieces) -> list:
    """One message per entry of ``scheme.message_ends(worker)`` from finished pieces.

    ``pieces`` lists ``(chunk, grad)`` in processing order (a prefix of
    ``placement[worker]``).  Each message is the sum of the pieces'
    ``chunk_message`` payloads (``+`` only: NumPy arrays or torch tensors)
    with ``partitions`` = the pieces it covers; a message whose last piece is
    not finished is not sent.  This is the transport a backend uses to send
    Tandon's two messages instead of one message per piece; for
    :class:`~gradcode.codes.partial_scheme.PartialScheme` it is one message per chunk.
    """
    out, start = [], 0
    done = len(pieces)
    for pos, _ in scheme.message_ends(worker):
        if pos >= done:
            break
        total = None
        for chunk, grad in pieces[start : pos + 1]:
            v = scheme.chunk_message(worker, t, chunk, grad).vector
            total = v if total is None else total + v
        chunks = tuple(c for c, _ in pieces[start : pos + 1])
        out.append(Message(worker, t, total, chunks, (t,) * len(chunks)))
        start = pos + 1
    return out


@dataclass(frozen=True)
class Traffic:
    """Uplink cost of one protocol, per round (means over rounds).

    Attributes:
        messages: uplink messages sent per round (all workers).
        volume: uplink volume per round, in gradients (``d`` numbers).
        extra_rounds: master -> worker feedback rounds per iteration.
    """

    messages: float
    volume: float
    extra_rounds: int = 0


def chunked_traffic(scheme, times: np.ndarray, stop: np.ndarray) -> Traffic:
    """Messages and volume a chunked scheme puts on the uplink before the master stops.

    A message counts once its last piece is computed by the stop time (it is
    then on the wire, whether or not it is used).
    """
    F = np.cumsum(np.asarray(times, dtype=np.float64), axis=-1)
    stop = np.asarray(stop, dtype=np.float64)[:, None]
    msgs = vol = 0.0
    for w in range(F.shape[1]):
        for pos, size in scheme.message_ends(w):
            sent = (F[:, w, pos] <= stop[:, 0]).astype(float)
            msgs += sent.mean()
            vol += size * sent.mean()
    return Traffic(msgs, vol, 0)


__all__ = [
    "CommModel",
    "Traffic",
    "arrival_increments",
    "chunked_traffic",
    "message_arrivals",
    "segment_messages",
]
