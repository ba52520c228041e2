"""One-backward partition gradients equal the per-partition definition (and today's path)."""

import functools
import pickle
import warnings

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from torch import nn

from gradcode.datasets import load_dataset
from gradcode.models import make_model
from gradcode.pergrad import PartitionGradients, reference_gradients
from gradcode.task import Task, TensorData


def _task(dataset, model, dtype, seed, **kw):
    return Task.build(dataset, model, 5, "iid", np.random.default_rng(seed), dtype=dtype, **kw)


@functools.cache
def _dataset(name):
    return load_dataset(name, np.random.default_rng(0))


def _pair(dataset, model, dtype, seed, partitions=None, batch_size=None, norm="batch"):
    """The same task twice: the one-backward path forced on, and forced off."""
    ds = _dataset(dataset)
    rng = np.random.default_rng(seed)
    if partitions is None:  # random partitions in two groups of random sizes, shuffled
        sizes = rng.permutation([int(rng.integers(3, 7))] * 2 + [int(rng.integers(8, 40))] * 3)
        idx = rng.permutation(ds.n_train)[: sizes.sum()]
        partitions = np.split(idx, np.cumsum(sizes)[:-1])
    out = []
    for pergrad in (True, False):
        m = make_model(model, ds.input_shape, ds.n_classes, np.random.default_rng(seed), norm=norm)
        t = Task(ds, m.to(dtype), partitions, batch_size=batch_size, seed=seed, pergrad=pergrad)
        out.append(t)
    return out


def _no_other_path(task):
    def fail(*a, **k):
        raise AssertionError("the one-backward path was not used")

    task._vmap_grads = fail
    task._one_grad = fail


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


CASES = [
    ("wine", "logreg", "batch"),
    ("digits", "mlp", "batch"),
    ("digits", "cnn", "batch"),
    ("digits", "resnet", "batch"),
    ("digits", "resnet", "group"),
]


@pytest.mark.parametrize("dataset, model, norm", CASES)
@pytest.mark.parametrize("batch_size, seed", [(None, 0), (7, 1)])
def test_builtin_models_match_the_general_path_float64(dataset, model, norm, batch_size, seed):
    fast, slow = _pair(dataset, model, torch.float64, seed, batch_size=batch_size, norm=norm)
    assert fast._pergrad, "the built-in models all qualify"
    _no_other_path(fast)
    w = fast.initial_weights()
    w = w + 0.05 * torch.randn(
        w.shape, generator=torch.Generator().manual_seed(seed), dtype=w.dtype
    )
    t = 3
    got = fast.partition_gradients(w, t, range(5))
    ref = slow.partition_gradients(w, t, range(5))
    for j in range(5):
        assert _rel(got[j], ref[j]) < 1e-10, (model, j)
    if model == "resnet" and norm == "batch":  # the check on the first call passed
        assert fast._pergrad.active and not fast._pergrad.probe


@pytest.mark.parametrize("dataset, model, norm", CASES[:3] + CASES[4:])
def test_builtin_models_match_the_general_path_float32(dataset, model, norm):
    fast, slow = _pair(dataset, model, torch.float32, 2, batch_size=9, norm=norm)
    _no_other_path(fast)
    w = fast.initial_weights()
    got, ref = fast.partition_gradients(w, 1, range(5)), slow.partition_gradients(w, 1, range(5))
    for j in range(5):
        assert _rel(got[j], ref[j]) < 1e-5


def test_task_default_uses_it_where_vmap_was_used_and_sums_to_the_full_gradient():
    mlp = _task("digits", "mlp", torch.float64, 0)
    assert mlp._pergrad and mlp._batched
    cnn = _task("digits", "cnn", torch.float64, 0)
    assert not cnn._pergrad  # CPU convolutions: one cache-sized pass per partition is faster
    off = Task(mlp.dataset, mlp.model, mlp.partitions, pergrad=False)
    assert not off._pergrad and off._batched  # forced off: vmap, as before
    _no_other_path(mlp)
    w = mlp.initial_weights()
    total = sum(mlp.partition_gradients(w, 0, range(5)).values())
    torch.testing.assert_close(total, mlp.full_gradient(w), rtol=1e-10, atol=1e-13)


