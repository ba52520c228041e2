"""Gradient oracles: where partition gradients come from.

The runtime needs only this from a model + data set (weights and gradients
are flat torch tensors; numpy input is accepted), declared here once:

* required (:class:`GradientOracle`): ``num_partitions``;
  ``initial_weights()``; ``partition_gradient(j, weights)``, normalised so
  that ``sum_j g_j(w)`` is the gradient of the mean training loss;
  ``train_loss(w)``; ``evaluate(w) -> {"loss": ..., "accuracy": ...}``;
* optional (:class:`OracleDefaults` lists them with what the runtime does
  without them): ``partition_gradients(weights, t, parts) -> {j: g_j}`` (many
  at once; round ``t`` picks the minibatches), ``parameters()`` (the tensors
  the optimizer steps), ``epoch(t)``, ``observe_round(w, t)``, ``state()`` /
  ``restore(state)`` (master-side state for checkpoints), ``state_dict(w)``
  (final weights as a model ``state_dict``) and ``restrict(parts)`` (a copy
  holding only some partitions' data, for a worker).

Callers reach the optional ones through :func:`oracle_methods`, never by
looking attributes up themselves.

:class:`LogisticOracle` is a small, fast implementation (multinomial logistic
regression with L2, float64) used by simulations and tests; PyTorch models
implement the same methods in :mod:`gradcode.task`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np
import torch


class GradientOracle(Protocol):
    """The methods every oracle has (the optional ones: :class:`OracleDefaults`)."""

    num_partitions: int

    def initial_weights(self) -> torch.Tensor: ...

    def partition_gradient(self, j: int, weights) -> torch.Tensor: ...

    def train_loss(self, weights) -> float: ...

    def evaluate(self, weights) -> dict[str, float]: ...


class OracleDefaults:
    """The optional oracle methods, as the runtime behaves when an oracle lacks one.

    >>> calls = oracle_methods(LogisticOracle(np.eye(2), [0, 1], [[0], [1]]))
    >>> calls.epoch(3) is None, calls.state(), len(calls.parameters())
    (True, None, 1)
    """

    def __init__(self, oracle: GradientOracle) -> None:
        self.oracle = oracle

    def partition_gradients(self, weights, t: int, parts: Iterable[int]) -> dict:
        """``{j: g_j}`` for round ``t``; default: one ``partition_gradient(j, weights)``
        call per partition (full batch: the round does not matter)."""
        return {int(j): self.oracle.partition_gradient(int(j), weights) for j in parts}

    def parameters(self) -> list[torch.Tensor]:
        """The tensors the optimizer steps; default: one flat parameter."""
        return [torch.nn.Parameter(torch.as_tensor(self.oracle.initial_weights()).clone())]

    def epoch(self, t: int) -> float | None:
        """Epochs of training data used after round ``t``; default ``None`` (not logged)."""
        return None

    def observe_round(self, weights, t: int) -> None:
        """Master-side bookkeeping after round ``t`` (e.g. BatchNorm statistics); default none."""

    def state(self) -> Any:
        """Master-side state outside the weights, for checkpoints; default ``None``."""
        return None

    def restore(self, state: Any) -> None:
        """Load what :meth:`state` returned; default: nothing to load."""

    def state_dict(self, weights) -> dict | None:
        """The final weights as a model ``state_dict``; default ``None``."""
        return None

    def restrict(self, parts: Iterable[int]) -> GradientOracle | None:
        """A copy holding only the data of ``parts``; default ``None``: backends share the
        whole oracle with every worker."""
        return None


@dataclass(frozen=True)
class OracleMethods:
    """An oracle's optional methods, each its own or the :class:`OracleDefaults` one."""

    partition_gradients: Callable[[Any, int, Iterable[int]], dict]
    parameters: Callable[[], list]
    epoch: Callable[[int], float | None]
    observe_round: Callable[[Any, int], None]
    state: Callable[[], Any]
    restore: Callable[[Any], None]
    state_dict: Callable[[Any], dict | None]
    restrict: Callable[[Iterable[int]], Any]


