"""The gradient oracle: a dataset, a model, a loss and a partition of the training set.

The training objective is the mean loss plus an optional L2 term::

    F(w) = (1/N) sum_{i=1}^{N} loss_i(w) + (wd/2) ||w||^2.

With the training indices split into ``k`` disjoint partitions ``P_j``,
``F = sum_j F_j`` where::

    F_j(w) = (1/N) sum_{i in P_j} loss_i(w) + (wd / (2k)) ||w||^2,

so the per-partition gradients ``g_j = grad F_j`` -- what gradient-coding
workers compute and encode -- sum *exactly* to the full gradient.  Note the
``1/N`` (not ``1/|P_j|``): partitions of unequal size still add up right.

**Minibatches.**  With ``batch_size=B`` each partition contributes ``B_j =
min(B, |P_j|)`` samples per round, drawn by :class:`MinibatchSampler` from a
generator keyed by ``(seed, partition, epoch)``: within an epoch of partition
``j`` every sample is used once, and *every replica of a partition in a round
uses the same minibatch*, so a gradient code still decodes the exact sum
``sum_j g_j(w; t)`` with ``g_j(w; t) = (1/M) sum_{i in batch_j(t)} grad loss_i``
and ``M = sum_j B_j`` (the gradient of the mean loss over the round's union of
minibatches).  ``batch_size=None`` is full-batch: ``batch_j(t) = P_j``.

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
own.  All computation is on CPU by default; ``device="cuda"`` runs on the GPU.
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
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from gradcode.datasets import PARTITIONINGS, load_dataset, partition
from gradcode.models import make_model

#: Samples per forward/backward pass in full-data passes (bounds memory).
CHUNK = 4096
#: Training samples used for ``train_loss`` in minibatch mode (a fixed seeded subset).
EVAL_SAMPLES = 10_000


def flatten(model: nn.Module) -> torch.Tensor:
    """The model's parameters as one flat tensor (a detached copy)."""
    return parameters_to_vector(model.parameters()).detach().clone()


def unflatten(model: nn.Module, weights) -> None:
    """Write the flat vector ``weights`` into the model's parameters (in place)."""
    n = sum(p.numel() for p in model.parameters())
    shape = tuple(np.shape(weights))
    if len(shape) != 1 or shape[0] != n:
        raise ValueError(f"weights must be a flat vector of {n} numbers, got shape {shape}")
    first = next(model.parameters())
    vec = torch.as_tensor(weights, dtype=first.dtype, device=first.device)
    with torch.no_grad():
        vector_to_parameters(vec, model.parameters())


