"""The gradient oracle: a dataset, a model and a partition of the training set.

The training objective is the mean cross-entropy plus an optional L2 term::

    F(w) = (1/N) sum_{i=1}^{N} loss_i(w) + (wd/2) ||w||^2.

With the training indices split into ``k`` disjoint partitions ``P_j``,
``F = sum_j F_j`` where::

    F_j(w) = (1/N) sum_{i in P_j} loss_i(w) + (wd / (2k)) ||w||^2,

so the per-partition gradients ``g_j = grad F_j`` -- what gradient-coding
workers compute and encode -- sum *exactly* to the full gradient.  Note the
``1/N`` (not ``1/|P_j|``): partitions of unequal size still add up right.

Weights travel as flat float64 NumPy vectors (what the master ships to the
workers); :func:`flatten` / :func:`unflatten` convert to and from a module's
parameters in ``parameters()`` order.

Example::

    >>> import numpy as np
    >>> t = Task.build("wine", "logreg", 4, "iid", np.random.default_rng(0))
    >>> w = t.initial_weights()
    >>> g = sum(t.partition_gradient(j, w) for j in range(4))
    >>> bool(np.allclose(g, t.full_gradient(w), atol=1e-6))
    True

A :class:`Task` owns one model whose parameters each call overwrites, so it is
not thread-safe: give each worker thread or process its own ``Task``.  All
computation is on CPU by default; ``device="cuda"`` runs on the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from gradcode.data import PARTITIONINGS, Dataset, load_dataset, partition
from gradcode.models import make_model

#: Samples per forward/backward pass in full-data passes (bounds memory).
CHUNK = 4096


def flatten(model: nn.Module) -> np.ndarray:
    """The model's parameters as one flat float64 NumPy vector (a copy)."""
    vec = parameters_to_vector(model.parameters()).detach()
    return vec.to(device="cpu", dtype=torch.float64).numpy().copy()


def unflatten(model: nn.Module, weights: np.ndarray) -> None:
    """Write the flat vector ``weights`` into the model's parameters (in place)."""
    weights = np.asarray(weights)
    n = sum(p.numel() for p in model.parameters())
    if weights.ndim != 1 or weights.shape[0] != n:
        raise ValueError(f"weights must be a flat vector of {n} numbers, got shape {weights.shape}")
    first = next(model.parameters())
    vec = torch.as_tensor(weights, dtype=first.dtype, device=first.device)
    with torch.no_grad():
        vector_to_parameters(vec, model.parameters())


def _resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


@dataclass(frozen=True)
class TaskInfo:
    """Plain description of a task (JSON-friendly, for logs)."""

    dataset: str
    model: str
    num_partitions: int
    partitioning: str
    num_params: int
    n_train: int
    n_test: int
    weight_decay: float
    device: str
    dtype: str


