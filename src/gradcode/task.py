"""The gradient oracle: a dataset, a model, a loss and a partition of the training set.

The training objective is the mean loss plus an optional L2 term::

    F(w) = (1/N) sum_{i=1}^{N} loss_i(w) + (wd/2) ||w||^2.

With the training indices split into ``k`` disjoint partitions ``P_j``,
``F = sum_j F_j`` where::

    F_j(w) = (1/N) sum_{i in P_j} loss_i(w) + (wd / (2k)) ||w||^2,

so the per-partition gradients ``g_j = grad F_j`` -- what gradient-coding
workers compute and encode -- sum *exactly* to the full gradient.  Note the
``1/N`` (not ``1/|P_j|``): partitions of unequal size still add up right.

**Minibatches.**  With ``batch_size=B`` each partition contributes a seeded
minibatch of ``min(B, |P_j|)`` samples per round, the same for every replica
of the partition, so a gradient code still decodes the exact sum of the round's
``g_j(w; t)`` (normalised by the round's total minibatch size ``M``); see
:mod:`gradcode.task_data`.  ``batch_size=None`` is full-batch.

**Train mode.**  Gradients are computed with the model in ``train()`` mode
(dropout active; its masks are seeded by ``(seed, round, partition)`` so
replicas agree).  **BatchNorm**: each partition's minibatch is normalised with
its *own* batch statistics (a partition gradient depends on the weights and
that minibatch only, as gradient coding needs); running statistics are not
part of any gradient: the master keeps them in its model, updated once per
round by :meth:`Task.observe_round` from one no-grad forward pass over
partition ``t mod k``'s minibatch, and they are used in evaluation.

**Currency.**  Weights and gradients are flat torch tensors of the model's
dtype on the task's device, in ``parameters()`` order; numpy input is
accepted and converted.  :meth:`Task.partition_gradients` computes many
partitions in one batched pass (``torch.func.vmap`` over partitions of equal
batch size) when the model allows it and it is faster (no dropout; no
convolutions on CPU, where cache-sized per-partition batches win), else one
pass per partition.

Example::

    >>> import numpy as np
    >>> t = Task.build("wine", "logreg", 4, "iid", np.random.default_rng(0))
    >>> w = t.initial_weights()
    >>> g = sum(t.partition_gradients(w, 0, range(4)).values())
    >>> bool(torch.allclose(g, t.full_gradient(w), atol=1e-6))
    True

A :class:`Task` is not thread-safe: give each worker thread or process its
own (:meth:`Task.restrict` cuts a copy down to a worker's partitions).  All
computation is on CPU by default; ``device="cuda"`` runs on the GPU.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from gradcode.datasets import PARTITIONINGS, load_dataset, partition
from gradcode.models import make_model
from gradcode.pergrad import PartitionGradients
from gradcode.task_data import (
    DataSummary,
    MinibatchSampler,
    TensorData,
    device_tensors,
    evaluation_rows,
    restrict_rows,
)
from gradcode.task_model import (
    BATCHNORM_LAYERS,
    CHUNK,
    RANDOM_LAYERS,
    MasterModel,
    accuracy,
    flatten,
    has_layers,
    resolve_device,
    unflatten,
)

__all__ = ["MinibatchSampler", "Task", "TaskInfo", "TensorData", "accuracy", "flatten", "unflatten"]

#: Training samples used for ``train_loss`` in minibatch mode (a fixed seeded subset).
EVAL_SAMPLES = 10_000


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
    batch_size: int | None = None


class Task:
    """Data + model + loss + partition; computes partition gradients from flat weights.

    Build with :meth:`Task.build` (named dataset and model) or directly from a
    :class:`~gradcode.datasets.Dataset` / :class:`TensorData`, a module and the
    partitions (lists of training indices).  ``loss_fn(output, target)`` must
    return the *mean* loss over the batch (PyTorch's default reduction);
    ``metrics`` maps names to ``fn(outputs, targets) -> float`` over the test set.
    ``batched``: compute partitions in one ``vmap`` pass (default: for models
    without dropout, and without convolutions unless on CUDA).  ``pergrad``: use
    :mod:`gradcode.pergrad` (one backward for all partitions) where the model
    allows it (default: where ``batched`` is on); ``False`` forces the path above.
    """

    def __init__(
        self,
        dataset,
        model: nn.Module,
        partitions: Sequence,
        *,
        model_name: str = "?",
        partitioning: str = "?",
        weight_decay: float = 0.0,
        device: str | torch.device = "cpu",
        loss_fn: Callable = F.cross_entropy,
        metrics: Mapping[str, Callable] | None = None,
        batch_size: int | None = None,
        seed: int = 0,
        batched: bool | None = None,
        pergrad: bool | None = None,
    ) -> None:
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.dataset = dataset
        self.device = resolve_device(device)
        self.model = model.to(self.device)
        self.dtype = next(self.model.parameters()).dtype
        self.partitions = [np.asarray(p, dtype=np.int64) for p in partitions]
        if any(p.size == 0 for p in self.partitions):
            raise ValueError("every partition needs at least one training sample")
        self.weight_decay = float(weight_decay)
        self.model_name, self.partitioning = model_name, partitioning
        self.loss_fn = loss_fn
        self.metrics = {"accuracy": accuracy} if metrics is None else dict(metrics)
        self.seed = int(seed)
        self.sampler = MinibatchSampler([len(p) for p in self.partitions], batch_size, seed)
        # The weights are the trainable parameters only: frozen ones (requires_grad=False)
        # are never sent, decoded or stepped; the model keeps their values.
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not trainable:
            raise ValueError("the model has no trainable parameters (requires_grad=True)")
        self._names = [n for n, _ in trainable]
        self._shapes = [p.shape for _, p in trainable]
        self._numels = [p.numel() for _, p in trainable]
        self._w0 = torch.cat([p.detach().reshape(-1) for _, p in trainable]).clone()
        self._X, self._y, self._Xt, self._yt = device_tensors(dataset, self.device, self.dtype)
        self._idx = [torch.as_tensor(p, device=self.device) for p in self.partitions]
        # Gradients: a train-mode copy whose BatchNorm layers always use batch
        # statistics and keep no running state (so it is vmap-able and pure).
        self.has_batchnorm = has_layers(self.model, BATCHNORM_LAYERS)
        self.random = has_layers(self.model, RANDOM_LAYERS)
        self._gmodel = copy.deepcopy(self.model)
        if self.has_batchnorm:
            torch.func.replace_all_batch_norm_modules_(self._gmodel)
        self._gmodel.train()
        self.master = MasterModel(self.model, self.loss_fn, self.metrics)  # eval mode
        # vmap draws one dropout mask for all partitions (replicas would disagree); on
        # CPU, convolutions run faster one cache-sized partition batch at a time
        # (bench/train.py), so batching is for dropout-free, conv-free models or CUDA.
        conv = has_layers(self.model, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        if batched is None:
            batched = not self.random and (self.device.type == "cuda" or not conv)
        self._batched = bool(batched) and not self.random
        use = self._batched if pergrad is None else pergrad
        self._pergrad = use and PartitionGradients.for_model(self._gmodel, loss_fn, self._names)
        self._eval_rows: torch.Tensor | None = None
        #: The partitions whose rows this task holds (``None``: all; see :meth:`restrict`).
        self.kept: frozenset[int] | None = None

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
        batch_size: int | None = None,
    ) -> Task:
        """Load data, build the model and partition the training set.

        ``rng`` is split into independent streams (data split, model init,
        partition, minibatches), so e.g. changing the model leaves the
        partitions as they were.  Same seed, same everything.
        """
        dev = resolve_device(device)
        if partitioning not in PARTITIONINGS:
            raise ValueError(f"unknown partitioning {partitioning!r}; choose {list(PARTITIONINGS)}")
        seeds = rng.integers(2**63 - 1, size=3)  # (Generator.spawn needs numpy >= 1.25)
        data_rng, model_rng, part_rng = (np.random.default_rng(int(s)) for s in seeds)
        batch_seed = int(rng.integers(2**63 - 1))
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
            batch_size=batch_size,
            seed=batch_seed,
        )

    # ------------------------------------------------------------------ basics

    @property
    def num_params(self) -> int:
        return int(self._w0.shape[0])

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)

    @property
    def batch_size(self) -> int | None:
        return self.sampler.batch_size

    def info(self) -> TaskInfo:
        return TaskInfo(
            self.dataset.name,
            self.model_name,
            self.num_partitions,
            self.partitioning,
            self.num_params,
            self.dataset.n_train,
            0 if self._yt is None else int(self._yt.shape[0]),
            self.weight_decay,
            str(self.device),
            str(self.dtype).removeprefix("torch."),
            self.batch_size,
        )

    def restrict(self, parts: Iterable[int]) -> Task:
        """A copy holding only the training rows of partitions ``parts``, and no test set.

        Its partition gradients equal this task's for the kept partitions (the
        ``1/N`` normalisation keeps the full training-set size, in
        ``dataset.n_train``); any other partition raises ``ValueError``.  This is
        what a worker needs, e.g. each Ray actor.  Model and sampler are shared
        with this task (a worker process gets its own copy when it is sent there).

        >>> t = Task.build("wine", "logreg", 4, "iid", np.random.default_rng(0))
        >>> w, part = t.initial_weights(), t.restrict([1, 2])
        >>> sorted(part.kept), bool(torch.equal(part.partition_gradient(2, w),
        ...                                     t.partition_gradient(2, w)))
        ([1, 2], True)
        """
        keep = self._check_parts(parts)
        out = copy.copy(self)
        out._X, out._y, out._idx = restrict_rows(self._X, self._y, self._idx, keep)
        out._Xt = out._yt = None
        out.dataset = DataSummary(getattr(self.dataset, "name", "data"), self.dataset.n_train)
        out.kept = frozenset(keep)
        return out

    def _check_parts(self, parts: Iterable[int]) -> list[int]:
        """``parts`` as sorted distinct ints; ``ValueError`` for one this task does not hold."""
        parts = sorted({int(j) for j in parts})
        bad = [j for j in parts if not 0 <= j < self.num_partitions]
        if bad:
            raise ValueError(f"partition index must be in 0..{self.num_partitions - 1}, got {bad}")
        missing = [j for j in parts if self.kept is not None and j not in self.kept]
        if missing:
            raise ValueError(f"this worker does not store partition {missing[0]}")
        return parts

    def initial_weights(self) -> torch.Tensor:
        """Flat copy of the initial weights (model dtype, task device)."""
        return self._w0.clone()

    def parameters(self) -> list[nn.Parameter]:
        """The master model's trainable parameters (what the optimizer steps)."""
        named = dict(self.model.named_parameters())
        return [named[n] for n in self._names]

    def epoch(self, t: int) -> float:
        """Epochs of training data consumed after round ``t``."""
        return self.sampler.epoch(t)

    def _w(self, weights) -> torch.Tensor:
        w = torch.as_tensor(weights, device=self.device)
        if w.dtype != self.dtype:
            w = w.to(self.dtype)
        if w.ndim != 1 or w.shape[0] != self.num_params:
            raise ValueError(
                f"weights must be a flat vector of {self.num_params} numbers, got {tuple(w.shape)}"
            )
        return w

    def _params(self, w: torch.Tensor) -> dict[str, torch.Tensor]:
        views = torch.split(w, self._numels)
        return {n: v.view(s) for n, v, s in zip(self._names, views, self._shapes, strict=True)}

    # ------------------------------------------------------------------ gradients

    def rows(self, j: int, t: int) -> torch.Tensor:
        """Training-row indices of partition ``j``'s minibatch in round ``t``."""
        pos = self.sampler.positions(j, t)
        idx = self._idx[j]
        return idx if pos.size == idx.numel() else idx[torch.as_tensor(pos, device=self.device)]

    def partition_gradient(self, j: int, weights, t: int = 0) -> torch.Tensor:
        """``g_j(weights; t)`` (see the module docstring); one flat tensor."""
        return self.partition_gradients(weights, t, [j])[j]

    def partition_gradients(self, weights, t: int, parts: Iterable[int]) -> dict[int, torch.Tensor]:
        """``{j: g_j(weights; t)}`` for the partitions in ``parts``, in one batched pass
        per group of equal minibatch size where the model allows it.

        This is the worker API of every backend: given the weights, the round
        and a worker's partitions, it returns that worker's partition gradients.
        """
        parts = self._check_parts(parts)
        w = self._w(weights)
        params = self._params(w)
        buffers = dict(self._gmodel.named_buffers())
        out: dict[int, torch.Tensor] = {}
        groups: dict[int, list[int]] = {}
        for j in parts:
            groups.setdefault(self.sampler.batch(j), []).append(j)
        for size, js in groups.items():
            rows = torch.stack([self.rows(j, t) for j in js])  # (P, B)
            factor = size / self.sampler.samples_per_round  # mean over B -> share of 1/M
            G = None
            if self._pergrad and len(js) > 1:
                G = self._pergrad(params, self._X, self._y, rows, factor)
            if G is None and self._batched and len(js) > 1:
                G = self._vmap_grads(params, buffers, rows, factor)
            if G is None:
                pairs = zip(js, rows, strict=True)
                G = torch.stack(
                    [self._one_grad(params, buffers, r, j, t, factor) for j, r in pairs]
                )
            if self.weight_decay:
                G.add_(w, alpha=self.weight_decay / self.num_partitions)
            out.update(zip(js, G.unbind(0), strict=True))
        return out

    def _loss_of(self, params, buffers, x, y, factor=1.0):
        return self.loss_fn(functional_call(self._gmodel, (params, buffers), (x,)), y) * factor

    def _vmap_grads(self, params, buffers, rows, factor) -> torch.Tensor | None:
        flat = rows.reshape(-1)
        X = self._X.index_select(0, flat).view(*rows.shape, *self._X.shape[1:])
        Y = self._y.index_select(0, flat).view(*rows.shape, *self._y.shape[1:])
        try:
            f = vmap(grad(self._loss_of), in_dims=(None, None, 0, 0, None))
            g = f(params, buffers, X, Y, factor)
        except Exception as exc:  # an op without a batching rule: fall back for good
            warnings.warn(
                f"batched partition gradients unavailable for this model ({exc!s:.120}); "
                "computing one partition at a time",
                RuntimeWarning,
                stacklevel=3,
            )
            self._batched = False
            return None
        return torch.cat([g[n].reshape(len(rows), -1) for n in self._names], dim=1)

    def _one_grad(self, params, buffers, rows, j, t, factor) -> torch.Tensor:
        leaves = {n: p.detach().requires_grad_() for n, p in params.items()}
        if self.random:
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(hash((self.seed, int(t), int(j))) & (2**62 - 1))
                loss = self._loss_of(leaves, buffers, self._X[rows], self._y[rows], factor)
                g = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        else:
            loss = self._loss_of(leaves, buffers, self._X[rows], self._y[rows], factor)
            g = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
        return torch.cat(
            [
                (gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                for gi, p in zip(g, leaves.values(), strict=True)
            ]
        )

    def _rng_devices(self) -> list:
        return [self.device] if self.device.type == "cuda" else []

    def full_gradient(self, weights) -> torch.Tensor:
        """``grad F(weights)`` over the whole training set (full-batch objective, in
        fixed chunks, independently of the partition and of ``batch_size``)."""
        w = self._w(weights)
        leaves = {n: p.detach().requires_grad_() for n, p in self._params(w).items()}
        buffers = dict(self._gmodel.named_buffers())
        n = self.dataset.n_train
        total = torch.zeros_like(w)
        for s in range(0, n, CHUNK):
            x, y = self._X[s : s + CHUNK], self._y[s : s + CHUNK]
            loss = self._loss_of(leaves, buffers, x, y) * (len(y) / n)
            g = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
            total += torch.cat(
                [
                    (gi if gi is not None else torch.zeros_like(p)).reshape(-1)
                    for gi, p in zip(g, leaves.values(), strict=True)
                ]
            )
        if self.weight_decay:
            total.add_(w, alpha=self.weight_decay)
        return total

    # ------------------------------------------------------------------ master side

    @torch.no_grad()
    def observe_round(self, weights, t: int) -> None:
        """BatchNorm running statistics: one train-mode forward over partition
        ``t mod k``'s round-``t`` minibatch (a no-op for models without BatchNorm)."""
        if not self.has_batchnorm:
            return
        rows = self.rows(t % self.num_partitions, t)
        seed = hash((self.seed, int(t), -1)) & (2**62 - 1)
        params = self._params(self._w(weights))
        self.master.observe(params, self._X[rows], seed, self._rng_devices())

    def state(self) -> dict[str, torch.Tensor]:
        """Master-side state outside the weights (BatchNorm running statistics)."""
        return self.master.buffers()

    def restore(self, state: Mapping[str, torch.Tensor]) -> None:
        self.master.load_buffers(state)

    def state_dict(self, weights) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` at ``weights`` (detached copies)."""
        return self.master.state_dict(self._params(self._w(weights)))

    # ------------------------------------------------------------------ evaluation

    def _train_rows(self) -> torch.Tensor | None:
        """Rows for :meth:`train_loss`: all of them full-batch, else a fixed subset."""
        n = self.dataset.n_train
        if self.batch_size is None or n <= EVAL_SAMPLES:
            return None
        if self._eval_rows is None:
            pick = evaluation_rows(n, EVAL_SAMPLES, self.seed)
            self._eval_rows = torch.as_tensor(pick, device=self.device)
        return self._eval_rows

    def train_loss(self, weights) -> float:
        """``F(weights)`` in eval mode (minibatch mode: on a fixed seeded subset of
        ``EVAL_SAMPLES`` training samples), plus ``(wd/2)||w||^2``."""
        w = self._w(weights)
        rows = self._train_rows()
        X, y = (self._X, self._y) if rows is None else (self._X[rows], self._y[rows])
        loss = self.master.mean_loss(self.master.outputs(self._params(w), X), y)
        return loss + 0.5 * self.weight_decay * float(w.double() @ w.double())

    def evaluate(self, weights) -> dict[str, float]:
        """Test-set ``{"loss": mean loss, **metrics}`` (e.g. ``"accuracy"``)."""
        if self._yt is None or len(self._yt) == 0:
            return {}
        return self.master.evaluate(self._params(self._w(weights)), self._Xt, self._yt)
