"""Corrections for stale gradients (``--stale-correction`` / ``stale_correction=``).

PGC and its variants (``pgc``, ``pgc_reference``, ``pgc_memory``,
``is_latefold``) and SR-SGC (``sr_sgc``) apply gradients taken at older
weights.  Each such scheme exposes its ``staleness_profile`` (the weight of
the gradient ``a`` rounds old in a steady-state update); on a quadratic the
profile decides how large a step heavy ball can take (:mod:`gradcode.stability`):
at momentum 0.9, 54x smaller for PGC at ``s = 3`` than for fresh gradients.
The remedies of asynchronous and pipeline-parallel training, one module each:

==============  ==============================================  ==============================
name            what it does                                    paper
==============  ==============================================  ==============================
``none``        the scheme as published (default)
``momentum``    lower the momentum by staleness's implicit       Mitliagkas et al. 2016
                momentum, keep ``lr / (1 - mu)``, cap the step
                at the stable one (:mod:`.momentum`)
``predict``     workers compute at ``w + k (w - w_prev)``,      SpecTrain 2018, PipeMare 2021
                ``k`` = mean age (:mod:`.prediction`)
``dc``          add ``lambda g*g*(w_t - w_tau)`` to the update   DC-ASGD, Zheng et al. 2017
                (:mod:`.delay_comp`)
``lr``          scale the update by ``1 / (1 + mean age)``       Zhang et al. IJCAI 2016
                (:mod:`.staleness_lr`)
``auto``        the rule of :mod:`.auto` (from the profile,
                the optimizer and the curvature)
==============  ==============================================  ==============================

Options follow a colon: ``predict:horizon=2``, ``momentum:mu=0``,
``dc:lam=1``.  For a scheme without stale gradients ``none`` and ``auto`` do
nothing and a method is an error.

:func:`build` is what the master loop calls once, before round 0: it reads the
optimizer's ``(lr, momentum)``, estimates the top Hessian eigenvalue of the
loss at the initial weights (:mod:`.curvature`, about a second), warns in one
line when the run is unstable by the analysis and no correction was asked
for, resolves ``auto`` and configures the optimizer.

>>> parse("predict:horizon=2")
('predict', {'horizon': 2.0})
>>> stale_schemes()
['is_latefold', 'pgc', 'pgc_memory', 'pgc_reference', 'sr_sgc']
>>> check("momentum", "dgd")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
ValueError: stale_correction 'momentum': dgd applies no stale gradients (...); use 'none' or 'auto'
"""

from __future__ import annotations

import warnings

import numpy as np

from ...codes import REGISTRY
from ...stability import max_stable_step, mean_age
from .auto import SAFETY, choose
from .base import Correction, Identity, hyperparameters
from .curvature import top_curvature
from .delay_comp import DelayCompensation
from .momentum import MomentumCompensation
from .prediction import Prediction
from .staleness_lr import StalenessLR

#: The methods (each also a value of ``--stale-correction``).
METHODS = ("momentum", "predict", "dc", "lr")
NAMES = ("none", "auto", *METHODS)
_OPTIONS = {"momentum": ("mu",), "predict": ("horizon", "mu"), "dc": ("lam",), "lr": ()}


