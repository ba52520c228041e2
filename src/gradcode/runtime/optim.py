"""The optimizer side of the master: the model's own parameters, stepped by any
``torch.optim`` optimizer, with an optional LR scheduler and gradient clipping.

:class:`FlatParams` makes a list of parameters *views* into one flat tensor
(and their ``.grad`` views into a second one), so the weights the master
broadcasts are ``flat`` itself (no per-round copy) and a decoded gradient is
installed with one ``copy_``.  The parameters stay the user's: a module keeps
working as before, and ``model.state_dict()`` is the trained model.

>>> import torch
>>> lin = torch.nn.Linear(2, 1)
>>> fp = FlatParams(list(lin.parameters()))
>>> fp.flat.numel(), lin.weight.data_ptr() == fp.flat.data_ptr()
(3, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .config import OPTIMIZERS


@dataclass(frozen=True)
class OptimizerConfig:
    """A named optimizer for CLI and TOML runs: ``sgd`` (heavy-ball momentum),
    ``nesterov`` (SGD with Nesterov momentum; at momentum 0 it is plain SGD) or
    ``adam`` (which ignores ``momentum``).

    >>> import torch
    >>> p = [torch.nn.Parameter(torch.zeros(1))]
    >>> OptimizerConfig("nesterov", lr=0.1, momentum=0.9)(p).param_groups[0]["nesterov"]
    True
    """

    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")

    def __call__(self, params) -> torch.optim.Optimizer:
        kw = dict(lr=self.lr, weight_decay=self.weight_decay)
        if self.name == "sgd":
            return torch.optim.SGD(params, momentum=self.momentum, **kw)
        if self.name == "nesterov":  # torch refuses nesterov=True at momentum 0: same as SGD
            nesterov = self.momentum > 0
            return torch.optim.SGD(params, momentum=self.momentum, nesterov=nesterov, **kw)
        return torch.optim.Adam(params, **kw)


#: Anything that turns parameters into an optimizer (``OptimizerConfig`` or a lambda).
OptimizerFactory = Callable[[Sequence[torch.nn.Parameter]], torch.optim.Optimizer]


class FlatParams:
    """Trainable parameters re-pointed into one flat tensor ``flat`` (grads into
    ``grad``); frozen ones (``requires_grad=False``) are refused: they are not
    part of the weights a scheme sends (:meth:`gradcode.task.Task.parameters`)."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError("the model has no parameters to train")
        frozen = [i for i, p in enumerate(self.params) if not p.requires_grad]
        if frozen:  # a frozen parameter must not be sent, decoded or stepped
            raise ValueError(f"parameters {frozen} have requires_grad=False: pass trainable only")
        dtypes = {p.dtype for p in self.params}
        devices = {p.device for p in self.params}
        if len(dtypes) > 1 or len(devices) > 1:
            raise ValueError(f"parameters must share one dtype and device, got {dtypes} {devices}")
        first = self.params[0]
        self.numel = sum(p.numel() for p in self.params)
        self.flat = torch.empty(self.numel, dtype=first.dtype, device=first.device)
        self.grad = torch.zeros_like(self.flat)
        off = 0
        self._slices = []
        with torch.no_grad():
            for p in self.params:
                n = p.numel()
                self.flat[off : off + n].copy_(p.detach().reshape(-1))
                self._slices.append((off, n))
                off += n
        self._attach()

    def _attach(self) -> None:
        for p, (off, n) in zip(self.params, self._slices, strict=True):
            p.data = self.flat[off : off + n].view_as(p)
            p.grad = self.grad[off : off + n].view_as(p)

    def _check_views(self) -> None:
        """Re-attach if an optimizer or user code replaced ``.data`` or ``.grad``."""
        for p, (off, n) in zip(self.params, self._slices, strict=True):
            if p.grad is None or p.grad.data_ptr() != self.grad[off:].data_ptr():
                p.grad = self.grad[off : off + n].view_as(p)
            if p.data_ptr() != self.flat[off:].data_ptr():
                with torch.no_grad():
                    self.flat[off : off + n].copy_(p.detach().reshape(-1))
                p.data = self.flat[off : off + n].view_as(p)

    def load(self, weights) -> None:
        """Set the weights (any flat tensor or array of the right length)."""
        w = torch.as_tensor(weights)
        if w.ndim != 1 or w.numel() != self.numel:
            raise ValueError(f"weights must be a flat vector of {self.numel}, got {tuple(w.shape)}")
        with torch.no_grad():
            self.flat.copy_(w.to(dtype=self.flat.dtype, device=self.flat.device))

    def set_grad(self, gradient) -> None:
        """Install a decoded gradient (chunked schemes may zero-pad: extra entries dropped)."""
        self._check_views()
        g = torch.as_tensor(gradient)
        if g.device != self.grad.device or g.dtype != self.grad.dtype:
            g = g.to(device=self.grad.device, dtype=self.grad.dtype)
        self.grad.copy_(g[: self.numel])

    def step(self, opt: torch.optim.Optimizer, clip_grad_norm: float | None = None) -> None:
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.params, clip_grad_norm)
        opt.step()
        self._check_views()
