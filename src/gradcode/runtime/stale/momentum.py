"""Implicit-momentum compensation: staleness already is momentum, so use less of it.

Mitliagkas, Zhang, Hadjis, Re, "Asynchrony begets momentum, with an
application to deep learning" (Allerton 2016): with geometrically distributed
staleness of mean ``a``, the *expected* asynchronous update is heavy ball with
an implicit momentum

    mu_imp = a / (1 + a),                                                    (1)

(the average ``(1 - q) sum_j q^j g_{t-j}`` with ``q = a / (1 + a)`` obeys
``u_t = q u_{t-1} + (1 - q) g_t``), on top of the explicit momentum ``mu``;
their remedy is to lower the explicit momentum.  Two first-order filters in
series have total "memory" ``1 - (1 - mu')(1 - mu_imp)``; matching it to the
user's ``mu`` and keeping the user's long-run step ``lr / (1 - mu)`` gives

    mu' = max(0, 1 - (1 - mu) / (1 - mu_imp)),
    lr' = lr (1 - mu') / (1 - mu),                                           (2)

with ``a`` the scheme's mean staleness (PGC at ``s = 3``: ``mu_imp = 0.6``,
so ``mu = 0.9`` becomes ``mu' = 0.75`` with ``lr' = 2.5 lr``).  The option
``mu=`` sets ``mu'`` directly instead (``0``: fold all momentum into the step,
``lr' = lr / (1 - mu)``).

Rule (2) keeps the speed but not the stability: on a quadratic the stale
recurrence at ``(lr', mu')`` may still diverge (:mod:`gradcode.stability`).
With a curvature estimate ``h`` (:mod:`.curvature`) the step is therefore
capped at ``lr' <= safety x max_stable_step(p, mu') / h``.

>>> c = MomentumCompensation.from_profile((0.25,) * 4, lr=0.1, momentum=0.9)
>>> round(c.momentum, 3), round(c.lr, 3)
(0.75, 0.25)
>>> c = MomentumCompensation.from_profile((0.25,) * 4, 0.1, 0.9, mu=0.0, curvature=2.0)
>>> round(c.lr, 3)          # 1.0 would be unstable at h = 2: capped at 0.5 x 1.172 / 2
0.293
"""

from __future__ import annotations

from dataclasses import dataclass

from ...stability import max_stable_step, mean_age
from .base import Stateless

#: Fraction of the quadratic's largest stable step a capped step may use: the
#: curvature grows during training (progressive sharpening), so leave 2x room.
SAFETY = 0.5


@dataclass(frozen=True)
class MomentumCompensation(Stateless):
    """Run the optimizer at ``(lr, momentum)`` instead of the user's (see above); it acts
    once, in ``configure``, and is :class:`~gradcode.runtime.stale.base.Stateless` after."""

    lr: float
    momentum: float
    user_lr: float
    user_momentum: float

    @classmethod
    def from_profile(
        cls,
        profile,
        lr: float,
        momentum: float,
        *,
        curvature: float | None = None,
        safety: float = SAFETY,
        **params,
    ) -> MomentumCompensation:
        """Rule (2) for this staleness profile and the user's ``(lr, momentum)``;
        ``params``: ``mu=`` to set the explicit momentum directly."""
        unknown = set(params) - {"mu"}
        if unknown:
            raise ValueError(f"momentum correction: unknown option(s) {sorted(unknown)}")
        a = mean_age(profile)
        implicit = a / (1.0 + a)
        mu = params.get("mu")
        if mu is None:
            mu = max(0.0, 1.0 - (1.0 - momentum) / (1.0 - implicit))
        mu = float(mu)
        if not 0 <= mu < 1:
            raise ValueError(f"momentum correction: momentum must be in [0, 1), got {mu}")
        new_lr = lr * (1.0 - mu) / (1.0 - momentum)
        if curvature is not None and curvature > 0:
            new_lr = min(new_lr, safety * max_stable_step(profile, mu) / curvature)
        return cls(new_lr, mu, lr, momentum)

    @property
    def label(self) -> str:
        return f"momentum(lr={self.lr:.4g},momentum={self.momentum:.4g})"

    def configure(self, optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.lr * group["lr"] / self.user_lr if self.user_lr else self.lr
            if "initial_lr" in group:
                group["initial_lr"] = group["lr"]
            if "momentum" in group:
                group["momentum"] = self.momentum
