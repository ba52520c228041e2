"""``gradcode.fitting_checks``: each check of ``fit``'s arguments on its own."""

from __future__ import annotations

import importlib.util
import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradcode import fitting_checks as chk


def _net(out: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, out))


def _data(n: int = 40):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 4, generator=g)
    return X, (X[:, 0] > 0).long()


# ------------------------------------------------------------------ scalars


@pytest.mark.parametrize(
    "value,lo,hi,error,needle",
    [
        (2.5, 1, None, TypeError, "rounds must be an integer, got 2.5 (float)"),
        (2.0, 1, None, TypeError, "an integer"),
        (True, 1, None, TypeError, "got True (bool)"),
        ("3", 1, None, TypeError, "(str)"),
        (0, 1, None, ValueError, "rounds must be >= 1, got 0"),
        (-1, 0, 2**63 - 1, ValueError, "in 0..2**63 - 1, got -1"),
        (2**63, 0, 2**63 - 1, ValueError, "in 0..2**63 - 1"),
    ],
)
def test_integer_refuses_with_the_name_and_the_range(value, lo, hi, error, needle):
    with pytest.raises(error) as info:
        chk.integer("rounds", value, lo, hi)
    assert needle in str(info.value)


def test_integer_takes_numpy_integers():
    assert chk.integer("rounds", np.int64(3), 1) == 3 and type(chk.integer("r", 3, 1)) is int


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf])
def test_number_refuses_non_positive_and_non_finite(value):
    with pytest.raises(ValueError, match="deadline must be a positive finite number"):
        chk.number("deadline", value)


@pytest.mark.parametrize("value", ["1", None, True])
def test_number_refuses_non_numbers(value):
    with pytest.raises(TypeError, match="deadline must be a number"):
        chk.number("deadline", value)


def test_choice_flag_and_mappings():
    with pytest.raises(ValueError, match="backend must be one of 'local', 'ray', got 'slurm'"):
        chk.choice("backend", "slurm", ("local", "ray"))
    with pytest.raises(TypeError, match="backend must be a string"):
        chk.choice("backend", 1, ("local",))
    with pytest.raises(TypeError, match="pin_memory must be True or False"):
        chk.flag("pin_memory", 1)
    with pytest.raises(TypeError, match="metrics must be a mapping"):
        chk.mapping_of("metrics", [("a", len)], "callables")
    assert chk.mapping_of("metrics", None, "callables") == {}


# ------------------------------------------------------------------ model


def test_check_model_refuses_every_unusable_model():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        chk.check_model([1])
    with pytest.raises(ValueError, match="no parameters"):
        chk.check_model(nn.ReLU())
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        chk.check_model(frozen)
    with pytest.raises(ValueError, match="'meta' device"):
        chk.check_model(nn.Linear(2, 2).to("meta"))
    with pytest.raises(ValueError, match="float32 or float64, got float16"):
        chk.check_model(nn.Linear(2, 2).half())
    bad = nn.Linear(2, 2)
    with torch.no_grad():
        bad.weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="non-finite"):
        chk.check_model(bad)
    assert chk.check_model(nn.Linear(2, 2).double()) == (torch.device("cpu"), torch.float64)


# ------------------------------------------------------------------ data


class Items(torch.utils.data.Dataset):
    def __init__(self, items) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def test_read_data_takes_pairs_tensor_datasets_and_datasets():
    X, y = _data()
    cpu = torch.device("cpu")
    for data in ((X, y), (X.numpy(), y.numpy()), torch.utils.data.TensorDataset(X, y),
                 Items([(X[i], y[i]) for i in range(len(y))])):  # fmt: skip
        Xr, yr = chk.read_data("train_data", data, cpu, torch.float64)
        assert Xr.dtype == torch.float64 and yr.dtype == torch.int64
        assert torch.equal(Xr, X.double()) and torch.equal(yr, y)


