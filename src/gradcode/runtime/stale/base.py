"""The protocol every stale-gradient correction speaks (explicit state, optax style).

A correction acts at three points of the master loop
(:func:`gradcode.runtime.loop.train`), each a pure function of its state:

* ``configure(optimizer)`` -- once, right after the optimizer is built and
  before a checkpoint or scheduler touches it: change hyperparameters
  (implicit-momentum compensation lowers the momentum and rescales the step);
* ``broadcast(state, t, w) -> (state, w_send)`` -- the weights the workers
  compute this round's gradients at (weight prediction extrapolates them);
  the state may record ``w``;
* ``correct(state, t, w, update) -> (state, gradient)`` -- the decoded
  gradient actually applied (delay compensation adds a first-order term,
  the staleness-aware rate scales it).

``init(w)`` gives the first state; the loop checkpoints the state with the
weights, so a resumed run continues bit for bit.  :class:`Identity` is
``none``: workers compute at ``w`` and the decoded gradient is applied as is.

>>> import torch
>>> c = Identity()
>>> state = c.init(torch.zeros(2))
>>> state, w = c.broadcast(state, 0, torch.ones(2))
>>> w.tolist(), c.label
([1.0, 1.0], 'none')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


class Correction(Protocol):
    #: What was applied, e.g. ``"predict(horizon=1.5)"`` (logged with round 0).
    label: str

    def configure(self, optimizer) -> None: ...

    def init(self, weights) -> Any: ...

    def broadcast(self, state, t: int, weights) -> tuple[Any, Any]: ...

    def correct(self, state, t: int, weights, update) -> tuple[Any, Any]: ...


class Stateless:
    """The per-round half of the protocol for a correction that keeps no state and
    changes neither the weights sent nor the gradient applied (it may still act once,
    in ``configure``)."""

    def init(self, weights) -> None:
        return None

    def broadcast(self, state, t: int, weights):
        return state, weights

    def correct(self, state, t: int, weights, update):
        return state, update.gradient


@dataclass(frozen=True)
class Identity(Stateless):
    """No correction (``none``): the scheme as published."""

    label: str = "none"

    def configure(self, optimizer) -> None:
        pass


def hyperparameters(optimizer) -> tuple[str, float, float]:
    """``(kind, lr, momentum)`` of a ``torch.optim`` optimizer's first parameter group.

    ``kind`` is ``"heavy_ball"`` for SGD with (possibly zero) momentum, no
    dampening and no Nesterov -- the optimizer of :mod:`gradcode.stability` --
    and ``"other"`` otherwise (Adam, Nesterov, ...), where the heavy-ball
    analysis does not apply.

    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(1))]
    >>> hyperparameters(torch.optim.SGD(p, lr=0.1, momentum=0.9))
    ('heavy_ball', 0.1, 0.9)
    >>> hyperparameters(torch.optim.Adam(p, lr=0.01))[0]
    'other'
    """
    group = optimizer.param_groups[0]
    lr = float(group.get("lr", 0.0))
    momentum = group.get("momentum")
    if momentum is None or group.get("nesterov") or group.get("dampening", 0):
        return "other", lr, float(momentum or 0.0)
    return "heavy_ball", lr, float(momentum)
