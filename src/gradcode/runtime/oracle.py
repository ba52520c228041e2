"""Gradient oracles: where partition gradients come from.

The runtime needs only this from a model + data set (weights travel as flat
NumPy vectors, so every backend can ship them):

* ``num_partitions``; ``initial_weights()``;
* ``partition_gradient(j, w)``: ``g_j(w)``, normalised so that
  ``sum_j g_j(w)`` is the gradient of the mean training loss;
* ``train_loss(w)`` and ``evaluate(w) -> {"loss": ..., "accuracy": ...}``.

:class:`LogisticOracle` is a small, fast NumPy implementation (multinomial
logistic regression with L2) used by simulations and tests; PyTorch models
implement the same methods in :mod:`gradcode.task`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class GradientOracle(Protocol):
    num_partitions: int

    def initial_weights(self) -> np.ndarray: ...

    def partition_gradient(self, j: int, weights: np.ndarray) -> np.ndarray: ...

    def train_loss(self, weights: np.ndarray) -> float: ...

    def evaluate(self, weights: np.ndarray) -> dict[str, float]: ...


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LogisticOracle:
    """Multinomial logistic regression, ``f = mean CE(softmax(x W + b), y) + lam/2 ||W||^2``.

    ``parts`` lists the training indices of each partition.  The L2 term is
    split equally across partitions so the partition gradients still add up
    to the full gradient.  Strongly convex for ``lam > 0``: :meth:`optimum`
    finds the unique minimiser for suboptimality plots.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        parts: Sequence[np.ndarray],
        lam: float = 1e-3,
        X_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
    ) -> None:
        self.X = np.asarray(X, dtype=float)
        self.y = np.asarray(y, dtype=int)
        self.c = int(self.y.max()) + 1
        self.d = self.X.shape[1]
        self.parts = [np.asarray(p, dtype=int) for p in parts]
        self.num_partitions = len(self.parts)
        self.lam = float(lam)
        self.N = len(self.y)
        self.X_test = self.X if X_test is None else np.asarray(X_test, dtype=float)
        self.y_test = self.y if y_test is None else np.asarray(y_test, dtype=int)

    @property
    def num_params(self) -> int:
        return (self.d + 1) * self.c

    def initial_weights(self) -> np.ndarray:
        return np.zeros(self.num_params)

    def _unpack(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        W = w[: self.d * self.c].reshape(self.d, self.c)
        return W, w[self.d * self.c :]

    def _grad(self, idx: np.ndarray, w: np.ndarray, reg_share: float) -> np.ndarray:
        W, b = self._unpack(w)
        P = _softmax(self.X[idx] @ W + b)
        P[np.arange(len(idx)), self.y[idx]] -= 1.0
        gW = self.X[idx].T @ P / self.N + reg_share * self.lam * W
        return np.concatenate([gW.ravel(), P.sum(axis=0) / self.N])

    def partition_gradient(self, j: int, weights: np.ndarray) -> np.ndarray:
        return self._grad(self.parts[j], weights, 1.0 / self.num_partitions)

    def full_gradient(self, weights: np.ndarray) -> np.ndarray:
        return self._grad(np.arange(self.N), weights, 1.0)

    def _loss(self, X, y, w) -> tuple[float, float]:
        W, b = self._unpack(w)
        Z = X @ W + b
        Z = Z - Z.max(axis=1, keepdims=True)
        logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
        ce = -logp[np.arange(len(y)), y].mean()
        return float(ce + 0.5 * self.lam * np.sum(W * W)), float((Z.argmax(axis=1) == y).mean())

    def train_loss(self, weights: np.ndarray) -> float:
        return self._loss(self.X, self.y, weights)[0]

    def evaluate(self, weights: np.ndarray) -> dict[str, float]:
        loss, acc = self._loss(self.X_test, self.y_test, weights)
        return {"loss": loss, "accuracy": acc}

    def optimum(self, iters: int = 5000, tol: float = 1e-12) -> tuple[np.ndarray, float]:
        """Minimiser and minimum of the training loss (full-batch GD with backtracking)."""
        w = self.initial_weights()
        step = 1.0
        f = self.train_loss(w)
        for _ in range(iters):
            g = self.full_gradient(w)
            if g @ g < tol**2:
                break
            while True:
                w_new = w - step * g
                f_new = self.train_loss(w_new)
                if f_new <= f - 0.5 * step * (g @ g):
                    break
                step *= 0.5
            w, f = w_new, f_new
            step *= 1.5
        return w, f
