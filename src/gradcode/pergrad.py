"""Per-partition gradients from one forward and one backward pass.

Gradient coding needs, every round, one gradient per partition: with ``P``
partitions of ``B`` samples each and the weight ``f`` of
:mod:`gradcode.task` (``f = B / M``), partition ``p``'s gradient is::

    g_p = grad_w L_p,   L_p = f * (1/B) sum_{i in p} loss_i(w).

One backward per partition (or ``torch.func.vmap`` over them) costs up to 2x a
plain training step on the same samples.  For common layers the ``P``
gradients come out of *one* forward and *one* backward over all ``P B``
samples, as in per-sample-gradient methods (Goodfellow, arXiv:1510.01799;
Opacus, Yousefpour et al., arXiv:2109.12298), reduced per partition.

**The idea.**  Backpropagate ``L = sum_p L_p`` once.  For a layer applied to
every sample separately, ``y_i = W a_i + b``, the backward pass gives each
output's gradient ``delta_i = dL/dy_i``.  Sample ``i`` of partition ``p``
enters no other partition's loss, so ``dL_p/dy_i = delta_i`` and::

    grad_W L_p = sum_{i in p} delta_i a_i^T,      grad_b L_p = sum_{i in p} delta_i,

i.e. for all ``p`` at once one *batched* matrix product
``(P, out, B) @ (P, B, in)`` -- the same arithmetic as the plain step's
``(out, P B) @ (P B, in)`` weight gradient -- written straight into the
``(P, d)`` result.  The layer's own weight gradient is never formed: only
the outputs' gradients ``delta`` are asked of autograd.  The other layers:

* **Conv1d/2d/3d**: ``grad_W L_p`` is the convolution weight gradient of
  partition ``p``'s samples alone (the sum over ``i in p`` and positions of
  ``delta`` times the unfolded input); we call PyTorch's weight-backward
  kernel on each partition's slice.  Bias: ``delta`` summed over ``i in p``
  and positions.
* **Embedding**: ``grad_E L_p [v] = sum {delta_{i,t} : i in p, token_{i,t} = v}``
  (an indexed accumulate per partition).
* **LayerNorm, GroupNorm, RMSNorm**: ``y = xhat * gamma + beta`` with ``xhat``
  normalised per sample, so ``grad_gamma L_p = sum_{i in p} delta_i * xhat_i``
  (summed over positions) and ``grad_beta L_p = sum_{i in p} delta_i``.
* **BatchNorm** (train mode): ``xhat`` uses the *batch* statistics -- for
  gradient coding, partition ``p``'s (as :mod:`gradcode.task` computes each
  partition separately).  Our private copy of the model normalises every
  partition with its own mean and variance, the only place where samples
  meet, so the single backward still keeps partitions apart; ``gamma`` and
  ``beta`` as for LayerNorm.

The loss ``L = sum_p L_p`` is ``f P`` times the mean over all ``P B`` samples
for the standard mean losses (cross-entropy, MSE, ...); any other ``loss_fn``
is called once per partition.

**When it applies.**  Every trainable parameter must belong to one of the
layers above (else :meth:`PartitionGradients.for_model` returns ``None`` and
the caller keeps its general path); dropout is refused (each partition needs
its own seeded mask).  The forward must not mix samples of different
partitions: ``torch.nn`` containers, activations and pools are known not to;
for a model with a custom ``forward`` the first call is checked against
per-partition autograd on two partitions and, if they differ, the engine
switches itself off with a warning (``__call__`` then returns ``None``).

Example (float64: agrees with one backward per partition to rounding)::

    >>> torch.manual_seed(0) and None
    >>> net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    >>> names = [n for n, _ in net.named_parameters()]
    >>> engine = PartitionGradients.for_model(net, F.cross_entropy, names)
    >>> X, y = torch.randn(6, 3, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1, 0])
    >>> rows = torch.arange(6).view(3, 2)  # 3 partitions of 2 samples
    >>> params = {n: p.detach() for n, p in net.named_parameters()}
    >>> G = engine(params, X, y, rows, factor=1 / 3)
    >>> ref = reference_gradients(net, F.cross_entropy, params, X, y, rows, 1 / 3)
    >>> G.shape, bool(torch.allclose(G, ref, rtol=1e-12, atol=1e-14))
    (torch.Size([3, 26]), True)
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

#: Losses whose default reduction is the plain mean over samples (``L = f P mean``).
MEAN_LOSSES = tuple(
    getattr(F, n)
    for n in "cross_entropy nll_loss mse_loss l1_loss binary_cross_entropy_with_logits "
    "smooth_l1_loss huber_loss".split()
)
_IGNORING = (F.cross_entropy, F.nll_loss)  # ignore_index=-100 changes the mean's count
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm)
#: Parameter-free modules whose forward treats every sample separately.
_PER_SAMPLE = tuple(
    getattr(nn, n)
    for n in "Sequential Flatten Unflatten Identity ReLU ReLU6 LeakyReLU ELU GELU SiLU Mish "
    "Tanh Sigmoid Softplus Hardtanh Hardswish MaxPool1d MaxPool2d MaxPool3d AvgPool1d "
    "AvgPool2d AvgPool3d AdaptiveAvgPool1d AdaptiveAvgPool2d AdaptiveMaxPool1d "
    "AdaptiveMaxPool2d".split()
)


class _PartitionBatchNorm(nn.Module):
    """Train-mode BatchNorm with each partition's own batch statistics."""

    def __init__(self, bn: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__()
        self.eps, self.partitions = bn.eps, 1
        self.weight, self.bias = bn.weight, bn.bias

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        xs = x.reshape(self.partitions, -1, *x.shape[1:])
        dims = [1, *range(3, xs.ndim)]
        var, mean = torch.var_mean(xs, dims, correction=0, keepdim=True)
        return ((xs - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, shape = self.normalise(x), (1, -1) + (1,) * (x.ndim - 2)
        y = y if self.weight is None else y * self.weight.view(shape)
        return y if self.bias is None else y + self.bias.view(shape)


def _conv_padding(m: nn.Module):
    """``(padding, pad)``: integer padding for the kernel and an explicit pre-pad, or None."""
    if m.padding_mode != "zeros":
        return [0] * len(m.kernel_size), m._reversed_padding_repeated_twice
    if m.padding == "valid":
        return [0] * len(m.kernel_size), None
    if m.padding == "same":
        total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(t % 2 for t in total):
            return None  # asymmetric padding: not handled
        return [t // 2 for t in total], None
    return list(m.padding), None


def _why_not(module: nn.Module) -> str | None:
    """Why ``module``'s own parameters cannot be handled (None: they can)."""
    if isinstance(module, (nn.Linear, _PartitionBatchNorm, *_NORM)):
        return None
    if isinstance(module, _CONV):
        return None if _conv_padding(module) is not None else "asymmetric 'same' padding"
    if isinstance(module, nn.Embedding):
        if module.max_norm is not None or module.scale_grad_by_freq:
            return "Embedding with max_norm or scale_grad_by_freq"
        return None
    return f"no per-partition rule for {type(module).__name__}"


class PartitionGradients:
    """``(P, d)`` per-partition gradients of a model from one forward and one backward.

    Build with :meth:`for_model`; call with the parameters (a ``{name: tensor}``
    dict as for ``torch.func.functional_call``), the data, the ``(P, B)``
    training rows of the partitions and the loss factor ``f``.  Row ``p`` of
    the result is ``g_p`` laid out as ``names`` (flat, in that order).
    ``max_rows`` bounds the samples of one pass (partitions are split into
    groups, each its own pass).
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable, names: Sequence[str], max_rows: int = 4096
    ) -> None:
        self.reference = model
        self.model = copy.deepcopy(model).train()
        self.loss_fn, self.names, self.max_rows = loss_fn, list(names), int(max_rows)
        self.probe = False  # a custom forward: check the first call
        self.active = True
        for parent in list(self.model.modules()):
            for key, child in parent.named_children():
                if isinstance(child, nn.modules.batchnorm._BatchNorm):
                    setattr(parent, key, _PartitionBatchNorm(child))
        for m in self.model.modules():
            if getattr(m, "inplace", False):
                m.inplace = False  # the hooks keep layer outputs; in-place ops would change them
        shapes = dict((n, p.shape) for n, p in self.model.named_parameters())
        starts = [0, *itertools.accumulate(shapes[n].numel() for n in self.names)]
        offsets = {n: (starts[i], shapes[n]) for i, n in enumerate(self.names)}
        self.numel = starts[-1]
        #: module -> {parameter name in the module: (offset, shape)}, for trained parameters
        self.slots: dict[nn.Module, dict[str, tuple[int, torch.Size]]] = {}
        self.unsupported: str | None = None
        for prefix, m in self.model.named_modules():
            full = {
                k: f"{prefix}.{k}" if prefix else k for k, _ in m.named_parameters(recurse=False)
            }
            own = {k: offsets[n] for k, n in full.items() if n in offsets}
            if own:
                self.unsupported = self.unsupported or _why_not(m)
                self.slots[m] = own
            elif not isinstance(m, _PER_SAMPLE + _CONV + _NORM + (nn.Linear, nn.Embedding)) or (
                getattr(m, "start_dim", None) == 0 or getattr(m, "dim", None) == 0
            ):  # a custom forward, or a (Un)Flatten across the sample axis
                if isinstance(m, nn.modules.dropout._DropoutNd):
                    self.unsupported = self.unsupported or "dropout (a seeded mask per partition)"
                self.probe = self.probe or not isinstance(m, _PartitionBatchNorm)
        if not self.names or len(offsets) != len(set(self.names)):
            self.unsupported = self.unsupported or "no or repeated parameter names"
        self._bns = [m for m in self.model.modules() if isinstance(m, _PartitionBatchNorm)]
        # Where each parameter lives (all places of a tied one), to bind tensors directly
        # (cheaper than functional_call's swap; the copy is ours alone).
        canonical = {id(p): n for n, p in self.model.named_parameters()}
        self._places: dict[str, list[tuple[nn.Module, str, nn.Parameter]]] = {}
        for m in self.model.modules():
            for k, p in m._parameters.items():
                if p is not None:
                    self._places.setdefault(canonical[id(p)], []).append((m, k, p))

    @classmethod
    def for_model(
        cls, model: nn.Module, loss_fn: Callable, names: Sequence[str], **kw
    ) -> PartitionGradients | None:
        """The engine for ``model`` (train-mode, BatchNorm with batch statistics), or
        ``None`` when some trained parameter or module is outside the rules above."""
        engine = cls(model, loss_fn, names, **kw)
        return None if engine.unsupported else engine

    # ------------------------------------------------------------------ the pass

    def __call__(self, params, X, Y, rows: torch.Tensor, factor: float) -> torch.Tensor | None:
        """``(P, d)``: row ``p`` is ``g_p`` for the samples ``X[rows[p]]``; ``None`` once the
        engine has switched itself off (a model whose forward mixes partitions)."""
        if not self.active:
            return None
        leaves = {n: t.detach() for n, t in params.items()}  # others: constants
        leaves.update({n: params[n].detach().requires_grad_() for n in self.names})
        P, B = rows.shape
        G = torch.empty(P, self.numel, dtype=params[self.names[0]].dtype, device=X.device)
        step = max(1, self.max_rows // max(1, B))
        for s in range(0, P, step):
            if not self._pass(leaves, X, Y, rows[s : s + step], factor, G[s : s + step]):
                return self._off("a layer's output was changed in place")
        if self.probe and P > 1:
            self.probe = False
            sub = rows[[0, P - 1]]
            ref = reference_gradients(
                self.reference, self.loss_fn, params, X, Y, sub, factor, self.names
            )
            tol = 1e-9 if G.dtype == torch.float64 else 1e-3
            err = torch.linalg.vector_norm(G[[0, P - 1]] - ref)
            if not bool(err <= tol * (torch.linalg.vector_norm(ref) + 1e-30)):
                return self._off("its forward mixes the samples of different partitions")
        return G

    def _off(self, why: str) -> None:
        self.active = False
        warnings.warn(
            f"one-backward partition gradients unavailable for this model ({why}); "
            "using the general path",
            RuntimeWarning,
            stacklevel=3,
        )

    def _pass(self, leaves, X, Y, rows, factor, G) -> bool:
        P = rows.shape[0]
        flat = rows.reshape(-1)
        x, y = X.index_select(0, flat), Y.index_select(0, flat)
        calls: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
        versions: list[tuple[torch.Tensor, int]] = []

        def record(m, inputs, output):
            calls.append((m, inputs[0], output))
            versions.extend(((inputs[0], inputs[0]._version), (output, output._version)))

        for bn in self._bns:
            bn.partitions = P
        hooks = [m.register_forward_hook(record) for m in self.slots]
        try:
            for n, t in leaves.items():
                for m, k, _ in self._places.get(n, ()):
                    m._parameters[k] = t
            out = self.model(x)
            return self._backward(out, y, P, factor, calls, versions, G)
        finally:
            for h in hooks:
                h.remove()
            for places in self._places.values():
                for m, k, p in places:
                    m._parameters[k] = p

    def _backward(self, out, y, P, factor, calls, versions, G) -> bool:
        if any(t._version != v for t, v in versions):
            return False
        loss = self._loss(out, y, P, factor)
        deltas = torch.autograd.grad(loss, [o for _, _, o in calls], allow_unused=True)
        written: set[tuple[nn.Module, str]] = set()
        with torch.no_grad():
            for (m, a, _), delta in zip(calls, deltas, strict=True):
                for k, write in self._rule(m, a.detach(), delta, P) if delta is not None else ():
                    off, shape = self.slots[m][k]
                    dst = G[:, off : off + shape.numel()].view(P, *shape)
                    if (m, k) in written:  # a module called again: add its share
                        dst.add_(write(torch.empty_like(dst)))
                    else:
                        write(dst)
                        written.add((m, k))
            for m, slots in self.slots.items():  # unused in this forward: zero gradient
                for k, (off, shape) in slots.items():
                    if (m, k) not in written:
                        G[:, off : off + shape.numel()].zero_()
        return True

    def _loss(self, out, y, P, factor) -> torch.Tensor:
        """``L = sum_p f * loss_fn(partition p's outputs, targets)``."""
        fn = self.loss_fn
        plain = any(fn is m for m in MEAN_LOSSES)
        if plain and any(fn is m for m in _IGNORING) and not y.is_floating_point():
            plain = not bool((y == -100).any())  # ignored targets: per-partition counts
        if plain:
            return fn(out, y) * (factor * P)
        outs, ys = out.reshape(P, -1, *out.shape[1:]), y.reshape(P, -1, *y.shape[1:])
        return torch.stack([fn(outs[p], ys[p]) for p in range(P)]).sum() * factor

    def _rule(self, m, a, delta, P):
        """``(parameter name, write)`` pairs: ``write(dst)`` puts the ``(P, *shape)``
        gradients into ``dst`` and returns it."""
        own = self.slots[m]
        if isinstance(m, nn.Linear):
            a2, d2 = a.reshape(P, -1, a.shape[-1]), delta.reshape(P, -1, delta.shape[-1])
            if "weight" in own:
                yield "weight", lambda dst: torch.bmm(d2.transpose(1, 2), a2, out=dst)
            if "bias" in own:
                yield "bias", lambda dst: torch.sum(d2, 1, out=dst)
            return
        if isinstance(m, nn.Embedding):
            yield "weight", lambda dst: _embedding_grad(m, a, delta, P, own["weight"][1], dst)
            return
        if isinstance(m, _CONV):
            if "weight" in own:
                yield "weight", lambda dst: _conv_weight_grad(m, a, delta, m.weight, P, dst)
            if "bias" in own:
                d3 = delta.reshape(P, -1, delta.shape[1], delta[0, 0].numel())
                yield "bias", lambda dst: torch.sum(d3, (1, 3), out=dst)
            return
        # normalisation: y = xhat * gamma + beta
        if isinstance(m, nn.LayerNorm | nn.RMSNorm):
            lead, dims = (P, -1, *m.normalized_shape), (1,)
        else:  # GroupNorm, BatchNorm: channels on dim 1, positions after them
            lead, dims = (P, -1, a.shape[1], a[0, 0].numel()), (1, 3)
        if "weight" in own:
            xhat = _xhat(m, a)
            yield "weight", lambda dst: torch.sum((delta * xhat).reshape(lead), dims, out=dst)
        if "bias" in own:
            yield "bias", lambda dst: torch.sum(delta.reshape(lead), dims, out=dst)


def _xhat(m, a):
    if isinstance(m, nn.LayerNorm):
        return F.layer_norm(a, m.normalized_shape, eps=m.eps)
    if isinstance(m, nn.RMSNorm):
        return F.rms_norm(a, m.normalized_shape, eps=m.eps)
    if isinstance(m, nn.GroupNorm):
        return F.group_norm(a, m.num_groups, eps=m.eps)
    return m.normalise(a)


def _conv_weight_grad(m, a, delta, w, P, dst):
    padding, pad = _conv_padding(m)
    if pad is not None:
        a = F.pad(a, pad, mode=m.padding_mode)
    nd = len(m.kernel_size)
    for p, (ap, dp) in enumerate(zip(a.chunk(P), delta.chunk(P), strict=True)):
        gw = torch.ops.aten.convolution_backward(
            dp, ap, w, None, m.stride, padding, m.dilation, False, [0] * nd, m.groups,
            [False, True, False],
        )[1]  # fmt: skip
        dst[p].copy_(gw)
    return dst


def _embedding_grad(m, idx, delta, P, shape, dst):
    out = dst.zero_()
    tokens = idx.reshape(P, -1)
    d2 = delta.reshape(P, -1, shape[1])
    if m.padding_idx is not None:
        d2 = d2 * (tokens != m.padding_idx).unsqueeze(-1)
    part = torch.arange(P, device=idx.device).unsqueeze(1).expand_as(tokens)
    out.index_put_((part.reshape(-1), tokens.reshape(-1)), d2.reshape(-1, shape[1]), True)
    return out


def reference_gradients(
    model, loss_fn, params, X, Y, rows, factor, names: Sequence[str] | None = None
) -> torch.Tensor:
    """``(P, d)`` per-partition gradients by definition, one autograd backward per
    partition (for checks): the gradients with respect to ``names`` (default: every
    entry of ``params``), flat in that order."""
    names = list(params) if names is None else list(names)
    leaves = {n: p.detach() for n, p in params.items()}
    leaves.update({n: leaves[n].requires_grad_() for n in names})
    trained = [leaves[n] for n in names]
    out = []
    for r in rows:
        loss = loss_fn(functional_call(model, leaves, (X[r],)), Y[r]) * factor
        gs = torch.autograd.grad(loss, trained, allow_unused=True, materialize_grads=True)
        out.append(torch.cat([g.flatten() for g in gs]))
    return torch.stack(out)
