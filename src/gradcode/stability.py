"""Heavy ball with stale gradients on a quadratic: when is it stable? (pure NumPy)

A scheme that applies stale gradients (PGC, its variants, SR-SGC) updates with
a mix of gradients taken at the last few weights.  Its *staleness profile*
``p = (p_0, ..., p_A)`` gives the weight of the gradient ``a`` rounds old
(``sum_a p_a = 1``): PGC at ``s`` averages the last ``s + 1`` gradients
(``p_a = 1/(s+1)``), SR-SGC with burst length ``B`` applies the gradient ``B``
rounds late (``p_B = 1``).  On a one-dimensional quadratic ``f(x) = h x^2 / 2``
heavy ball (SGD with momentum ``mu``, step ``lr``) then reads

    x_{t+1} = x_t + mu (x_t - x_{t-1}) - lr h sum_a q_a x_{t-a},          (1)

with the *kernel* ``q = p`` (corrections change ``q``, see below).  It is a
linear recurrence: it converges for every start iff every root of its
characteristic polynomial

    z^D - (1 + mu) z^{D-1} + mu z^{D-2} + lr h sum_a q_a z^{D-1-a},  D = max(A+1, 2),

lies strictly inside the unit circle (Polyak 1964 for ``q = (1,)``; the stale
form is the classical analysis of delayed gradient iterations, e.g. Mitliagkas,
Zhang, Hadjis, Re 2016, and the pipeline analysis of Yang et al., PipeMare,
MLSys 2021).  Only ``lr h`` matters, so :func:`max_stable_step` returns the
largest stable ``lr x curvature``; divide it by the top Hessian eigenvalue of
the training loss to get the largest stable learning rate.

The numbers of the stale-gradient issue (momentum 0.9, then 0): fresh gradients
3.8 / 2.0, the mean of the last 4 (PGC, s = 3) 0.070 / 1.17, one round late
(SR-SGC, B = 1) 0.10 / 1.0:

    >>> [round(max_stable_step(p, 0.9), 3) for p in (FRESH, uniform(3), delayed(1))]
    [3.8, 0.07, 0.1]
    >>> [round(max_stable_step(p, 0.0), 3) for p in (FRESH, uniform(3), delayed(1))]
    [2.0, 1.172, 1.0]

So staleness shrinks the stable step 54x at momentum 0.9 but only 1.7x at
momentum 0: momentum and staleness compound.

Kernels of the corrections (:mod:`gradcode.runtime.stale`):

* weight prediction with horizon ``k`` (gradients taken at
  ``x_t + k (x_t - x_{t-1})``): ``q = p * (1 + k, -k)`` (:func:`predicted`);
* delay compensation that recovers a fraction ``kappa`` of the fresh gradient
  (``g(x_t) ~ g(x_tau) + kappa h (x_t - x_tau)``): ``q = kappa e_0 + (1 - kappa) p``
  (:func:`compensated`);
* learning-rate and momentum changes act through ``lr`` and ``mu`` themselves.

    >>> round(max_stable_step(predicted(delayed(1), 1.0), 0.9), 3)   # 2.7x the stale step
    0.27
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The profile of a fresh gradient (synchronous SGD).
FRESH: tuple[float, ...] = (1.0,)
#: Roots at least this far inside the unit circle count as stable.
TOL = 1e-9


def uniform(s: int) -> tuple[float, ...]:
    """The mean of the last ``s + 1`` gradients (PGC at ``s``, no stragglers).

    >>> uniform(1)
    (0.5, 0.5)
    """
    if s < 0:
        raise ValueError(f"s must be >= 0, got {s}")
    return (1.0 / (s + 1),) * (s + 1)


def delayed(delay: int) -> tuple[float, ...]:
    """One gradient ``delay`` rounds late (SR-SGC with ``B = delay``).

    >>> delayed(2)
    (0.0, 0.0, 1.0)
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay}")
    return (0.0,) * delay + (1.0,)


def check_profile(profile: Sequence[float]) -> np.ndarray:
    """``profile`` as an array: non-empty, non-negative, finite, summing to 1."""
    p = np.asarray(profile, dtype=float)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"a staleness profile is a list of weights >= 0, got {profile!r}")
    if abs(p.sum() - 1.0) > 1e-9:
        raise ValueError(f"a staleness profile's weights must sum to 1, got {p.sum():.6g}")
    return p


