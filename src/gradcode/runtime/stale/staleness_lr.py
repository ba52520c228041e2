"""Staleness-aware learning rate: the older the gradient, the smaller its step.

Zhang, Gupta, Lian, Liu, "Staleness-aware Async-SGD for Distributed Deep
Learning" (IJCAI 2016) divide the learning rate of a gradient by its
staleness ``tau`` (counted so that a synchronous gradient has ``tau = 1``):

    w_{t+1} = w_t - (lr / tau) g(w_{t - tau + 1}).                           (1)

Here every update mixes gradients of several ages; the master knows their
weighted mean age ``a_t`` (the update's ``staleness_mean``: ``s / 2`` for PGC
at steady state, ``B`` for SR-SGC), so the round's gradient is scaled by

    1 / tau_t = 1 / (1 + a_t),                                               (2)

a fresh round (``a_t = 0``) is left alone.  Scaling the gradient, not the
optimizer's rate, keeps (1)'s per-gradient form under momentum (the momentum
buffer then holds every gradient at its own rate) and leaves schedulers alone;
with Adam, which normalises the gradient's scale away, it has almost no effect.

On a quadratic this multiplies ``lr`` by ``1 / (1 + a)``: at momentum 0.9 the
largest stable ``lr x curvature`` of PGC at ``s = 3`` becomes 2.5 x 0.070
= 0.18 (:mod:`gradcode.stability`), still 22x below fresh gradients' 3.8.

>>> import torch
>>> from types import SimpleNamespace
>>> upd = SimpleNamespace(gradient=torch.ones(2, dtype=torch.float64), staleness_mean=1.5)
>>> StalenessLR().correct(None, 5, None, upd)[1].tolist()
[0.4, 0.4]
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import Identity


@dataclass(frozen=True)
class StalenessLR(Identity):
    """Scale each round's decoded gradient by ``1 / (1 + mean age)`` (stateless: the
    rest of the protocol is :class:`~gradcode.runtime.stale.base.Identity`'s)."""

    label: str = "lr(1/(1+age))"

    def correct(self, state, t: int, weights, update):
        age = float(update.staleness_mean)
        if age <= 0:
            return state, update.gradient
        return state, update.gradient * (1.0 / (1.0 + age))