@pytest.mark.parametrize(
    "data,error,needle",
    [
        ([1, 2, 3], TypeError, "train_data must be a torch Dataset"),
        ((["a", "b"], [1, 2]), TypeError, "must be tensors or numeric arrays"),
        ((torch.zeros(3, 2), torch.zeros(4)), ValueError, "differ in length: 3 vs 4"),
        ((torch.zeros(0, 2), torch.zeros(0)), ValueError, "train_data is empty"),
        ((torch.tensor([[math.nan]]), torch.zeros(1)), ValueError, "inputs contain NaN"),
        ((torch.zeros(2, 2), torch.tensor([True, False])), TypeError, "targets must be real"),
        ((torch.tensor(1.0), torch.tensor(1)), ValueError, "one row per sample"),
        (Items([(torch.zeros(2), 0), (torch.zeros(3), 1)]), ValueError, "reading its items"),
        (Items([1, 2]), ValueError, "(input, target) pairs"),
        (Items([]), ValueError, "train_data is empty"),
    ],
)
def test_read_data_refuses_in_one_line(data, error, needle):
    with pytest.raises(error) as info:
        chk.read_data("train_data", data, torch.device("cpu"), torch.float32)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_test_data_must_look_like_the_training_data():
    X, y = _data()
    with pytest.raises(ValueError, match=r"test_data: inputs have shape \(3,\) per sample"):
        chk.check_test_data(X, y, X[:, :3], y)
    with pytest.raises(ValueError, match="test_data: targets"):
        chk.check_test_data(X, y, X, y.float())
    chk.check_test_data(X, y, X[:5], y[:5])


def test_label_sorted_needs_class_labels():
    X, y = _data()
    chk.check_partitioning("label_sorted", y)
    with pytest.raises(ValueError, match="real-valued"):
        chk.check_partitioning("label_sorted", X[:, 0])
    with pytest.raises(ValueError, match="one-hot"):
        chk.check_partitioning("label_sorted", F.one_hot(y, 2).float())
    with pytest.raises(ValueError, match="partitioning must be one of"):
        chk.check_partitioning("random", y)
    chk.check_partitioning("iid", X[:, 0])


def test_data_digest_tells_data_apart():
    X, y = _data()
    assert chk.data_digest(X, y) == chk.data_digest(X.clone(), y.clone())
    assert chk.data_digest(X, y) != chk.data_digest(X, 1 - y)


# ------------------------------------------------------------------ dry run


def test_dry_run_accepts_a_good_setup_and_leaves_the_model_as_it_was():
    X, y = _data()
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chk.dry_run(model, F.cross_entropy, {"acc": lambda o, t: 0.5}, X, y, X[:7], y[:7])
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _loss_sum(o, t):
    return F.cross_entropy(o, t, reduction="sum")


@pytest.mark.parametrize(
    "loss,error,needle",
    [
        (lambda o, t: F.cross_entropy(o, t, reduction="none"), ValueError, "reduction='none'"),
        (lambda o, t: F.cross_entropy(o, t).item(), TypeError, "got float"),
        (_loss_sum, ValueError, "batch sum (reduction='sum'?)"),
        (lambda o, t: F.cross_entropy(o, t).detach(), ValueError, "does not depend"),
        (lambda o, t: F.cross_entropy(o, t) * math.nan, ValueError, "loss_fn is nan"),
        (lambda o, t: (o.argmax(1) == t).sum(), ValueError, "floating-point"),
        (lambda o, t: 1 / 0, ValueError, "ZeroDivisionError"),
        (
            lambda o, t: o[t.float()],
            ValueError,
            "loss_fn(model(x), y) on a train_data batch failed",
        ),
    ],
)
def test_dry_run_refuses_a_bad_loss(loss, error, needle):
    X, y = _data()
    with pytest.raises(error) as info:
        chk.dry_run(_net(), loss, {}, X, y)
    assert needle in str(info.value)


def test_a_summed_loss_is_refused_but_a_mean_plus_a_constant_is_not():
    X, y = _data()
    chk.dry_run(_net(), lambda o, t: F.cross_entropy(o, t) + 3.0, {}, X, y)
    chk.dry_run(_net(1), lambda o, t: F.mse_loss(o[:, 0], t.float()), {}, X, y)  # regression
    with pytest.raises(ValueError, match="batch sum"):
        chk.dry_run(_net(1), lambda o, t: F.mse_loss(o[:, 0], t.float(), reduction="sum"), {}, X, y)


def test_dry_run_refuses_labels_outside_the_outputs_and_a_bad_model():
    X, y = _data()
    with pytest.raises(
        ValueError, match=r"train_data: class labels must be in 0..1 .* got labels 0..7"
    ):
        chk.dry_run(_net(), F.cross_entropy, {}, X, y * 7)
    with pytest.raises(ValueError, match="test_data: class labels"):
        chk.dry_run(_net(), F.cross_entropy, {}, X, y, X, y - 1)
    with pytest.raises(ValueError, match=r"model\(x\) on a train_data batch of shape \(8, 4\)"):
        chk.dry_run(nn.Linear(3, 2), F.cross_entropy, {}, X, y)
    with pytest.raises(TypeError, match="model.x. must return a tensor, got tuple"):
        chk.dry_run(nn.LSTM(4, 2), F.cross_entropy, {}, X, y)