class Task:
    """Dataset + model + partition; computes partition gradients from flat weights.

    Build with :meth:`Task.build`.  Attributes: ``dataset``, ``model``,
    ``partitions`` (list of index arrays), ``weight_decay``, ``device``.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: nn.Module,
        partitions: list[np.ndarray],
        *,
        model_name: str = "?",
        partitioning: str = "?",
        weight_decay: float = 0.0,
        device: str | torch.device = "cpu",
    ) -> None:
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.dataset = dataset
        self.device = _resolve_device(device)
        self.model = model.to(self.device)
        self.dtype = next(model.parameters()).dtype
        self.partitions = [np.asarray(p, dtype=np.int64) for p in partitions]
        self.weight_decay = float(weight_decay)
        self.model_name = model_name
        self.partitioning = partitioning
        self._params = list(self.model.parameters())
        self._w0 = flatten(self.model)
        self._X = torch.as_tensor(dataset.X_train, dtype=self.dtype, device=self.device)
        self._y = torch.as_tensor(dataset.y_train, device=self.device)
        self._Xt = torch.as_tensor(dataset.X_test, dtype=self.dtype, device=self.device)
        self._yt = torch.as_tensor(dataset.y_test, device=self.device)
        self._idx = [torch.as_tensor(p, device=self.device) for p in self.partitions]
        # Eval mode: no layer here behaves differently, but it is the honest setting.
        self.model.eval()

    @classmethod
    def build(
        cls,
        dataset_name: str,
        model_name: str,
        num_partitions: int,
        partitioning: str,
        rng: np.random.Generator,
        data_dir: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        weight_decay: float = 0.0,
        test_fraction: float = 0.2,
        verify: bool = True,
    ) -> Task:
        """Load data, build the model and partition the training set.

        ``rng`` is split into three independent streams (data split, model
        init, partition), so e.g. changing the model leaves the partitions as
        they were.  Same seed, same everything.
        """
        dev = _resolve_device(device)
        if partitioning not in PARTITIONINGS:
            raise ValueError(f"unknown partitioning {partitioning!r}; choose {list(PARTITIONINGS)}")
        seeds = rng.integers(2**63 - 1, size=3)  # (Generator.spawn needs numpy >= 1.25)
        data_rng, model_rng, part_rng = (np.random.default_rng(int(s)) for s in seeds)
        ds = load_dataset(dataset_name, data_rng, data_dir, test_fraction, verify=verify)
        model = make_model(model_name, ds.input_shape, ds.n_classes, model_rng, dtype=dtype)
        parts = partition(ds.y_train, num_partitions, partitioning, part_rng)
        return cls(
            ds,
            model,
            parts,
            model_name=model_name,
            partitioning=partitioning,
            weight_decay=weight_decay,
            device=dev,
        )

    # ------------------------------------------------------------------ basics

    @property
    def num_params(self) -> int:
        return int(self._w0.shape[0])

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)

    def info(self) -> TaskInfo:
        return TaskInfo(
            self.dataset.name,
            self.model_name,
            self.num_partitions,
            self.partitioning,
            self.num_params,
            self.dataset.n_train,
            int(self.dataset.y_test.shape[0]),
            self.weight_decay,
            str(self.device),
            str(self.dtype).removeprefix("torch."),
        )

    def initial_weights(self) -> np.ndarray:
        """Flat float64 copy of the deterministic initial weights."""
        return self._w0.copy()

    # ------------------------------------------------------------------ gradients

    def _grad(self, weights: np.ndarray, batches) -> np.ndarray:
        """``grad_w (1/N) sum_{batches} sum_i loss_i`` as float64 (no L2 term)."""
        unflatten(self.model, weights)
        n = self.dataset.n_train
        total = None
        for X, y in batches:
            loss = F.cross_entropy(self.model(X), y, reduction="sum") / n
            grads = torch.autograd.grad(loss, self._params, allow_unused=True)
            flat = torch.cat(
                [
                    (g if g is not None else torch.zeros_like(p)).reshape(-1)
                    for g, p in zip(grads, self._params, strict=True)
                ]
            ).to(torch.float64)
            total = flat if total is None else total + flat
        return total.cpu().numpy()

    def partition_gradient(self, j: int, weights: np.ndarray) -> np.ndarray:
        """``grad F_j(weights)``: flat float64 gradient of partition ``j``'s share.

        Equals ``grad [(1/N) sum_{i in P_j} loss_i + (wd/(2k)) ||w||^2]``.
        """
        if not 0 <= j < self.num_partitions:
            raise ValueError(f"partition index must be in 0..{self.num_partitions - 1}, got {j}")
        idx = self._idx[j]
        batches = ((self._X[c], self._y[c]) for c in torch.split(idx, CHUNK))
        g = self._grad(weights, batches)
        if self.weight_decay:
            g += (self.weight_decay / self.num_partitions) * np.asarray(weights, dtype=np.float64)
        return g

    def full_gradient(self, weights: np.ndarray) -> np.ndarray:
        """``grad F(weights)`` over the whole training set (in fixed chunks,
        independently of the partition)."""
        batches = (
            (self._X[s : s + CHUNK], self._y[s : s + CHUNK]) for s in range(0, len(self._y), CHUNK)
        )
        g = self._grad(weights, batches)
        if self.weight_decay:
            g += self.weight_decay * np.asarray(weights, dtype=np.float64)
        return g

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _loss_acc(
        self, weights: np.ndarray, X: torch.Tensor, y: torch.Tensor
    ) -> tuple[float, float]:
        unflatten(self.model, weights)
        loss, correct = 0.0, 0
        for s in range(0, len(y), CHUNK):
            logits = self.model(X[s : s + CHUNK])
            ys = y[s : s + CHUNK]
            loss += float(F.cross_entropy(logits, ys, reduction="sum").to(torch.float64))
            correct += int((logits.argmax(dim=1) == ys).sum())
        return loss / len(y), correct / len(y)

    def train_loss(self, weights: np.ndarray) -> float:
        """``F(weights)``: mean training cross-entropy plus ``(wd/2)||w||^2``
        (the objective whose gradient :meth:`full_gradient` returns)."""
        loss, _ = self._loss_acc(weights, self._X, self._y)
        w = np.asarray(weights, dtype=np.float64)
        return loss + 0.5 * self.weight_decay * float(w @ w)

    def evaluate(self, weights: np.ndarray) -> dict[str, float]:
        """Test-set ``{"loss": mean cross-entropy, "accuracy": fraction correct}``."""
        loss, acc = self._loss_acc(weights, self._Xt, self._yt)
        return {"loss": loss, "accuracy": acc}
