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
    if task.has_batchnorm:  # BatchNorm: per-partition statistics (tested below), so a
        # partition gradient depends on the partition; use the GroupNorm variant here
        from gradcode.models import make_model
        from gradcode.task import Task

        ds = task.dataset
        m = make_model(model, ds.input_shape, ds.n_classes, np.random.default_rng(0), norm="group")
        task = Task(ds, m, task.partitions)
    w = task.initial_weights()
    w = w + 0.01 * torch.randn(w.shape, generator=torch.Generator().manual_seed(1))
    parts = [task.partition_gradient(j, w) for j in range(5)]
    full = task.full_gradient(w)
    assert full.dtype == torch.float32 and full.shape == (task.num_params,)
    scale = max(1.0, float(full.abs().max()))
    torch.testing.assert_close(sum(parts), full, atol=1e-6 * scale, rtol=0)
    assert full.abs().max() > 0


def test_full_gradient_matches_finite_differences_float64():
    task = _build("wine", "logreg", 3, "iid", dtype=torch.float64, weight_decay=0.1)
    w = task.initial_weights()
    g = task.full_gradient(w)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for i in rng.choice(task.num_params, 12, replace=False):
        e = torch.zeros_like(w)
        e[i] = eps
        fd = (task.train_loss(w + e) - task.train_loss(w - e)) / (2 * eps)
        assert abs(fd - float(g[i])) < 1e-7, (i, fd, g[i])
    # and a random direction (float64 all the way)
    v = torch.as_tensor(rng.standard_normal(tuple(w.shape)))
    fd = (task.train_loss(w + eps * v) - task.train_loss(w - eps * v)) / (2 * eps)
    assert abs(fd - float(g @ v)) < 1e-6


def test_weight_decay_split_equally():
    base = _build(k=4)
    wd = _build(k=4, weight_decay=0.5)
    w = base.initial_weights()
    for j in range(4):
        np.testing.assert_allclose(
            wd.partition_gradient(j, w), base.partition_gradient(j, w) + 0.5 / 4 * w, atol=1e-12
        )
    assert wd.train_loss(w) == pytest.approx(base.train_loss(w) + 0.25 * float(w @ w))


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
    task = _build(dataset, model, 8, dtype=torch.float64)
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


@pytest.mark.parametrize("batch_size", [None, 8])
def test_restrict_keeps_only_its_partitions_and_the_same_gradients(batch_size):
    import pickle

    task = _build("digits", "mlp", 6, dtype=torch.float64, batch_size=batch_size)
    part = task.restrict([4, 1])
    w = task.initial_weights() + 0.01
    assert part.kept == {1, 4} and task.kept is None
    assert part._X.shape[0] == sum(len(task.partitions[j]) for j in (1, 4))
    assert part.dataset.n_train == task.dataset.n_train and part.evaluate(w) == {}
    for t in (0, 5):  # minibatch rounds too: the same (partition, round) rows
        got, ref = part.partition_gradients(w, t, [1, 4]), task.partition_gradients(w, t, [1, 4])
        for j in (1, 4):
            torch.testing.assert_close(got[j], ref[j], atol=0, rtol=0)
    with pytest.raises(ValueError, match="does not store partition 0"):
        part.partition_gradients(w, 0, [0, 1])
    assert len(pickle.dumps(part)) < len(pickle.dumps(task)) / 2  # what a worker receives
    assert task.partition_gradient(0, w).shape == w.shape  # the original is unchanged


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


# --------------------------------------------------------------- minibatches, modes, speed


def test_sampler_is_keyed_by_partition_and_round_and_covers_each_epoch():
    from gradcode.task import MinibatchSampler

    s = MinibatchSampler([10, 7], 4, seed=3)
    again = MinibatchSampler([10, 7], 4, seed=3)
    for t in range(6):
        for j in range(2):
            np.testing.assert_array_equal(s.positions(j, t), again.positions(j, t))
    # partition 0 (10 samples, batch 4): rounds 0-1 plus half of round 2 cover one epoch
    first = np.concatenate([s.positions(0, t) for t in range(2)])
    assert len(set(first.tolist())) == 8  # no sample twice within an epoch
    assert not np.array_equal(s.positions(0, 0), s.positions(0, 1))
    assert not np.array_equal(s.positions(0, 0), MinibatchSampler([10, 7], 4, 4).positions(0, 0))
    assert s.epoch(0) == pytest.approx(8 / 17)
    assert MinibatchSampler([10, 7], None, 0).positions(1, 5).tolist() == list(range(7))
    with pytest.raises(ValueError, match="batch_size"):
        MinibatchSampler([3], 0, 0)