def test_dry_run_runs_the_metrics_on_a_test_batch():
    X, y = _data()
    with pytest.raises(ValueError, match=r"metrics\['f1'\]\(outputs, targets\) failed"):
        chk.dry_run(_net(), F.cross_entropy, {"f1": lambda o, t: o.nope}, X, y, X, y)
    with pytest.raises(ValueError, match=r"metrics\['f1'\]: float\(\) of its result failed"):
        chk.dry_run(_net(), F.cross_entropy, {"f1": lambda o, t: "high"}, X, y, X, y)


# ------------------------------------------------------------------ optimizer


def test_check_optimizer_needs_exactly_the_trainable_parameters():
    model = _net()
    model[0].requires_grad_(False)
    mine = chk.trainable(model)
    opt = chk.check_optimizer(lambda p: torch.optim.SGD(p, lr=0.1), model)
    assert [p for g in opt.param_groups for p in g["params"]] == mine
    other = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="not the model's trainable parameters"):
        chk.check_optimizer(lambda p: torch.optim.SGD(other.parameters(), lr=0.1), model)
    with pytest.raises(ValueError, match="not the model's trainable parameters"):
        chk.check_optimizer(lambda p: torch.optim.SGD(model.parameters(), lr=0.1), model)
    with pytest.raises(ValueError, match="leaves 1 of the model's 2 trainable parameters out"):
        chk.check_optimizer(lambda p: torch.optim.SGD(p[:1], lr=0.1), model)


@pytest.mark.parametrize(
    "factory,error,needle",
    [
        ("sgd", TypeError, "optimizer must be a callable"),
        (lambda p: "sgd", TypeError, "must return a torch.optim.Optimizer, got str"),
        (lambda p: None, TypeError, "got NoneType"),
        (lambda: None, ValueError, "optimizer(params) failed: TypeError"),
        (lambda p: torch.optim.SGD(p, lr=-1), ValueError, "optimizer(params) failed"),
        (lambda p: torch.optim.SGD(p, lr=1e9), ValueError, "lr must be a finite number in"),
        (lambda p: torch.optim.SGD(p, lr=0.1, momentum=1.5), ValueError, "momentum must be"),
        (lambda p: torch.optim.LBFGS(p), ValueError, "needs a closure"),
    ],
)
def test_check_optimizer_refuses(factory, error, needle):
    with pytest.raises(error) as info:
        chk.check_optimizer(factory, _net())
    assert needle in str(info.value)


def test_check_scheduler():
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = chk.check_scheduler(lambda o: torch.optim.lr_scheduler.StepLR(o, 2), opt)
    assert sched.optimizer is opt
    with pytest.raises(ValueError, match="ReduceLROnPlateau is not supported"):
        chk.check_scheduler(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o), opt)
    with pytest.raises(TypeError, match="must return an LR scheduler"):
        chk.check_scheduler(lambda o: 3, opt)
    other = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="the optimizer it is given"):
        chk.check_scheduler(lambda o: torch.optim.lr_scheduler.StepLR(other, 2), opt)


def test_hyperparameters_of_adam_have_no_momentum():
    opt = torch.optim.Adam(_net().parameters(), lr=0.01, weight_decay=0.1)
    assert chk.hyperparameters(opt.param_groups[0]) == (0.01, 0.0, 0.1)


def test_out_path(tmp_path):
    assert chk.out_path(None) is None
    assert chk.out_path(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="out: /dev/null exists and is not a folder"):
        chk.out_path("/dev/null")
    with pytest.raises(ValueError, match="out must be a folder path"):
        chk.out_path("")
    with pytest.raises(TypeError, match="out must be a folder path"):
        chk.out_path(3)
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        chk.out_path(tmp_path / "f" / "below")


def test_tensorboard_folder(tmp_path, monkeypatch):
    assert chk.tensorboard_folder(None) is None
    if importlib.util.find_spec("tensorboard") is not None:
        assert chk.tensorboard_folder(tmp_path / "tb") == str(tmp_path / "tb")
    with pytest.raises(ValueError, match="tensorboard: /dev/null exists and is not a folder"):
        chk.tensorboard_folder("/dev/null")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    with pytest.raises(ValueError, match=r"^tensorboard=DIR needs the tensorboard package: "):
        chk.tensorboard_folder(tmp_path / "tb")
