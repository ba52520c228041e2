"""Weight prediction: compute each gradient at the weights it will be applied to.

A stale scheme applies the gradient computed in round ``tau`` in later rounds
(PGC at ``s``: in rounds ``tau .. tau + s``, with equal weight; SR-SGC:
in round ``tau + B``).  Pipeline-parallel training meets the same delay and
removes most of it by computing the gradient at a *prediction* of the weights
at the time of use: SpecTrain (Chen, Yang, Cheng, arXiv:1809.02839, 2018)
extrapolates along the momentum direction, ``w_hat = w_t - k lr v_t``, and
PipeMare (Yang, Zhang, Ba, De Sa, Aberger, MLSys 2021) does the same with a
delay-dependent horizon.  For any optimizer the last step is the direction
of travel, so the workers compute at

    w_hat_t = w_t + k (w_t - w_{t-1}),                                       (1)

with ``k`` the expected delay until use: the profile's mean age
``sum_a a p_a`` (``s / 2`` for PGC, ``B`` for SR-SGC).  For heavy ball,
``w_t - w_{t-1} = -lr v_{t-1}``, so (1) is SpecTrain's rule.

On a quadratic (:func:`gradcode.stability.predicted`) it raises the largest
stable ``lr x curvature`` at momentum 0.9 from 0.070 to 0.20 for PGC at
``s = 3`` and from 0.10 to 0.27 for SR-SGC at ``B = 1``.

The master keeps ``w_{t-1}`` (its state, checkpointed); the first round
broadcasts ``w_0`` itself.  The true weights ``w_t`` are what is evaluated,
stepped and saved; only the workers see ``w_hat_t``.

>>> import torch
>>> p = Prediction(horizon=2.0)
>>> state = p.init(torch.zeros(1))
>>> state, w = p.broadcast(state, 0, torch.tensor([1.0]))   # no previous step yet
>>> w.tolist()
[1.0]
>>> state, w = p.broadcast(state, 1, torch.tensor([1.5]))   # moved +0.5: predict +1.0
>>> w.tolist()
[2.5]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PredictionState:
    """The weights broadcast-time ``w_{t-1}`` (``None`` before the first round)."""

    previous: torch.Tensor | None = None


@dataclass(frozen=True)
class Prediction:
    """Workers compute at ``w_t + horizon (w_t - w_{t-1})`` (see the module docstring)."""

    horizon: float
    #: Optional new momentum ``mu'`` (the step is rescaled to keep ``lr / (1 - mu)``).
    mu: float | None = None

    @property
    def label(self) -> str:
        extra = "" if self.mu is None else f",mu={self.mu:g}"
        return f"predict(horizon={self.horizon:g}{extra})"

    def configure(self, optimizer) -> None:
        if self.mu is None:
            return
        for group in optimizer.param_groups:
            if "momentum" in group:
                group["lr"] *= (1.0 - self.mu) / (1.0 - group["momentum"])
                group["momentum"] = self.mu

    def init(self, weights) -> PredictionState:
        return PredictionState()

    def broadcast(self, state: PredictionState, t: int, weights):
        prev = state.previous
        new = PredictionState(weights.detach().clone())
        if prev is None or self.horizon == 0:
            return new, weights
        return new, weights + self.horizon * (weights - prev)

    def correct(self, state, t: int, weights, update):
        return state, update.gradient