def test_weight_decay_and_pickling():
    data, parts = _data(30, 4), np.array_split(np.arange(30), 3)
    net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)).double()
    task = Task(data, net, parts, weight_decay=0.3, pergrad=True)
    ref = Task(data, net, parts, weight_decay=0.3, pergrad=False)
    w = task.initial_weights()
    again = pickle.loads(pickle.dumps(task))  # what the Ray backend ships to its actors
    for t in (task, again):
        got, want = t.partition_gradients(w, 0, range(3)), ref.partition_gradients(w, 0, range(3))
        for j in range(3):
            torch.testing.assert_close(got[j], want[j], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ layers, directly


def _data(n, d, classes=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorData("tiny", X, y, X, y)


def _check(net, X, y, P, B, loss_fn=F.cross_entropy, names=None, tol=1e-10, **kw):
    """The engine against one autograd backward per partition; returns the engine."""
    net = net.double()
    names = [n for n, p in net.named_parameters() if p.requires_grad] if names is None else names
    engine = PartitionGradients.for_model(net, loss_fn, names, **kw)
    assert engine is not None, "model not supported"
    params = {n: p.detach() for n, p in net.named_parameters()}
    rows = torch.randperm(len(X), generator=torch.Generator().manual_seed(P))[: P * B].view(P, B)
    got = engine(params, X, y, rows, 0.7)
    ref = reference_gradients(net, loss_fn, params, X, y, rows, 0.7, names)
    assert got is not None and got.shape == ref.shape
    assert _rel(got, ref) < tol
    for p in range(P):  # per row too: a shared error would hide in the norm of the block
        assert _rel(got[p], ref[p]) < tol
    return engine


def _images(n, c, hw, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, *hw, generator=g, dtype=torch.float64)


def test_convolutions_with_padding_modes_strides_groups_and_bias():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, padding_mode="reflect"),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, bias=False),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 3, 1, padding="same"),
        nn.Flatten(),
        nn.Linear(3 * 2 * 2, 3),
    )
    X = _images(24, 2, (8, 8))
    _check(net, X, torch.randint(0, 3, (24,)), 4, 5)
    net1d = nn.Sequential(nn.Conv1d(1, 3, 5, padding="valid", dilation=2), nn.Flatten())
    net1d.append(nn.Linear(3 * 2, 2))
    _check(net1d, torch.randn(20, 1, 10, dtype=torch.float64), torch.randint(0, 2, (20,)), 3, 4)
    net3d = nn.Sequential(nn.Conv3d(1, 2, 2), nn.Flatten(), nn.Linear(2 * 8, 2))
    _check(net3d, _images(12, 1, (3, 3, 3)), torch.randint(0, 2, (12,)), 2, 3)


def test_embedding_with_padding_index_and_norms():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Embedding(7, 4, padding_idx=0),
        nn.LayerNorm(4),
        nn.Flatten(),
        nn.Linear(12, 6),
        nn.RMSNorm(6),
        nn.Unflatten(1, (2, 3)),
        nn.GroupNorm(1, 2),
        nn.Flatten(),
        nn.BatchNorm1d(6),
        nn.GELU(),
        nn.Linear(6, 3),
    )
    for m in net:
        if isinstance(m, nn.LayerNorm | nn.RMSNorm | nn.GroupNorm | nn.BatchNorm1d):
            with torch.no_grad():  # non-trivial affine parameters
                m.weight.uniform_(0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.uniform_(-0.5, 0.5)
    tokens = torch.randint(0, 7, (30, 3), generator=torch.Generator().manual_seed(1))
    _check(net, tokens, torch.randint(0, 3, (30,)), 5, 4)


def test_batchnorm2d_uses_each_partitions_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten())
    net.append(nn.Linear(3 * 4 * 4, 2))
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
    ref_model = torch.func.replace_all_batch_norm_modules_(__import__("copy").deepcopy(net))
    net = net.double()
    names = [n for n, _ in net.named_parameters()]
    engine = PartitionGradients.for_model(ref_model.double(), F.cross_entropy, names)
    X, y = _images(16, 1, (6, 6)), torch.randint(0, 2, (16,))
    rows = torch.arange(16).view(4, 4)
    params = {n: p.detach() for n, p in net.named_parameters()}
    got = engine(params, X, y, rows, 1.0)
    ref = reference_gradients(ref_model, F.cross_entropy, params, X, y, rows, 1.0)
    assert _rel(got, ref) < 1e-10
    # statistics over all 16 samples instead would give other gradients
    whole = reference_gradients(ref_model, F.cross_entropy, params, X, y, rows.view(1, 16), 4.0)
    assert _rel(got.sum(0), whole[0]) > 1e-3


