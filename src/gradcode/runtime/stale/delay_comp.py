"""Delay compensation: a first-order Taylor term brings a stale gradient forward.

Zheng, Meng, Wang, Chen, Yu, Ma, Liu, "Asynchronous Stochastic Gradient
Descent with Delay Compensation" (DC-ASGD, ICML 2017): a gradient computed at
old weights ``w_tau`` and applied at ``w_t`` is corrected by

    g(w_t) ~ g(w_tau) + H (w_t - w_tau),   H ~ lambda g(w_tau) * g(w_tau),   (1)

the Hessian approximated (cheaply, elementwise) by the outer product of the
gradient with itself, diagonal only.  Their adaptive variant (DC-ASGD-a) sets
``lambda_t = lambda_0 / sqrt(m_t)`` with ``m_t = 0.95 m_{t-1} + 0.05 g * g``
the gradient's running mean square, which makes ``lambda`` scale-free (here
``m`` starts at the first ``g * g`` rather than 0).

Here the master applies (1) to the decoded update ``u_t`` (a mix of gradients
of mean age ``a_t``, the update's ``staleness_mean``) with ``w_tau`` the
weights ``a_t`` rounds ago (interpolated between whole rounds; the master
keeps the last ``depth`` weights, its checkpointed state)::

    u_t <- u_t + lambda_t * u_t * u_t * (w_t - w_{t - a_t}).

A fresh update (``a_t = 0``) is left alone.  In the quadratic picture
(:func:`gradcode.stability.compensated`) (1) recovers the fraction ``kappa =
lambda g^2 / h`` of the fresh gradient; it helps only where ``g * g`` tracks
the curvature.

>>> import torch
>>> from types import SimpleNamespace
>>> dc = DelayCompensation(lam=1.0, depth=3)
>>> st = dc.init(torch.zeros(1))
>>> for t, w in enumerate([0.0, 1.0, 2.0]):
...     st, _ = dc.broadcast(st, t, torch.tensor([w]))
>>> upd = SimpleNamespace(gradient=torch.tensor([2.0]), staleness_mean=1.0)
>>> st, g = dc.correct(st, 2, torch.tensor([2.0]), upd)
>>> round(float(g), 4)      # 2 + (1 / |2|) * 4 * (2 - 1)
4.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: DC-ASGD-a's mean-square decay.
DECAY = 0.95
EPS = 1e-8


@dataclass(frozen=True)
class DelayState:
    """``history[a]`` = the weights ``a`` rounds ago; ``mean_square`` = ``m_t``."""

    history: tuple = ()
    mean_square: torch.Tensor | None = None


@dataclass(frozen=True)
class DelayCompensation:
    """DC-ASGD-a on the decoded update (see the module docstring)."""

    lam: float = 2.0
    depth: int = 4

    @property
    def label(self) -> str:
        return f"dc(lam={self.lam:g})"

    def configure(self, optimizer) -> None:
        pass

    def init(self, weights) -> DelayState:
        return DelayState()

    def broadcast(self, state: DelayState, t: int, weights):
        history = (weights.detach().clone(), *state.history[: self.depth - 1])
        return DelayState(history, state.mean_square), weights

    def correct(self, state: DelayState, t: int, weights, update):
        g = update.gradient
        sq = g * g
        if state.mean_square is None:  # start from the first gradient (no zero-bias)
            m = sq
        else:
            m = (state.mean_square * DECAY).add_(sq, alpha=1 - DECAY)
        state = DelayState(state.history, m)
        age = float(update.staleness_mean)
        if age <= 0 or len(state.history) < 2:
            return state, g
        old = _weights_ago(state.history, age)
        lam = self.lam / (m.sqrt() + EPS)
        return state, g + lam * sq * (weights - old)


def _weights_ago(history: tuple, age: float):
    """The weights ``age`` rounds ago, linearly interpolated (clamped to the history)."""
    age = min(age, len(history) - 1)
    lo = int(math.floor(age))
    frac = age - lo
    if frac == 0 or lo + 1 >= len(history):
        return history[lo]
    return history[lo] * (1 - frac) + history[lo + 1] * frac
