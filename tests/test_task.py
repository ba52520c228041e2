"""The gradient oracle: partition gradients sum to the full gradient, which is correct."""

import numpy as np
import pytest
import torch

from gradcode.models import DEFAULT_DATASET
from gradcode.task import Task, flatten, unflatten


def _build(dataset="breast_cancer", model="logreg", k=6, how="iid", seed=0, **kw):
    return Task.build(dataset, model, k, how, np.random.default_rng(seed), **kw)


@pytest.mark.parametrize("model", list(DEFAULT_DATASET))
@pytest.mark.parametrize("how", ["iid", "label_sorted"])
def test_partition_gradients_sum_to_full_gradient(model, how):
    task = _build(DEFAULT_DATASET[model], model, 5, how)
    w = task.initial_weights()
    w = w + 0.01 * np.random.default_rng(1).standard_normal(w.shape)
    parts = [task.partition_gradient(j, w) for j in range(5)]
    full = task.full_gradient(w)
    assert full.dtype == np.float64 and full.shape == (task.num_params,)
    np.testing.assert_allclose(sum(parts), full, atol=1e-6 * max(1.0, np.abs(full).max()))
    assert np.abs(full).max() > 0


def test_full_gradient_matches_finite_differences_float64():
    task = _build("wine", "logreg", 3, "iid", dtype=torch.float64, weight_decay=0.1)
    w = task.initial_weights()
    g = task.full_gradient(w)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for i in rng.choice(task.num_params, 12, replace=False):
        e = np.zeros_like(w)
        e[i] = eps
        fd = (task.train_loss(w + e) - task.train_loss(w - e)) / (2 * eps)
        assert abs(fd - g[i]) < 1e-7, (i, fd, g[i])
    # and a random direction (float64 all the way)
    v = rng.standard_normal(w.shape)
    fd = (task.train_loss(w + eps * v) - task.train_loss(w - eps * v)) / (2 * eps)
    assert abs(fd - g @ v) < 1e-6


def test_weight_decay_split_equally():
    base = _build(k=4)
    wd = _build(k=4, weight_decay=0.5)
    w = base.initial_weights()
    for j in range(4):
        np.testing.assert_allclose(
            wd.partition_gradient(j, w), base.partition_gradient(j, w) + 0.5 / 4 * w, atol=1e-12
        )
    assert wd.train_loss(w) == pytest.approx(base.train_loss(w) + 0.25 * w @ w)


def test_deterministic_across_builds():
    a = _build("digits", "cnn", 24, "label_sorted", seed=3)
    b = _build("digits", "cnn", 24, "label_sorted", seed=3)
    np.testing.assert_array_equal(a.initial_weights(), b.initial_weights())
    assert all(np.array_equal(p, q) for p, q in zip(a.partitions, b.partitions, strict=True))
    w = a.initial_weights()
    np.testing.assert_array_equal(a.partition_gradient(7, w), b.partition_gradient(7, w))
    c = _build("digits", "cnn", 24, "label_sorted", seed=4)
    assert not np.array_equal(a.initial_weights(), c.initial_weights())


def test_changing_model_keeps_partitions():
    a = _build("digits", "mlp", 6)
    b = _build("digits", "logreg", 6)
    assert all(np.array_equal(p, q) for p, q in zip(a.partitions, b.partitions, strict=True))


def test_gradient_does_not_depend_on_previous_calls():
    task = _build("digits", "mlp", 4)
    w0 = task.initial_weights()
    g = task.partition_gradient(2, w0)
    task.partition_gradient(1, w0 + 1.0)
    np.testing.assert_array_equal(task.partition_gradient(2, w0), g)
    np.testing.assert_array_equal(task.initial_weights(), w0)


@pytest.mark.parametrize(
    "dataset, model, steps, lr", [("breast_cancer", "logreg", 30, 0.5), ("digits", "mlp", 60, 0.2)]
)
def test_gradient_descent_decreases_loss(dataset, model, steps, lr):
    task = _build(dataset, model, 8)
    w = task.initial_weights()
    losses = [task.train_loss(w)]
    for _ in range(steps):
        w = w - lr * task.full_gradient(w)
        losses.append(task.train_loss(w))
    assert losses[-1] < 0.6 * losses[0]
    assert all(b < a + 1e-9 for a, b in zip(losses, losses[1:], strict=False))  # monotone
    metrics = task.evaluate(w)
    assert set(metrics) == {"loss", "accuracy"} and 0 <= metrics["accuracy"] <= 1


def test_logreg_trains_to_good_accuracy():
    task = _build("breast_cancer", "logreg", 4)
    w = task.initial_weights()
    for _ in range(100):
        w = w - 0.5 * task.full_gradient(w)
    assert task.evaluate(w)["accuracy"] > 0.9


def test_flatten_unflatten_round_trip():
    task = _build("digits", "resnet", 2)
    w = np.random.default_rng(0).standard_normal(task.num_params)
    unflatten(task.model, w)
    np.testing.assert_allclose(flatten(task.model), w.astype(np.float32))
    with pytest.raises(ValueError, match="flat vector"):
        unflatten(task.model, w[:-1])


def test_info_and_counts():
    task = _build("wine", "mlp", 5)
    info = task.info()
    assert info.num_params == task.num_params == sum(p.numel() for p in task.model.parameters())
    assert info.num_partitions == 5 and info.n_train == sum(len(p) for p in task.partitions)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"how": "random"}, "unknown partitioning"),
        ({"k": 0}, ">= 1"),
        ({"model": "cnn"}, "image input"),
        ({"dataset": "nope"}, "unknown dataset"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_build_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _build(**kwargs)


def test_bad_partition_index():
    task = _build(k=3)
    with pytest.raises(ValueError, match="0..2"):
        task.partition_gradient(3, task.initial_weights())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        _build(device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_resnet_on_cuda_matches_cpu():
    cpu = _build("digits", "resnet", 4, dtype=torch.float64)
    gpu = _build("digits", "resnet", 4, dtype=torch.float64, device="cuda")
    w = cpu.initial_weights()
    np.testing.assert_allclose(
        gpu.partition_gradient(1, w), cpu.partition_gradient(1, w), atol=1e-9
    )
    parts = sum(gpu.partition_gradient(j, w) for j in range(4))
    np.testing.assert_allclose(parts, gpu.full_gradient(w), atol=1e-9)
    assert gpu.evaluate(w)["loss"] == pytest.approx(cpu.evaluate(w)["loss"])
