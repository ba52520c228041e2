"""Small PyTorch models with a deterministic, seed-driven initialisation.

``make_model(name, input_shape, n_classes, rng)`` returns a module mapping a
batch ``(B, *input_shape)`` to logits ``(B, n_classes)``:

* ``logreg`` -- one linear layer on the flattened input: multinomial logistic
  regression (with cross-entropy loss it is convex in the weights);
* ``mlp`` -- flatten, two hidden ReLU layers (128, 64), linear output;
* ``cnn`` -- two 3x3 conv + ReLU + 2x2 max-pool blocks (the second pool only
  for inputs of at least 16 pixels a side) and a 2-layer head: fits 1x8x8
  digits, 1x28x28 MNIST and 3x32x32 CIFAR-10;
* ``resnet`` -- a small ResNet (He et al., 2016): a 3x3 stem and three basic
  residual blocks (16, 32, 64 channels; the last two halve the resolution),
  global average pooling and a linear layer.  Normalisation is GroupNorm, not
  BatchNorm: BatchNorm's output depends on the other samples of the batch,
  so a partition's gradient would depend on how the data are batched and
  BatchNorm's running statistics are state outside the weights.  With
  GroupNorm each partition gradient is a function of the weights alone,
  which gradient coding requires (the master sums gradients computed on
  different workers).

Initialisation.  Modules are built on the ``meta`` device (no memory, and
PyTorch's global RNG is never touched), then every parameter is drawn from a
local ``torch.Generator`` seeded from ``rng``: PyTorch's default layer scheme
(weights and biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``), GroupNorm
weights 1 and biases 0.  Values are drawn in float64 and then cast, so a
float32 and a float64 model from the same seed agree to rounding.

    >>> import numpy as np
    >>> m = make_model("cnn", (1, 8, 8), 10, np.random.default_rng(0))
    >>> import torch
    >>> tuple(m(torch.zeros(5, 1, 8, 8)).shape)
    (5, 10)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

MODELS = ("logreg", "mlp", "cnn", "resnet")

#: The dataset each model is meant for by default (all offline).
DEFAULT_DATASET = {"logreg": "breast_cancer", "mlp": "digits", "cnn": "digits", "resnet": "digits"}


def available_models() -> list[str]:
    """Names accepted by :func:`make_model`."""
    return list(MODELS)


class _Block(nn.Module):
    """Basic residual block: ``relu(x' + norm(conv(relu(norm(conv(x))))))``."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                nn.GroupNorm(_groups(c_out), c_out),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def _groups(channels: int) -> int:
    return math.gcd(8, channels)


class _ResNet(nn.Module):
    def __init__(self, c_in: int, n_classes: int, widths=(16, 32, 64)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(c_in, widths[0], 3, padding=1, bias=False),
            nn.GroupNorm(_groups(widths[0]), widths[0]),
            nn.ReLU(),
        )
        blocks, c = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, stride=1 if i == 0 else 2))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global average pool via mean(): deterministic on every device.
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def _cnn(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    c, h, w = input_shape
    pool2 = min(h, w) >= 16
    h2, w2 = h // 2, w // 2
    if pool2:
        h2, w2 = h2 // 2, w2 // 2
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2) if pool2 else nn.Identity(),
        nn.Flatten(),
        nn.Linear(32 * h2 * w2, 64),
        nn.ReLU(),
        nn.Linear(64, n_classes),
    )


def _build(name: str, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
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
    if len(input_shape) != 3 or min(input_shape[1:]) < 4:
        raise ValueError(
            f"model {name!r} needs image input (channels, height, width) of at least 4x4 "
            f"pixels, got input_shape={input_shape}; use logreg or mlp for tabular data"
        )
    if name == "cnn":
        return _cnn(input_shape, n_classes)
    return _ResNet(input_shape[0], n_classes)


@torch.no_grad()
def _init(model: nn.Module, gen: torch.Generator) -> None:
    """Draw every parameter from ``gen`` (PyTorch's default scheme, see module docs)."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for p in (module.weight, module.bias):
                if p is not None:
                    vals = torch.empty(p.shape, dtype=torch.float64).uniform_(
                        -bound, bound, generator=gen
                    )
                    p.copy_(vals)
        elif isinstance(module, nn.GroupNorm):
            module.weight.fill_(1.0)
            module.bias.fill_(0.0)


def make_model(
    name: str,
    input_shape: tuple[int, ...],
    n_classes: int,
    rng: np.random.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Build model ``name`` for inputs of shape ``input_shape`` (one sample).

    The same ``rng`` state always gives the same weights; PyTorch's global
    RNG and default dtype are left untouched.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {available_models()}")
    input_shape = tuple(int(s) for s in input_shape)
    if not input_shape or min(input_shape) < 1:
        raise ValueError(f"input_shape must be non-empty with positive sizes, got {input_shape}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    with torch.device("meta"):
        model = _build(name, input_shape, n_classes)
    model = model.to_empty(device="cpu").to(dtype)
    gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
    _init(model, gen)
    return model.to(device)