def accuracy(output: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of rows whose arg-max equals the label."""
    return float((output.argmax(dim=1) == target).double().mean())


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


class MinibatchSampler:
    """Seeded minibatches keyed by ``(partition, round)``: stateless, so any
    process computes the same batch for the same key.

    Partition ``j`` (size ``m``) reads a stream of permutations of
    ``0 .. m-1``, one per epoch, from ``default_rng([seed, j, epoch])``; round
    ``t`` takes positions ``t B .. (t+1) B - 1`` of that stream.

    >>> s = MinibatchSampler([5, 5], 2, seed=0)
    >>> sorted(np.concatenate([s.positions(0, t) for t in range(2)]).tolist()) == sorted(
    ...     set(np.concatenate([s.positions(0, t) for t in range(2)]).tolist()))
    True
    """

    def __init__(self, sizes: Sequence[int], batch_size: int | None, seed: int) -> None:
        if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.sizes = [int(m) for m in sizes]
        self.batch_size = None if batch_size is None else int(batch_size)
        self.seed = int(seed)
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def batch(self, j: int) -> int:
        """``B_j``: samples partition ``j`` contributes per round."""
        m = self.sizes[j]
        return m if self.batch_size is None else min(self.batch_size, m)

    @property
    def samples_per_round(self) -> int:
        """``M = sum_j B_j``."""
        if not hasattr(self, "_m"):
            self._m = sum(self.batch(j) for j in range(len(self.sizes)))
        return self._m

    def _perm(self, j: int, epoch: int) -> np.ndarray:
        key = (j, epoch)
        if key not in self._perms:
            if len(self._perms) > 4 * len(self.sizes):
                self._perms.clear()
            rng = np.random.default_rng([self.seed, j, epoch])
            self._perms[key] = rng.permutation(self.sizes[j])
        return self._perms[key]

    def positions(self, j: int, t: int) -> np.ndarray:
        """Positions inside partition ``j`` used in round ``t`` (sorted)."""
        m, b = self.sizes[j], self.batch(j)
        if self.batch_size is None or b == m:
            return np.arange(m)
        start = t * b
        epoch, off = divmod(start, m)
        first = self._perm(j, epoch)[off : off + b]
        if first.size < b:
            first = np.concatenate([first, self._perm(j, epoch + 1)[: b - first.size]])
        return np.sort(first)

    def epoch(self, t: int) -> float:
        """Epochs of training data consumed after round ``t``."""
        return (t + 1) * self.samples_per_round / max(1, sum(self.sizes))


@dataclass(frozen=True)
class TensorData:
    """A train/test split held as tensors (user data from :func:`gradcode.fit`)."""

    name: str
    X_train: torch.Tensor
    y_train: torch.Tensor
    X_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None

    @property
    def n_train(self) -> int:
        return int(self.y_train.shape[0])


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


def _has(model: nn.Module, kinds) -> bool:
    return any(isinstance(m, kinds) for m in model.modules())


_RANDOM = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_BATCHNORM = nn.modules.batchnorm._BatchNorm


class Task:
    """Data + model + loss + partition; computes partition gradients from flat weights.

    Build with :meth:`Task.build` (named dataset and model) or directly from a
    :class:`~gradcode.datasets.Dataset` / :class:`TensorData`, a module and the
    partitions (lists of training indices).  ``loss_fn(output, target)`` must
    return the *mean* loss over the batch (PyTorch's default reduction);
    ``metrics`` maps names to ``fn(outputs, targets) -> float`` over the test set.
    ``batched``: compute partitions in one ``vmap`` pass (default: for models
    without dropout, and without convolutions unless on CUDA).
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
    ) -> None:
        if not (np.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.dataset = dataset
        self.device = _resolve_device(device)
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
        self._names = [n for n, _ in self.model.named_parameters()]
        self._shapes = [p.shape for _, p in self.model.named_parameters()]
        self._numels = [p.numel() for _, p in self.model.named_parameters()]
        self._w0 = flatten(self.model)
        self._X = self._tensor(dataset.X_train, self.dtype)
        self._y = self._target(dataset.y_train)
        self._Xt = self._tensor(getattr(dataset, "X_test", None), self.dtype)
        self._yt = self._target(getattr(dataset, "y_test", None))
        self._idx = [torch.as_tensor(p, device=self.device) for p in self.partitions]
        # Gradients: a train-mode copy whose BatchNorm layers always use batch
        # statistics and keep no running state (so it is vmap-able and pure).
        self.has_batchnorm = _has(self.model, _BATCHNORM)
        self.random = _has(self.model, _RANDOM)
        self._gmodel = copy.deepcopy(self.model)
        if self.has_batchnorm:
            torch.func.replace_all_batch_norm_modules_(self._gmodel)
        self._gmodel.train()
        self.model.eval()
        # vmap draws one dropout mask for all partitions (replicas would disagree); on
        # CPU, convolutions run faster one cache-sized partition batch at a time
        # (bench/train.py), so batching is for dropout-free, conv-free models or CUDA.
        conv = _has(self.model, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        if batched is None:
            batched = not self.random and (self.device.type == "cuda" or not conv)
        self._batched = bool(batched) and not self.random
        self._eval_rows: torch.Tensor | None = None

    def _tensor(self, x, dtype):
        if x is None:
            return None
        return torch.as_tensor(x, device=self.device).to(dtype)

    def _target(self, y):
        if y is None:
            return None
        y = torch.as_tensor(y, device=self.device)
        return y.to(self.dtype) if y.is_floating_point() else y

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
        dev = _resolve_device(device)
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

    def initial_weights(self) -> torch.Tensor:
        """Flat copy of the initial weights (model dtype, task device)."""
        return self._w0.clone()

    def parameters(self) -> list[nn.Parameter]:
        """The master model's parameters (what the optimizer steps)."""
        return list(self.model.parameters())

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
        parts = sorted({int(j) for j in parts})
        bad = [j for j in parts if not 0 <= j < self.num_partitions]
        if bad:
            raise ValueError(f"partition index must be in 0..{self.num_partitions - 1}, got {bad}")
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
            if self._batched and len(js) > 1:
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
        self.model.train()
        try:
            with torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(hash((self.seed, int(t), -1)) & (2**62 - 1))
                functional_call(self.model, self._params(self._w(weights)), (self._X[rows],))
        finally:
            self.model.eval()

    def state(self) -> dict[str, torch.Tensor]:
        """Master-side state outside the weights (BatchNorm running statistics)."""
        return {k: v.detach().clone() for k, v in self.model.named_buffers()}

    def restore(self, state: Mapping[str, torch.Tensor]) -> None:
        bufs = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in state.items():
                bufs[k].copy_(v)

    def state_dict(self, weights) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` at ``weights`` (detached copies)."""
        params = self._params(self._w(weights))
        return {
            k: (params[k] if k in params else v).detach().clone()
            for k, v in self.model.state_dict(keep_vars=True).items()
        }

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _outputs(self, w: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        params = self._params(w)
        return torch.cat(
            [
                functional_call(self.model, params, (X[s : s + CHUNK],))
                for s in range(0, len(X), CHUNK)
            ]
        )

    def _mean_loss(self, out: torch.Tensor, y: torch.Tensor) -> float:
        total = 0.0
        for s in range(0, len(y), CHUNK):
            o, t = out[s : s + CHUNK], y[s : s + CHUNK]
            total += float(self.loss_fn(o, t).to(torch.float64)) * len(t)
        return total / len(y)

    def _train_rows(self) -> torch.Tensor | None:
        """Rows for :meth:`train_loss`: all of them full-batch, else a fixed subset."""
        n = self.dataset.n_train
        if self.batch_size is None or n <= EVAL_SAMPLES:
            return None
        if self._eval_rows is None:
            rng = np.random.default_rng([self.seed, 2**31])
            pick = np.sort(rng.choice(n, EVAL_SAMPLES, replace=False))
            self._eval_rows = torch.as_tensor(pick, device=self.device)
        return self._eval_rows

    def train_loss(self, weights) -> float:
        """``F(weights)`` in eval mode (minibatch mode: on a fixed seeded subset of
        ``EVAL_SAMPLES`` training samples), plus ``(wd/2)||w||^2``."""
        w = self._w(weights)
        rows = self._train_rows()
        X, y = (self._X, self._y) if rows is None else (self._X[rows], self._y[rows])
        loss = self._mean_loss(self._outputs(w, X), y)
        return loss + 0.5 * self.weight_decay * float(w.double() @ w.double())

    def evaluate(self, weights) -> dict[str, float]:
        """Test-set ``{"loss": mean loss, **metrics}`` (e.g. ``"accuracy"``)."""
        if self._yt is None or len(self._yt) == 0:
            return {}
        w = self._w(weights)
        out = self._outputs(w, self._Xt)
        res = {"loss": self._mean_loss(out, self._yt)}
        for name, fn in self.metrics.items():
            res[name] = float(fn(out, self._yt))
        return res