def parse(spec: str) -> tuple[str, dict[str, float]]:
    """``"name[:key=value,...]"`` -> ``(name, {key: float})``; one-line errors."""
    name, _, rest = str(spec).partition(":")
    name = name.strip()
    if name not in NAMES:
        raise ValueError(f"stale_correction must be one of {', '.join(NAMES)}, got {spec!r}")
    params: dict[str, float] = {}
    for item in filter(None, (x.strip() for x in rest.split(","))):
        key, sep, value = (x.strip() for x in item.partition("="))
        allowed = _OPTIONS.get(name, ())
        if not sep or key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise ValueError(f"stale_correction {spec!r}: bad option {item!r}; options: {valid}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"stale_correction {spec!r}: {key} needs a number") from None
    return name, params


def stale_schemes() -> list[str]:
    """Registered schemes whose updates use stale gradients (they have a profile)."""
    return sorted(n for n, i in REGISTRY.items() if hasattr(i.factory, "staleness_profile"))


def check(spec: str, scheme: str) -> None:
    """Validate ``spec`` for ``scheme`` before anything runs (``ValueError``, one line)."""
    name, _ = parse(spec)
    if name not in ("none", "auto") and scheme in REGISTRY and scheme not in stale_schemes():
        raise ValueError(
            f"stale_correction {spec!r}: {scheme} applies no stale gradients (stale schemes: "
            f"{', '.join(stale_schemes())}); use 'none' or 'auto'"
        )


def staleness_profile(scheme) -> tuple[float, ...] | None:
    """The scheme object's staleness profile, ``None`` when it applies fresh gradients."""
    profile = getattr(scheme, "staleness_profile", None)
    if profile is None or tuple(profile) == (1.0,):
        return None
    return tuple(float(p) for p in profile)


def build(spec: str, scheme, optimizer, oracle, weights) -> Correction:
    """The correction ``spec`` for ``scheme``, with ``optimizer`` configured (see above)."""
    name, params = parse(spec)
    profile = staleness_profile(scheme)
    if profile is None:
        if name not in ("none", "auto"):
            check(spec, getattr(scheme, "name", "?"))
            raise ValueError(f"stale_correction {spec!r}: this scheme has no stale gradients")
        return Identity()
    kind, lr, mu = hyperparameters(optimizer)
    curvature = None
    if kind == "heavy_ball" and name in ("none", "auto", "momentum"):
        curvature = top_curvature(oracle, weights, np.random.default_rng(0))
    if name == "none":
        msg = stability_warning(getattr(scheme, "name", "?"), profile, lr, mu, curvature)
        if msg is not None:
            warnings.warn(msg, stacklevel=3)
        return Identity()
    if name == "auto":
        name, params = choose(profile, kind, lr, mu, curvature)
    corr = make(name, params, profile, lr, mu, curvature)
    corr.configure(optimizer)
    return corr


def make(name: str, params: dict, profile, lr: float, momentum: float, curvature=None):
    """One method's correction object for this profile and the user's optimizer."""
    if name == "none":
        return Identity()
    if name == "momentum":
        return MomentumCompensation.from_profile(
            profile, lr, momentum, curvature=curvature, **params
        )
    if name == "predict":
        return Prediction(float(params.get("horizon", mean_age(profile))), params.get("mu"))
    if name == "dc":
        return DelayCompensation(float(params.get("lam", 2.0)), depth=len(profile) + 1)
    if name == "lr":
        return StalenessLR()
    raise ValueError(f"unknown stale correction {name!r}")


def stability_warning(scheme: str, profile, lr: float, momentum: float, curvature) -> str | None:
    """One line when heavy ball at ``(lr, momentum)`` with this profile is unstable on
    a quadratic of the estimated ``curvature`` (or within :data:`SAFETY` of the edge:
    the curvature grows in training); ``None`` otherwise or without a curvature.

    >>> msg = stability_warning("pgc", (0.25,) * 4, 0.1, 0.9, 1.0)
    >>> msg[msg.index("it is"):msg.index(" = ")]
    'it is unstable by the quadratic analysis (lr x curvature 0.1 > 0.0352'
    >>> stability_warning("pgc", (0.25,) * 4, 0.01, 0.9, 1.0) is None
    True
    """
    if curvature is None or not lr > 0:
        return None
    limit = max_stable_step(profile, momentum)
    step = lr * curvature
    if step <= SAFETY * limit:
        return None
    return (
        f"{scheme} applies stale gradients (mean age {mean_age(profile):g} rounds): at lr {lr:g}, "
        f"momentum {momentum:g} and initial curvature {curvature:.3g} (top Hessian eigenvalue) "
        f"it is unstable by the quadratic analysis (lr x curvature {step:.3g} > "
        f"{SAFETY * limit:.3g} = {SAFETY:g} x {limit:.3g}, the largest stable step with a margin "
        "for growing curvature); use --stale-correction auto (stale_correction='auto'): "
        "docs/stale.md"
    )


__all__ = [
    "METHODS",
    "NAMES",
    "Correction",
    "DelayCompensation",
    "Identity",
    "MomentumCompensation",
    "Prediction",
    "StalenessLR",
    "build",
    "check",
    "choose",
    "make",
    "parse",
    "stale_schemes",
    "stability_warning",
    "staleness_profile",
    "top_curvature",
]
