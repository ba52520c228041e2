"""Baselines without coding: wait for everyone, or ignore the stragglers.

* ``dgd`` -- synchronous distributed gradient descent: ``B = I``, the master
  waits for all ``n`` workers.  Exact, but every round lasts as long as the
  slowest worker.
* ``is_sgd`` -- *ignore stragglers* SGD, i.e. synchronous SGD with backup
  workers (Chen, Pan, Monga, Bengio, Jozefowicz, "Revisiting Distributed
  Synchronous SGD", 2016): ``B = I``, the master uses the first ``n - s``
  arrivals and rescales their sum by ``n / (n - s)`` so the estimate of the
  full gradient sum is unbiased when the stragglers are a uniformly random
  set.  Cheap (load 1) but inexact:
  ``||a B - 1||^2 = (n - s) (n/(n-s) - 1)^2 + s``.

Example::

    >>> from gradcode.codes import make_code
    >>> d = make_code("is_sgd", n=4, s=1).decode([0, 2, 3])
    >>> d.weights.tolist(), d.exact
    ([1.3333333333333333, 0.0, 1.3333333333333333, 1.3333333333333333], False)
"""

from __future__ import annotations

import numpy as np

from .base import Decoding, GradientCode, check_ns, residual_of


class DGD(GradientCode):
    """Wait for all ``n`` workers; each stores one partition."""

    name = "dgd"

    def __init__(self, n: int, s: int = 0) -> None:
        check_ns(n, s)
        super().__init__(np.eye(n), s)

    def ready(self, arrived) -> bool:
        return len(set(arrived)) >= self.n

    def completion_time(self, times):
        return np.max(times, axis=-1)

    def decode_batch(self, used):
        missing = self.n - np.asarray(used, dtype=bool).sum(axis=1)
        return missing == 0, np.sqrt(missing)

    def _decode(self, workers: list[int]) -> Decoding:
        w = np.zeros(self.n)
        w[workers] = 1.0
        res = residual_of(w, self.B)
        return Decoding(w, tuple(workers), res == 0.0, res, 1.0 if workers else np.inf, 1.0)


class ISSGD(GradientCode):
    """Ignore stragglers: sum of the first ``n - s`` gradients times ``n/(n-s)``."""

    name = "is_sgd"
    exact_design = False

    def __init__(self, n: int, s: int) -> None:
        check_ns(n, s)
        super().__init__(np.eye(n), s)

    def _decode(self, workers: list[int]) -> Decoding:
        w = np.zeros(self.n)
        if workers:
            w[workers] = self.n / len(workers)
        res = residual_of(w, self.B)
        cond = 1.0 if workers else np.inf
        return Decoding(w, tuple(workers), res <= 1e-12, res, cond, float(np.max(np.abs(w))))

    def decode_batch(self, used):
        c = np.asarray(used, dtype=bool).sum(axis=1).astype(float)
        scale = np.divide(self.n, c, out=np.zeros_like(c), where=c > 0)
        residual = np.sqrt(c * (scale - 1.0) ** 2 + (self.n - c))
        return residual <= 1e-12, residual


__all__ = ["DGD", "ISSGD"]