def oracle_methods(oracle: GradientOracle) -> OracleMethods:
    """The optional methods of ``oracle``, with defaults where it has none (the one place
    that looks them up)."""
    defaults = OracleDefaults(oracle)
    found = {}
    for f in fields(OracleMethods):
        own = getattr(oracle, f.name, None)
        found[f.name] = own if callable(own) else getattr(defaults, f.name)
    return OracleMethods(**found)


def partition_gradients(oracle, weights, t: int, parts: Iterable[int]) -> dict:
    """``{j: g_j}`` through the oracle's batched method when it has one."""
    return oracle_methods(oracle).partition_gradients(weights, t, parts)


class LogisticOracle:
    """Multinomial logistic regression, ``f = mean CE(softmax(x W + b), y) + lam/2 ||W||^2``.

    ``parts`` lists the training indices of each partition.  The L2 term is
    split equally across partitions so the partition gradients still add up
    to the full gradient.  Strongly convex for ``lam > 0``: :meth:`optimum`
    finds the unique minimiser for suboptimality plots.  Computes in float64
    torch tensors (``dtype`` to change).
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        parts: Sequence[np.ndarray],
        lam: float = 1e-3,
        X_test: np.ndarray | None = None,
        y_test: np.ndarray | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.dtype = dtype
        self.X = torch.as_tensor(np.asarray(X, dtype=float), dtype=dtype)
        self.y = torch.as_tensor(np.asarray(y, dtype=np.int64))
        self.c = int(self.y.max()) + 1
        self.d = self.X.shape[1]
        self.parts = [torch.as_tensor(np.asarray(p, dtype=np.int64)) for p in parts]
        self.num_partitions = len(self.parts)
        self.lam = float(lam)
        self.N = len(self.y)
        self.X_test = (
            self.X if X_test is None else torch.as_tensor(np.asarray(X_test, float), dtype=dtype)
        )
        self.y_test = self.y if y_test is None else torch.as_tensor(np.asarray(y_test, np.int64))

    @property
    def num_params(self) -> int:
        return (self.d + 1) * self.c

    def initial_weights(self) -> torch.Tensor:
        return torch.zeros(self.num_params, dtype=self.dtype)

    def _unpack(self, w) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.as_tensor(w, dtype=self.dtype)
        W = w[: self.d * self.c].reshape(self.d, self.c)
        return W, w[self.d * self.c :]

    def _grad(self, idx, w, reg_share: float) -> torch.Tensor:
        W, b = self._unpack(w)
        X = self.X[idx]
        P = torch.softmax(X @ W + b, dim=1)
        P[torch.arange(len(P)), self.y[idx]] -= 1.0
        gW = X.T @ P / self.N + reg_share * self.lam * W
        return torch.cat([gW.reshape(-1), P.sum(dim=0) / self.N])

    def partition_gradient(self, j: int, weights) -> torch.Tensor:
        return self._grad(self.parts[j], weights, 1.0 / self.num_partitions)

    def full_gradient(self, weights) -> torch.Tensor:
        return self._grad(torch.arange(self.N), weights, 1.0)

    def _loss(self, X, y, w) -> tuple[float, float]:
        W, b = self._unpack(w)
        Z = X @ W + b
        logp = torch.log_softmax(Z, dim=1)
        ce = -logp[torch.arange(len(y)), y].mean()
        acc = (Z.argmax(dim=1) == y).double().mean()
        return float(ce + 0.5 * self.lam * torch.sum(W * W)), float(acc)

    def train_loss(self, weights) -> float:
        return self._loss(self.X, self.y, weights)[0]

    def evaluate(self, weights) -> dict[str, float]:
        loss, acc = self._loss(self.X_test, self.y_test, weights)
        return {"loss": loss, "accuracy": acc}

    def optimum(self, iters: int = 5000, tol: float = 1e-12) -> tuple[torch.Tensor, float]:
        """Minimiser and minimum of the training loss (full-batch GD with backtracking)."""
        w = self.initial_weights()
        step = 1.0
        f = self.train_loss(w)
        for _ in range(iters):
            g = self.full_gradient(w)
            gg = float(g @ g)
            if gg < tol**2:
                break
            while True:
                w_new = w - step * g
                f_new = self.train_loss(w_new)
                if f_new <= f - 0.5 * step * gg:
                    break
                step *= 0.5
            w, f = w_new, f_new
            step *= 1.5
        return w, f