def mean_age(profile: Sequence[float]) -> float:
    """The profile's mean staleness ``sum_a a p_a`` in rounds.

    >>> mean_age(uniform(3)), mean_age(delayed(1))
    (1.5, 1.0)
    """
    p = check_profile(profile)
    return float(np.arange(p.size) @ p)


def predicted(profile: Sequence[float], horizon: float) -> np.ndarray:
    """Kernel of weight prediction: every gradient is taken at the extrapolated
    weights ``x_t + horizon (x_t - x_{t-1})`` (SpecTrain, Chen et al. 2018; PipeMare,
    Yang et al. 2021), so ``q = p * (1 + horizon, -horizon)`` (a convolution).

    >>> predicted(delayed(1), 1.0).tolist()
    [0.0, 2.0, -1.0]
    """
    return np.convolve(check_profile(profile), [1.0 + horizon, -float(horizon)])


def compensated(profile: Sequence[float], kappa: float) -> np.ndarray:
    """Kernel of a first-order delay compensation recovering the fraction ``kappa``
    of each stale gradient's drift (DC-ASGD, Zheng et al. ICML 2017, with the
    Hessian approximated to that fidelity): ``q = kappa e_0 + (1 - kappa) p``.

    >>> compensated(delayed(1), 0.5).tolist()
    [0.5, 0.5]
    """
    q = (1.0 - kappa) * check_profile(profile)
    q[0] += kappa
    return q


def characteristic_polynomial(kernel: Sequence[float], lr_h: float, momentum: float) -> np.ndarray:
    """Coefficients (highest degree first) of recurrence (1)'s characteristic polynomial.

    >>> characteristic_polynomial(FRESH, 1.0, 0.5).tolist()     # z^2 - 1.5 z + 0.5 + z
    [1.0, -0.5, 0.5]
    """
    q = np.asarray(kernel, dtype=float)
    D = max(q.size, 2)
    poly = np.zeros(D + 1)
    poly[0] = 1.0
    poly[1] -= 1.0 + momentum
    poly[2] += momentum
    poly[1 : 1 + q.size] += lr_h * q
    return poly


def spectral_radius(kernel: Sequence[float], lr_h: float, momentum: float) -> float:
    """Largest root modulus of recurrence (1): < 1 is stable (geometric convergence).

    >>> round(spectral_radius(FRESH, 1.0, 0.0), 12)     # gradient descent at lr h = 1
    0.0
    """
    return float(np.max(np.abs(np.roots(characteristic_polynomial(kernel, lr_h, momentum)))))


def is_stable(kernel: Sequence[float], lr_h: float, momentum: float) -> bool:
    """Does heavy ball with this kernel converge on a quadratic at ``lr x curvature = lr_h``?

    >>> is_stable(uniform(3), 0.1, 0.9), is_stable(uniform(3), 0.05, 0.9)
    (False, True)
    """
    return spectral_radius(kernel, lr_h, momentum) < 1.0 - TOL


def max_stable_step(
    kernel: Sequence[float], momentum: float, upper: float = 1e3, rtol: float = 1e-6
) -> float:
    """The largest ``lr x curvature`` at which recurrence (1) is stable (bisection).

    Scans a logarithmic grid from ``1e-6`` up for the first unstable step, then
    bisects between it and the last stable one to relative precision ``rtol``
    (the stable set starts at 0; for the kernels here it is one interval).
    Returns ``upper`` when every step up to it is stable and 0 when none is.

    >>> round(max_stable_step(FRESH, 0.5), 4)      # 2 (1 + mu)
    3.0
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    grid = np.geomspace(1e-6, upper, 200)
    stable = [is_stable(kernel, c, momentum) for c in grid]
    if all(stable):
        return float(upper)
    first = stable.index(False)
    if first == 0:
        return 0.0
    lo, hi = float(grid[first - 1]), float(grid[first])
    while hi - lo > rtol * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if is_stable(kernel, mid, momentum) else (lo, mid)
    return lo


__all__ = [
    "FRESH",
    "characteristic_polynomial",
    "check_profile",
    "compensated",
    "delayed",
    "is_stable",
    "max_stable_step",
    "mean_age",
    "predicted",
    "spectral_radius",
    "uniform",
]