def test_minibatch_gradients_sum_to_the_union_minibatch_gradient_float64():
    task = _build("digits", "mlp", 6, dtype=torch.float64, batch_size=16)
    w = task.initial_weights()
    t = 3
    g = task.partition_gradients(w, t, range(6))
    rows = torch.cat([task.rows(j, t) for j in range(6)])
    assert len(rows) == 96 and len(set(rows.tolist())) == 96
    loss = torch.nn.functional.cross_entropy(task.model(task._X[rows]), task._y[rows])
    ref = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, task.parameters())])
    torch.testing.assert_close(sum(g.values()), ref, atol=1e-12, rtol=1e-10)
    # same (partition, round): same minibatch; another round: another one
    torch.testing.assert_close(task.partition_gradient(2, w, t), g[2], atol=1e-15, rtol=1e-10)
    assert not torch.equal(task.partition_gradient(2, w, t + 1), g[2])


@pytest.mark.parametrize("model, default", [("mlp", True), ("cnn", False)])
def test_batched_pass_equals_one_partition_at_a_time(model, default):
    task = _build("digits", model, 5, dtype=torch.float64, batch_size=8)
    assert task._batched is default  # vmap by default, except convolutions on CPU
    task._batched = True
    w = task.initial_weights()
    batched = task.partition_gradients(w, 1, range(5))
    assert task._batched  # no fallback happened
    task._batched = False
    for j in range(5):
        torch.testing.assert_close(
            batched[j], task.partition_gradients(w, 1, [j])[j], atol=1e-12, rtol=0
        )


def _tiny(n=40, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = (X[:, 0] > 0).long()
    return X, y


def test_dropout_is_active_while_computing_gradients_and_replicas_agree():
    from gradcode.task import Task, TensorData

    X, y = _tiny()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 32), torch.nn.Dropout(0.5), torch.nn.Linear(32, 2)
    )
    model = model.double()
    data = TensorData("tiny", X, y, X, y)
    parts = np.array_split(np.arange(40), 4)
    a = Task(data, model, parts, seed=1)
    b = Task(data, copy_model(model), parts, seed=1)
    w = a.initial_weights()
    ga, gb = a.partition_gradient(0, w, 2), b.partition_gradient(0, w, 2)
    torch.testing.assert_close(ga, gb, atol=0, rtol=0)  # replicas: same mask, same gradient
    assert not torch.equal(ga, a.partition_gradient(0, w, 3))  # new round, new mask
    no_drop = torch.nn.Sequential(model[0], torch.nn.Identity(), model[2])
    c = Task(data, copy_model(no_drop), parts, seed=1)
    assert not torch.allclose(ga, c.partition_gradient(0, w, 2))  # dropout was on
    assert a.evaluate(w)["loss"] == pytest.approx(c.evaluate(w)["loss"])  # eval: dropout off


def copy_model(m):
    import copy

    return copy.deepcopy(m)


def test_batchnorm_uses_per_partition_statistics_and_master_running_stats():
    from gradcode.task import Task, TensorData

    X, y = _tiny(48)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )
    model = model.double()
    data = TensorData("tiny", X, y, X, y)
    parts = np.array_split(np.arange(48), 4)
    task = Task(data, model, parts, batch_size=6, seed=0)
    w = task.initial_weights()
    before = task.state()
    g = task.partition_gradients(w, 0, range(4))
    # partition 2's gradient is that of the model in train mode on partition 2's batch alone
    ref_model = copy_model(model).train()
    rows = task.rows(2, 0)
    loss = torch.nn.functional.cross_entropy(ref_model(X[rows]), y[rows]) * 6 / 24
    ref = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, ref_model.parameters())])
    torch.testing.assert_close(g[2], ref, atol=1e-12, rtol=1e-10)
    # gradients never touch the running statistics; observe_round does (master side)
    for k, v in task.state().items():
        torch.testing.assert_close(v, before[k])
    task.observe_round(w, 5)
    assert not torch.equal(task.state()["1.running_mean"], before["1.running_mean"])
    assert int(task.state()["1.num_batches_tracked"]) == 1
    # evaluation uses the running statistics: it changes with them
    e1 = task.evaluate(w)["loss"]
    task.observe_round(w, 6)
    assert task.evaluate(w)["loss"] != e1


def test_regression_loss_and_no_metrics():
    from gradcode.task import Task, TensorData

    X, _ = _tiny()
    y = X @ torch.arange(5.0, dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(5, 1), torch.nn.Flatten(0)).double()
    data = TensorData("reg", X, y, X, y)
    task = Task(
        data,
        model,
        np.array_split(np.arange(40), 4),
        loss_fn=torch.nn.functional.mse_loss,
        metrics={},
    )
    w = task.initial_weights()
    g = sum(task.partition_gradients(w, 0, range(4)).values())
    torch.testing.assert_close(g, task.full_gradient(w), atol=1e-12, rtol=1e-10)
    assert set(task.evaluate(w)) == {"loss"}