def test_tied_weights_frozen_parameters_and_chunked_passes():
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), shared, nn.Tanh(), shared, nn.Linear(4, 2))
    X, y = torch.randn(40, 3, dtype=torch.float64), torch.randint(0, 2, (40,))
    _check(net, X, y, 4, 6)  # the shared layer's two calls add up
    _check(net, X, y, 5, 3, max_rows=7)  # two partitions a pass
    net[0].weight.requires_grad_(False)  # frozen: no gradient, no slot in the result
    engine = _check(net, X, y, 3, 4)
    assert engine.numel == sum(p.numel() for p in net.parameters() if p.requires_grad)
    net[5].requires_grad_(False)
    _check(net, X, y, 3, 4, names=["0.bias", "2.weight"])


def test_losses_keep_each_partitions_own_mean():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 3))
    X, y = torch.randn(30, 3, dtype=torch.float64), torch.randint(0, 3, (30,))
    weighted = lambda o, t: F.cross_entropy(o, t, weight=torch.tensor([1.0, 3.0, 0.5]).double())  # noqa: E731
    _check(net, X, y, 5, 4, loss_fn=weighted)  # a weighted mean: per-partition denominators
    y2 = y.clone()
    y2[::4] = -100  # ignored targets: each partition's mean over its own counted samples
    _check(net, X, y2, 5, 4)
    reg = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    _check(reg, X, torch.randn(30, dtype=torch.float64), 3, 5, loss_fn=F.mse_loss)


# ------------------------------------------------------------------ what it refuses


def test_unknown_parameterised_layers_and_dropout_are_refused():
    names = lambda net: [n for n, _ in net.named_parameters()]  # noqa: E731
    prelu = nn.Sequential(nn.Linear(3, 4), nn.PReLU(), nn.Linear(4, 2))
    assert PartitionGradients.for_model(prelu, F.cross_entropy, names(prelu)) is None
    drop = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2))
    assert PartitionGradients.for_model(drop, F.cross_entropy, names(drop)) is None
    same = nn.Sequential(nn.Conv1d(1, 2, 4, padding="same"))  # asymmetric padding
    assert PartitionGradients.for_model(same, F.cross_entropy, names(same)) is None
    # a Task still computes them (the general path)
    data, parts = _data(24, 3), np.array_split(np.arange(24), 3)
    task = Task(data, prelu.double(), parts, pergrad=True)
    assert not task._pergrad
    assert len(task.partition_gradients(task.initial_weights(), 0, range(3))) == 3


class _Centred(nn.Module):
    """Subtracts the batch mean: mixes samples, so partitions must not share a pass."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(h - h.mean(0)))


class _InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        h += 1.0  # changes the recorded layer output
        return self.b(h)


@pytest.mark.parametrize("cls, why", [(_Centred, "mixes"), (_InPlace, "in place")])
def test_a_forward_it_cannot_see_is_checked_and_falls_back(cls, why):
    torch.manual_seed(0)
    data, parts = _data(40, 3), [np.arange(i, 40, 4) for i in range(4)]
    task = Task(data, cls().double(), parts, batch_size=5, pergrad=True)
    ref = Task(data, cls().double(), parts, batch_size=5, pergrad=False, batched=False)
    w = task.initial_weights()
    with pytest.warns(RuntimeWarning, match=why):
        got = task.partition_gradients(w, 0, range(4))
    assert not task._pergrad.active
    want = ref.partition_gradients(w, 0, range(4))
    for j in range(4):
        torch.testing.assert_close(got[j], want[j], rtol=1e-12, atol=1e-14)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task.partition_gradients(w, 1, range(4))  # off for good, silently


# ------------------------------------------------------------------ random MLPs


@settings(max_examples=40, deadline=None)
@given(
    dims=st.lists(st.integers(1, 9), min_size=2, max_size=5),
    act=st.sampled_from([nn.ReLU, nn.Tanh, nn.GELU, nn.Sigmoid]),
    bias=st.booleans(),
    norm=st.sampled_from([None, "layer", "batch"]),
    P=st.integers(1, 5),
    B=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_random_mlps_match_the_definition(dims, act, bias, norm, P, B, seed):
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(dims) - 2:
            if norm == "layer":
                layers.append(nn.LayerNorm(b))
            layers.append(act())
    classes = max(2, dims[-1])
    layers.append(nn.Linear(dims[-1], classes))
    net = nn.Sequential(*layers)
    if norm == "batch" and B > 1:
        net.insert(1, nn.BatchNorm1d(dims[1]))
        net = torch.func.replace_all_batch_norm_modules_(net)
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(P * B + 3, dims[0], generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (P * B + 3,), generator=g)
    _check(net, X, y, P, B)
