"""The model side of a task: flat weights, devices, and the master's copy of the model.

In: an ``nn.Module`` and its weights as one flat vector (in ``parameters()``
order); out: eval-mode outputs, losses and metrics computed in chunks of
:data:`CHUNK` rows, BatchNorm running statistics and the final
``state_dict``.  Gradients are not computed here (:mod:`gradcode.task`).

The master's model stays in ``eval()`` mode: evaluation uses its BatchNorm
running statistics, which only :meth:`MasterModel.observe` updates (one
train-mode forward pass without gradients).

>>> m = MasterModel(nn.Linear(2, 2), torch.nn.functional.cross_entropy, {"accuracy": accuracy})
>>> params = dict(m.model.named_parameters())
>>> sorted(m.evaluate(params, torch.eye(2), torch.tensor([0, 1])))
['accuracy', 'loss']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector, vector_to_parameters

#: Samples per forward/backward pass in full-data passes (bounds memory).
CHUNK = 4096

#: Layers that draw random numbers in train mode (their masks are seeded per partition).
RANDOM_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
BATCHNORM_LAYERS = nn.modules.batchnorm._BatchNorm


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


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` ("cpu" or an available "cuda"), else ``ValueError``."""
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"invalid device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return dev


def has_layers(model: nn.Module, kinds) -> bool:
    """Does ``model`` contain a module of one of the types ``kinds``?"""
    return any(isinstance(m, kinds) for m in model.modules())


class MasterModel:
    """The master's model in eval mode: evaluation, BatchNorm statistics, ``state_dict``.

    ``params`` arguments map parameter names to tensors (views of the flat
    weights); buffers are the model's own.  ``loss_fn(output, target)``
    returns the batch mean; ``metrics`` map names to ``fn(outputs, targets)``.
    """

    def __init__(self, model: nn.Module, loss_fn: Callable, metrics: Mapping[str, Callable]):
        self.model, self.loss_fn, self.metrics = model, loss_fn, dict(metrics)
        self.model.eval()

    @torch.no_grad()
    def outputs(self, params: Mapping[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
        """Eval-mode outputs for the rows of ``X``, :data:`CHUNK` rows at a time."""
        return torch.cat(
            [
                functional_call(self.model, params, (X[s : s + CHUNK],))
                for s in range(0, len(X), CHUNK)
            ]
        )

    def mean_loss(self, out: torch.Tensor, y: torch.Tensor) -> float:
        """The mean loss of outputs ``out`` against ``y`` (summed in float64 by chunk)."""
        total = 0.0
        for s in range(0, len(y), CHUNK):
            o, t = out[s : s + CHUNK], y[s : s + CHUNK]
            total += float(self.loss_fn(o, t).to(torch.float64)) * len(t)
        return total / len(y)

    def evaluate(self, params, X: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """``{"loss": mean loss, **metrics}`` on ``(X, y)``."""
        out = self.outputs(params, X)
        res = {"loss": self.mean_loss(out, y)}
        for name, fn in self.metrics.items():
            res[name] = float(fn(out, y))
        return res

    @torch.no_grad()
    def observe(self, params, X: torch.Tensor, seed: int, devices: Sequence = ()) -> None:
        """Update BatchNorm running statistics with one train-mode forward pass over ``X``
        (random layers seeded by ``seed``, the global RNG left as it was)."""
        self.model.train()
        try:
            with torch.random.fork_rng(devices=list(devices)):
                torch.manual_seed(seed)
                functional_call(self.model, params, (X,))
        finally:
            self.model.eval()

    def buffers(self) -> dict[str, torch.Tensor]:
        """The model's buffers (BatchNorm running statistics), detached copies."""
        return {k: v.detach().clone() for k, v in self.model.named_buffers()}

    def load_buffers(self, state: Mapping[str, torch.Tensor]) -> None:
        bufs = dict(self.model.named_buffers())
        with torch.no_grad():
            for k, v in state.items():
                bufs[k].copy_(v)

    def state_dict(self, params) -> dict[str, torch.Tensor]:
        """The model's ``state_dict`` with ``params`` for its parameters (detached copies)."""
        return {
            k: (params[k] if k in params else v).detach().clone()
            for k, v in self.model.state_dict(keep_vars=True).items()
        }
