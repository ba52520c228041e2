"""Small PyTorch models with a deterministic, seed-driven initialisation.

``make_model(name, input_shape, n_classes, rng)`` returns a module mapping a
batch ``(B, *input_shape)`` to logits ``(B, n_classes)``:

* ``logreg`` -- one linear layer on the flattened input: multinomial logistic
  regression (with cross-entropy loss it is convex in the weights);
* ``mlp`` -- flatten, two hidden ReLU layers (128, 64), linear output;
* ``cnn`` -- two 3-wide conv + ReLU + 2-wide max-pool blocks (the second pool
  only for inputs of at least 16 a side) and a 2-layer head.  Images
  ``(C, H, W)`` get 2-D convolutions (1x8x8 digits, 1x28x28 (Fashion-)MNIST,
  3x32x32 CIFAR-10), signals ``(C, L)`` 1-D ones (MNIST-1D's ``(1, 40)``);
* ``resnet`` -- a small ResNet (He et al., CVPR 2016): a 3-wide stem and three
  basic residual blocks (16, 32, 64 channels; the last two halve the
  resolution), global average pooling and a linear layer; 2-D or 1-D like the
  CNN.  Normalisation is BatchNorm (``norm="batch"``, the default), as in the
  paper.  Its train-mode output depends on the other samples of the batch and
  it keeps running statistics (buffers) outside the weights; how the runtime
  treats them across partitions is defined in :mod:`gradcode.runtime`.  Pass
  ``norm="group"`` for GroupNorm, whose per-sample output makes each
  partition gradient a function of the weights alone.

Tabular inputs ``(D,)`` suit ``logreg`` and ``mlp`` only.  Your own models:
:func:`register_model` (or an entry point, see :mod:`gradcode.plugins`).

Initialisation.  Modules are built on the ``meta`` device (no memory, and
PyTorch's global RNG is never touched), then every parameter is drawn from a
local ``torch.Generator`` seeded from ``rng``: PyTorch's default layer scheme
(weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), norm weights 1 and
biases 0, BatchNorm running mean 0 and variance 1.  Values are drawn in
float64 and then cast, so a float32 and a float64 model from the same seed
agree to rounding.

    >>> import numpy as np
    >>> m = make_model("cnn", (1, 8, 8), 10, np.random.default_rng(0))
    >>> import torch
    >>> tuple(m(torch.zeros(5, 1, 8, 8)).shape)
    (5, 10)
    >>> signal_net = make_model("resnet", (1, 40), 10, np.random.default_rng(0))
    >>> tuple(signal_net(torch.zeros(2, 1, 40)).shape)
    (2, 10)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .plugins import Registry, call_accepting

MODELS = ("logreg", "mlp", "cnn", "resnet")
NORMS = ("batch", "group")

#: The dataset each model is meant for by default (all offline).
DEFAULT_DATASET = {"logreg": "breast_cancer", "mlp": "digits", "cnn": "digits", "resnet": "digits"}

_registry = Registry("model", "gradcode.models", MODELS)

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def available_models() -> list[str]:
    """Names accepted by :func:`make_model` (built-in ones first, then registered ones)."""
    return _registry.names()


def register_model(name: str, factory: Callable[..., nn.Module], *, replace: bool = False) -> None:
    """Make ``make_model(name, ...)`` (and so ``--model name``) call ``factory``.

    ``factory`` is called with the keyword arguments it names among
    ``input_shape`` (one sample's shape), ``n_classes`` and ``rng`` (a
    ``numpy.random.Generator``; use it, e.g. through ``torch.Generator``, for a
    seeded init) and returns an ``nn.Module`` producing ``(B, n_classes)``
    logits; ``make_model`` then casts it to ``dtype`` and moves it to ``device``.

        >>> import numpy as np, torch
        >>> register_model("tiny", lambda input_shape, n_classes: torch.nn.Sequential(
        ...     torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), n_classes)))
        >>> make_model("tiny", (3,), 2, np.random.default_rng(0))(torch.zeros(4, 3)).shape
        torch.Size([4, 2])
        >>> _registry.unregister("tiny")
    """
    _registry.register(name, factory, replace=replace)


def _norm(kind: str, nd: int, channels: int) -> nn.Module:
    if kind == "batch":
        return _BN[nd](channels)
    return nn.GroupNorm(math.gcd(8, channels), channels)


class _Block(nn.Module):
    """Basic residual block: ``relu(x' + norm(conv(relu(norm(conv(x))))))``."""

    def __init__(self, c_in: int, c_out: int, stride: int, nd: int, norm: str) -> None:
        super().__init__()
        conv = _CONV[nd]
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, nd, c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, nd, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                conv(c_in, c_out, 1, stride=stride, bias=False), _norm(norm, nd, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class _ResNet(nn.Module):
    def __init__(self, c_in: int, n_classes: int, nd: int, norm: str, widths=(16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(
            _CONV[nd](c_in, widths[0], 3, padding=1, bias=False),
            _norm(norm, nd, widths[0]),
            nn.ReLU(),
        )
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, 1 if i == 0 else 2, nd, norm))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)
        self._dims = tuple(range(2, 2 + nd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global average pool via mean(): deterministic on every device.
        return self.fc(self.blocks(self.stem(x)).mean(dim=self._dims))


def _cnn(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    c, *space = input_shape
    nd = len(space)
    pool2 = min(space) >= 16
    out = [s // 2 for s in space]
    if pool2:
        out = [s // 2 for s in out]
    conv, pool = _CONV[nd], _POOL[nd]
    return nn.Sequential(
        conv(c, 16, 3, padding=1),
        nn.ReLU(),
        pool(2),
        conv(16, 32, 3, padding=1),
        nn.ReLU(),
        pool(2) if pool2 else nn.Identity(),
        nn.Flatten(),
        nn.Linear(32 * int(np.prod(out)), 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    )


def _build(name: str, input_shape: tuple[int, ...], n_classes: int, norm: str) -> nn.Module:
    d = int(np.prod(input_shape))
    if name == "logreg":
        return nn.Sequential(nn.Flatten(), nn.Linear(d, n_classes))
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(d, 128),
            nn.ReLU(),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Linear(64, n_classes),
        )
    if len(input_shape) not in (2, 3) or min(input_shape[1:]) < 4:
        raise ValueError(
            f"model {name!r} needs image input (channels, height, width) or signal input "
            f"(channels, length) of at least 4 a side, got input_shape={input_shape}; "
            "use logreg or mlp for tabular data"
        )
    if name == "cnn":
        return _cnn(input_shape, n_classes)
    return _ResNet(input_shape[0], n_classes, len(input_shape) - 1, norm)


@torch.no_grad()
def _init(model: nn.Module, gen: torch.Generator) -> None:
    """Draw every parameter from ``gen`` (PyTorch's default scheme, see module docs)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for p in (module.weight, module.bias):
                if p is not None:
                    vals = torch.empty(p.shape, dtype=torch.float64).uniform_(
                        -bound, bound, generator=gen
                    )
                    p.copy_(vals)
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            module.weight.fill_(1.0)
            module.bias.fill_(0.0)
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.reset_running_stats()


def make_model(
    name: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    rng: np.random.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    norm: str = "batch",
) -> nn.Module:
    """Build model ``name`` for inputs of shape ``input_shape`` (one sample).

    The same ``rng`` state always gives the same weights; PyTorch's global
    RNG and default dtype are left untouched.  ``norm`` picks the ResNet's
    normalisation (``"batch"`` or ``"group"``).
    """
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"input_shape must be non-empty with positive sizes, got {input_shape}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"n_classes must be an integer, got {n_classes!r}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    if name not in MODELS:
        factory = _registry.get(name) if isinstance(name, str) else None
        if factory is None:
            raise ValueError(f"unknown model {name!r}; choose from {available_models()}")
        model = call_accepting(factory, input_shape=input_shape, n_classes=n_classes, rng=rng)
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"model {name!r}: the registered factory returned {type(model).__name__}, "
                "not a torch.nn.Module"
            )
        return model.to(dtype=dtype, device=device)
    with torch.device("meta"):
        model = _build(name, input_shape, n_classes, norm)
    model = model.to_empty(device="cpu").to(dtype)
    gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    _init(model, gen)
    return model.to(device)
