"""``--stale-correction auto``: weight prediction, with horizon and momentum from the analysis.

The rule (measured in docs/stale.md, where it beats every other method):

1. **Method: weight prediction** (:mod:`.prediction`).  On fashion_mnist/mlp
   (n = 24, s = 3, batch 64, SGD lr 0.1, momentum 0.9) delay compensation
   and the staleness-aware rate still collapse or stall (10 %, 48 % after 300
   rounds), implicit-momentum compensation reaches 64-79 %, and prediction
   reaches 80 % -- fastest when the momentum is raised as in step 2.
2. **Setting: the one the quadratic analysis likes best.**  A user's
   heavy-ball setting ``(lr, mu)`` moves at the long-run step
   ``lr / (1 - mu)``; keep that step and pick the momentum ``mu'`` and the
   horizon ``k`` that tolerate the largest curvature at it,

       maximise  max_stable_step(predicted(p, k), mu') / (1 - mu')
       over      mu' in {mu} | {m in MOMENTA : m > mu},  k in HORIZONS,

   then run at ``lr' = lr (1 - mu') / (1 - mu)`` and momentum ``mu'``.  With
   prediction the tolerated curvature *grows* with the momentum (a smoother
   trajectory extrapolates better: PGC at s = 3, 2.3 at ``mu' = 0.9``, 3.95 at
   0.95, 9.1 at 0.98, per unit of step), while without it it shrinks (0.70,
   0.69, 0.67).  ``MOMENTA`` stops at 0.98, the largest measured.
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
>>> choose((0.25,) * 4, "other", 0.001, 0.9)           # Adam, beta1 = 0.9
('predict', {'horizon': 2.5})
"""

from __future__ import annotations

import numpy as np

from ...stability import max_stable_step, predicted
from .momentum import SAFETY

#: Momenta ``auto`` may raise the user's to (never lowers it).
MOMENTA = (0.9, 0.95, 0.98)
#: Prediction horizons ``auto`` considers (rounds).
HORIZONS = tuple(float(k) for k in np.arange(0.0, 4.01, 0.5))

__all__ = ["HORIZONS", "MOMENTA", "SAFETY", "choose", "tolerance"]


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
    """``(method, options)`` for this staleness profile and optimizer (rule above)."""
    momenta = [momentum]
    if kind == "heavy_ball":
        momenta += [m for m in MOMENTA if m > momentum]
    best = max(
        ((tolerance(profile, k, m), -m, -k) for m in momenta for k in HORIZONS),
    )
    mu, k = -best[1], -best[2]
    options: dict = {"horizon": k}
    if mu != momentum:
        options["mu"] = mu
    return "predict", options
