"""The round protocol a training loop drives: worker state in, message out;
messages in, gradient estimate out.

Stateless gradient codes (:class:`~gradcode.codes.base.GradientCode`) and
stateful schemes such as pipelined gradient coding share this interface, so
the simulator and every runtime backend drive one kind of object.  State is
explicit (optax style): each call takes a state and returns the new one.

Convention: a partition gradient ``g_j`` is normalised so that
``sum_j g_j`` is the full gradient (e.g. ``g_j = (1/N) sum_{i in part j}
grad loss_i``).  An :class:`Update` estimates ``sum_j g_j``; its
``partition_weights`` says with which total weight each ``g_j`` entered
(``1`` everywhere = every partition counted once, as in an exact decode; with
mean-normalised partition gradients this is the "weight ``1/n``" of the
literature).

Example with a plain code::

    >>> import numpy as np
    >>> from gradcode.codes import make_code
    >>> scheme = as_scheme(make_code("frc", 4, 1))
    >>> G = np.arange(8.0).reshape(4, 2)           # g_0 .. g_3
    >>> msgs = []
    >>> for w in (0, 2, 3):                        # worker 1 straggles
    ...     parts = scheme.compute_plan(None, w, 0)
    ...     _, m = scheme.worker_message(None, w, 0, {p: G[p] for p in parts})
    ...     msgs.append(m)
    >>> _, upd = scheme.master_update(scheme.init_master(), 0, msgs)
    >>> upd.gradient.tolist(), upd.exact
    ([12.0, 16.0], True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import GradientCode


@dataclass(frozen=True)
class Message:
    """What a worker sends for round ``round``.

    Attributes:
        worker: sender.
        round: the round whose weights produced its freshest part.
        vector: the payload: a torch tensor in the runtime (numpy arrays work too).
        partitions: partitions whose gradients the payload contains.
        computed: per entry of ``partitions``, the round whose weights it used.
    """

    worker: int
    round: int
    vector: Any
    partitions: tuple[int, ...]
    computed: tuple[int, ...]

    @property
    def oldest(self) -> int:
        return min(self.computed)

    def age(self, now: int) -> int:
        """Staleness of the oldest gradient inside, in rounds."""
        return now - self.oldest


@dataclass(frozen=True)
class Update:
    """The master's output for one round.

    Attributes:
        gradient: estimate of ``sum_j g_j``, of the messages' array type
            (``None``: nothing usable; skip the step).
        used: workers whose messages entered (on time or cached).
        exact: every partition entered with weight exactly 1 at staleness 0.
        covered: every partition entered with total weight exactly 1 (any staleness).
        residual: ``||partition_weights - 1||``.
        staleness_max / staleness_mean: ages (rounds) of the gradients used,
            the mean weighted by each gradient's weight.
        decoder: which decoding rule produced it.
        fallbacks: human-readable notes on every fallback taken.
        stats: extra numbers (conditioning, ...).
    """

    gradient: Any
    used: tuple[int, ...]
    exact: bool
    covered: bool
    residual: float
    staleness_max: int
    staleness_mean: float
    decoder: str
    partition_weights: np.ndarray
    fallbacks: tuple[str, ...] = ()
    stats: Mapping[str, float] = field(default_factory=dict)

    def log_fields(self) -> dict[str, Any]:
        """JSON-ready summary for the per-round log line."""
        return {
            "used": list(self.used),
            "decoder": self.decoder,
            "exact": self.exact,
            "covered": self.covered,
            "residual": round(self.residual, 12),
            "staleness_max": self.staleness_max,
            "staleness_mean": round(self.staleness_mean, 6),
            "fallbacks": list(self.fallbacks),
            **{k: float(v) for k, v in self.stats.items()},
        }


def encode(coefficients: np.ndarray, grads: Sequence, out=None) -> Any:
    """``sum_i c_i g_i`` for torch tensors (accumulated in place, in the gradients'
    dtype and device; into ``out`` when it is a tensor of the right shape, dtype and
    device, which saves allocating -- and first touching -- a d-vector per message)
    or numpy arrays.  A single gradient with coefficient 1 is returned as is
    (messages are never modified in place).

    >>> import torch
    >>> encode(np.array([1.0, -2.0]), [torch.ones(2), torch.ones(2)]).tolist()
    [-1.0, -1.0]
    """
    if grads and all(_is_tensor(g) for g in grads):
        first, c0 = grads[0], float(coefficients[0])
        if len(grads) == 1 and c0 == 1.0:
            return first  # uncoded (B = I): the gradient itself, no copy
        fits = (
            _is_tensor(out)
            and out.shape == first.shape
            and out.dtype == first.dtype
            and out.device == first.device
        )
        if fits and c0 == 1.0:
            out.copy_(first)
        elif fits:
            import torch  # only reached with torch payloads

            torch.mul(first, c0, out=out)
        else:
            out = torch_mul(first, c0)
        for c, g in zip(coefficients[1:], grads[1:], strict=True):
            out.add_(g, alpha=float(c))
        return out
    G = np.stack([np.asarray(g) for g in grads])
    return np.asarray(coefficients).astype(G.dtype) @ G


def sum_into(out, vectors: Sequence):
    """``sum(vectors)`` written into the buffer ``out`` (or a new one when ``out`` is
    ``None`` or does not fit); returns the buffer.  Torch tensors or numpy arrays.

    Two or more vectors: one fused ``add(v0, v1, out=out)`` and then one in-place
    ``add_`` per further vector, so no temporaries and the same float result as
    ``v0 + v1 + ...`` (left to right).  Reusing ``out`` round after round keeps a
    stateful worker's message at one preallocated vector.

    >>> buf = sum_into(None, [np.ones(2), np.arange(2.0), np.ones(2)])
    >>> sum_into(buf, [np.ones(2), np.ones(2)]) is buf, buf.tolist()
    (True, [2.0, 2.0])
    """
    first = vectors[0]
    if _is_tensor(first):
        fits = (
            _is_tensor(out)
            and out.shape == first.shape
            and out.dtype == first.dtype
            and out.device == first.device
        )
        if not fits:
            out = first.new_empty(first.shape)
        if len(vectors) == 1:
            return out.copy_(first)
        import torch  # only reached with torch payloads

        torch.add(first, vectors[1], out=out)
        for v in vectors[2:]:
            out.add_(v)
        return out
    first = np.asarray(first)
    fits = isinstance(out, np.ndarray) and out.shape == first.shape and out.dtype == first.dtype
    if not fits:
        out = np.empty_like(first)
    if len(vectors) == 1:
        np.copyto(out, first)
        return out
    np.add(first, vectors[1], out=out)
    for v in vectors[2:]:
        np.add(out, v, out=out)
    return out


def _is_tensor(x) -> bool:
    return type(x).__module__.startswith("torch")


def torch_mul(g, c: float):
    """``c * g`` as a new tensor (a copy even when ``c == 1``)."""
    return g * c if c != 1.0 else g.clone()


def weighted_staleness(
    now: int, messages: Sequence[Message], weights: Sequence[float], k: int
) -> tuple[np.ndarray, int, float]:
    """Partition weights ``sum_m w_m 1[j in m]`` and the age statistics of what was used."""
    pw = np.zeros(k)
    ages, mass = [], []
    for m, w in zip(messages, weights, strict=True):
        if w == 0:
            continue
        for p, c in zip(m.partitions, m.computed, strict=True):
            pw[p] += w
            ages.append(now - c)
            mass.append(abs(w))
    if not ages:
        return pw, 0, 0.0
    return pw, int(max(ages)), float(np.average(ages, weights=mass))


class CodeScheme:
    """Adapter: a stateless :class:`GradientCode` speaking the round protocol."""

    stateful = False
    #: ``worker_message`` takes ``out=``, a per-worker message buffer to reuse.
    message_buffers = True

    def __init__(self, code: GradientCode) -> None:
        self.code = code
        self.name, self.n, self.s, self.k = code.name, code.n, code.s, code.k

    @property
    def load(self) -> int:
        return self.code.load

    def compute_plan(self, state, worker: int, t: int) -> tuple[int, ...]:
        return self.code.work(worker, t)

    def init_worker(self, worker: int):
        return None

    def worker_message(self, state, worker: int, t: int, grads: Mapping[int, np.ndarray], out=None):
        """``out``: optional buffer the message is written into (a backend that keeps
        one per worker reuses it every round; the message is then valid until the
        worker's next one)."""
        parts = self.code.placement[worker]
        vec = encode(self.code.coefficients(worker), [grads[p] for p in parts], out=out)
        return state, Message(worker, t, vec, parts, (t,) * len(parts))

    def init_master(self):
        return None

    def master_update(self, state, t: int, messages: Sequence[Message], late=()):
        dec = self.code.decode([m.worker for m in messages])
        by_worker = {m.worker: m.vector for m in messages}
        grad = dec.combine(by_worker) if dec.used else None
        pw = dec.weights @ self.code.B
        return state, Update(
            gradient=grad,
            used=dec.used,
            exact=dec.exact,
            covered=dec.exact,
            residual=dec.residual,
            staleness_max=0,
            staleness_mean=0.0,
            decoder=self.code.name,
            partition_weights=pw,
            stats={"cond": dec.cond, "max_abs_weight": dec.max_abs_weight},
        )

    def ready(self, arrived) -> bool:
        return self.code.ready(arrived)

    def completion_time(self, times):
        return self.code.completion_time(times)

    def describe(self) -> list[str]:
        """The wrapped code's description (:meth:`GradientCode.describe`)."""
        return self.code.describe()


def as_scheme(obj):
    """Wrap a stateless code; stateful schemes already speak the protocol."""
    return CodeScheme(obj) if isinstance(obj, GradientCode) else obj
