"""``--stale-correction auto``: weight prediction, with horizon and momentum from the analysis.

The rule (measured in docs/stale.md, where it beats every other method):

1. **Method: weight prediction** (:mod:`.prediction`).  On fashion_mnist/mlp
   (n = 24, s = 3, batch 64, SGD lr 0.1, momentum 0.9, seed 0;
   ``experiments/stale_user.toml``) after 300 rounds PGC reaches 27.5 % with
   delay compensation, 56 % with the staleness-aware rate, 63-74 % with
   implicit-momentum compensation, 76-81 % with prediction at the user's
   momentum and 84.5 % (80 % at round 170) with this rule; SR-SGC diverges
   with delay compensation and reaches 11-61 % with the others, 85.3 % with
   this rule.
2. **Setting: from the quadratic analysis.**  A user's heavy-ball setting
   ``(lr, mu)`` moves at the long-run step ``lr / (1 - mu)``; keep that step
   and choose the momentum ``mu'`` and the horizon ``k`` by the *tolerance*
   ``T(mu', k) = max_stable_step(predicted(p, k), mu') / (1 - mu')``, the
   largest curvature x step the stale recurrence survives:

       mu' = the smallest of {mu} | {m in MOMENTA : m > mu} whose best T
             reaches T_GOAL (else the one with the largest T),
       k   = the horizon in HORIZONS maximising T(mu', k),

   and run at ``lr' = lr (1 - mu') / (1 - mu)`` and momentum ``mu'``.  With
   prediction the tolerance *grows* with the momentum (a smoother trajectory
   extrapolates better: PGC at s = 3, 2.3 at ``mu' = 0.9``, 3.95 at 0.95, 9.1
   at 0.98), while without it it shrinks (0.70, 0.69, 0.67).  ``T_GOAL = 16``
   is the curvature x step that DGD itself meets on fashion_mnist/mlp at lr
   0.1, momentum 0.9 (top Hessian eigenvalue 0.84 at the initial weights, 16
   after 300 rounds: "progressive sharpening"), so the stale run survives the
   curvature the fresh one reaches.  ``MOMENTA`` stops at 0.98, the largest
   measured.  The price of a raised momentum is a slower start (its memory is
   ``1 / (1 - mu')`` rounds): on adult/mlp, where the target comes early, PGC
   with ``predict`` at the user's momentum reaches it in half the rounds of
   ``auto`` (docs/stale.md).
3. **Other optimizers** (Adam, Nesterov): only the horizon, chosen the same
   way with ``mu`` = the optimizer's first-moment decay (Adam's update is
   heavy ball with an exponential average, whose polynomial has the same
   form), and the optimizer is left alone.

The curvature estimate is not needed: the rule maximises the tolerated
curvature, and the curvature grows 20x during training anyway (0.84 at the
initial weights, 16 after 300 rounds of DGD on fashion_mnist/mlp).

>>> choose((0.25,) * 4, "heavy_ball", 0.1, 0.9)        # PGC, s = 3
('predict', {'horizon': 3.0, 'mu': 0.98})
>>> choose((0.0, 1.0), "heavy_ball", 0.1, 0.9)         # SR-SGC, B = 1
('predict', {'horizon': 2.0, 'mu': 0.98})
>>> choose((0.875, 0.125), "heavy_ball", 0.1, 0.9)     # pgc_memory, s = 3 of 24: enough
('predict', {'horizon': 0.5})
>>> choose((0.25,) * 4, "other", 0.001, 0.9)           # Adam, beta1 = 0.9
('predict', {'horizon': 2.5})
"""

from __future__ import annotations

import numpy as np

from ...stability import max_stable_step, predicted
from .momentum import SAFETY

#: Momenta ``auto`` may raise the user's to (never lowers it).
MOMENTA = (0.9, 0.95, 0.98)
#: The tolerance (curvature x long-run step) ``auto`` aims for: DGD's own on fashion_mnist/mlp.
T_GOAL = 16.0
#: Prediction horizons ``auto`` considers (rounds).
HORIZONS = tuple(float(k) for k in np.arange(0.0, 4.01, 0.5))

__all__ = ["HORIZONS", "MOMENTA", "SAFETY", "T_GOAL", "choose", "tolerance"]


def tolerance(profile, horizon: float, momentum: float) -> float:
    """Largest curvature x (long-run step ``lr / (1 - mu)``) that heavy ball with
    prediction at this horizon tolerates: ``max_stable_step / (1 - mu)``.

    >>> round(tolerance((0.25,) * 4, 0.0, 0.9), 3)      # no prediction: 0.07 / 0.1
    0.705
    """
    return max_stable_step(predicted(profile, horizon), momentum, upper=1e2, rtol=1e-4) / (
        1.0 - momentum
    )


def choose(profile, kind: str, lr: float, momentum: float, curvature=None) -> tuple[str, dict]:
    """``(method, options)`` for this staleness profile and optimizer (rule above;
    ``curvature`` is accepted for symmetry with the other rules and not used)."""
    momenta = [momentum]
    if kind == "heavy_ball":
        momenta += [m for m in MOMENTA if m > momentum]
    best = None
    for m in momenta:
        t, k = max((tolerance(profile, k, m), -k) for k in HORIZONS)
        if best is None or t > best[0]:
            best = (t, m, -k)
        if t >= T_GOAL:
            break
    _, mu, k = best
    options: dict = {"horizon": k}
    if mu != momentum:
        options["mu"] = mu
    return "predict", options
