"""The top Hessian eigenvalue of the training loss, from a few Hessian-vector products.

The stability analysis (:mod:`gradcode.stability`) bounds ``lr x curvature``;
to turn it into a bound on ``lr`` the master needs the largest curvature
``h = lambda_max(grad^2 F(w_0))`` of the loss it descends.  Power iteration
(von Mises) finds it from Hessian-vector products only:

    v <- H v / ||H v||,   h ~ v . H v,

and ``H v`` is the directional derivative of the gradient, computed exactly by
forward-over-reverse differentiation (``torch.func.jvp`` of the oracle's own
``partition_gradients``: Pearlmutter 1994's R-operator, no Hessian is formed).
Where the oracle cannot be differentiated that way (a non-differentiable step
inside it), a central finite difference of two gradients is used instead.

Cost: ``iters`` (default 12) Hessian-vector products, each about two
gradients, on *one* batch -- round ``t``'s minibatch of every partition, the
batch the master's first update uses.  On fashion_mnist/mlp (109k weights,
24 x 64 samples) that is about 1 s on one core, against ~40 s for 300
rounds; power iteration converges from below, so the estimate is a slight
underestimate (1.01 after 20 products, 0.90 after 10, at the initial weights).

The curvature of a network grows during training ("progressive sharpening",
Cohen et al., ICLR 2021), so the initial value is a lower bound on what a run
meets; :mod:`gradcode.runtime.stale` keeps a safety factor for that reason.

>>> import numpy as np, torch
>>> class Quadratic:                       # f(w) = (1/2) w' diag(3, 1) w, two partitions
...     num_partitions = 2
...     def partition_gradients(self, w, t, parts):
...         return {j: 0.5 * torch.tensor([3.0, 1.0], dtype=w.dtype) * w for j in parts}
>>> h = top_curvature(Quadratic(), torch.ones(2, dtype=torch.float64), np.random.default_rng(0))
>>> round(h, 6)
3.0
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..oracle import partition_gradients


def _gradient(oracle, t: int):
    parts = range(oracle.num_partitions)

    def grad(w):
        g = partition_gradients(oracle, w, t, parts)
        return torch.stack([torch.as_tensor(v) for v in g.values()]).sum(0)

    return grad


def top_curvature(
    oracle, weights, rng: np.random.Generator, t: int = 0, iters: int = 12
) -> float | None:
    """Largest Hessian eigenvalue of round ``t``'s minibatch loss at ``weights``
    (power iteration; see the module docstring).  ``None`` when it cannot be
    estimated (no finite, positive value came out)."""
    w = torch.as_tensor(weights).detach().clone()
    grad = _gradient(oracle, t)
    v = torch.as_tensor(rng.standard_normal(w.numel()), dtype=w.dtype).to(w.device)
    v /= v.norm()
    hvp = _jvp_hvp(grad, w, v)
    if hvp is None:
        hvp = _difference_hvp(grad, w)
    est = None
    for _ in range(iters):
        hv = hvp(v)
        norm = float(hv.norm())
        if not math.isfinite(norm) or norm == 0.0:
            return None
        est = float(v @ hv)
        v = hv / norm
    return est if est is not None and math.isfinite(est) and est > 0 else None


def _jvp_hvp(grad, w, v):
    """``v -> H v`` by forward-over-reverse differentiation, or ``None`` if the oracle
    does not support it (the tangent is lost or an operation has no forward rule)."""

    def hvp(u):
        return torch.func.jvp(grad, (w,), (u,))[1]

    try:
        hv = hvp(v)
    except Exception:  # noqa: BLE001 - any oracle may refuse forward-mode AD
        return None
    if not bool(torch.isfinite(hv).all()) or float(hv.norm()) == 0.0:
        return None
    return hvp


def _difference_hvp(grad, w):
    """``v -> (g(w + e v) - g(w - e v)) / 2e`` with ``e = 1e-3 max(1, ||w||)`` for unit ``v``."""
    eps = 1e-3 * max(1.0, float(w.norm()))

    def hvp(u):
        return ((grad(w + eps * u) - grad(w - eps * u)) / (2 * eps)).detach()

    return hvp
