"""``gradcode.fit``: a user's own module, Dataset and loss, on both backends."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import gradcode


class Blobs(torch.utils.data.Dataset):
    """A user's map-style Dataset: two Gaussian blobs in 6 dimensions."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 6, generator=g) + 1.5 * self.y[:, None].float()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class Net(nn.Module):
    """A user-defined module (not one of gradcode's)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Dropout(0.1))
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(self.body(x))


def _fit(backend="local", **kw):
    torch.manual_seed(0)
    model = Net()
    args = dict(
        scheme="pgc",
        workers=6,
        stragglers=1,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.5),
        batch_size=16,
        rounds=60,
        test_data=Blobs(200, 1),
        metrics={"accuracy": gradcode.accuracy},
        backend=backend,
        seed=0,
        eval_every=20,
    )
    args.update(kw)
    return model, gradcode.fit(model, Blobs(600, 0), **args)


def test_fit_trains_a_user_module_on_a_user_dataset(tmp_path):
    model, res = _fit(out=tmp_path / "run")
    assert res.final()["test_accuracy"] > 0.8
    assert [h["epoch"] for h in res.history[:2]] == pytest.approx([96 / 600, 192 / 600])
    fresh = Net()
    fresh.load_state_dict(res.state_dict)
    for a, b in zip(fresh.state_dict().values(), model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)  # the model was trained in place too
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert saved.keys() == model.state_dict().keys()
    lines = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()
    assert len(lines) == 60 and all(json.loads(ln)["round"] == i for i, ln in enumerate(lines))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_accuracy"] == res.final()["test_accuracy"]


def test_fit_is_deterministic_for_a_seed_and_takes_tensors_and_schedulers():
    data = Blobs(600, 0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = Net()
        res = gradcode.fit(
            model,
            (data.x, data.y),
            scheme="crc",
            workers=4,
            stragglers=1,
            optimizer=lambda p: torch.optim.Adam(p, lr=0.01),
            scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 10, 0.5),
            clip_grad_norm=1.0,
            batch_size=32,
            rounds=20,
        )
        runs.append(res)
    torch.testing.assert_close(runs[0].weights, runs[1].weights, atol=0, rtol=0)
    assert all(h["exact"] for h in runs[0].history)


def test_fit_regression_with_any_loss():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = nn.Sequential(nn.Linear(3, 1), nn.Flatten(0))
    res = gradcode.fit(
        model,
        (X, y),
        scheme="frc",
        workers=4,
        stragglers=1,
        loss_fn=nn.functional.mse_loss,
        optimizer=lambda p: torch.optim.SGD(p, lr=0.1),
        rounds=150,
        test_data=(X, y),
        eval_every=50,
    )
    assert res.final()["test_loss"] < 1e-3
    assert "test_accuracy" not in res.final()


def test_fit_bad_input_is_a_clear_error():
    with pytest.raises(TypeError, match="Dataset of .input, target. items or a pair"):
        gradcode.fit(Net(), [1, 2, 3], rounds=1)
    with pytest.raises(ValueError, match="backend"):
        gradcode.fit(Net(), Blobs(60, 0), backend="slurm", rounds=1)


def test_fit_on_ray_trains_a_user_model():
    pytest.importorskip("ray")
    _, res = _fit(backend="ray", rounds=20)
    assert res.final()["test_accuracy"] > 0.6


def test_readme_use_your_own_model_example_runs_as_written(tmp_path, monkeypatch):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Use your own model", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["result"].final()["test_accuracy"] > 0.8
    assert (tmp_path / "runs" / "x" / "model.pt").is_file()
    assert np.isfinite(scope["result"].final()["train_loss"])


# ------------------------------------------------------------ trust (issue 21)

G = torch.Generator().manual_seed(0)
X6 = torch.randn(120, 6, generator=G)
Y6 = (X6[:, 0] > 0).long()


def _small(**kw):
    torch.manual_seed(0)
    model = kw.pop("model", None) or nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2))
    args = dict(
        workers=4,
        stragglers=1,
        rounds=3,
        test_data=(X6, Y6),
        eval_every=1,
        metrics={"accuracy": gradcode.accuracy},
    )
    args.update(kw)
    train = args.pop("train_data", (X6, Y6))
    return model, gradcode.fit(model, train, **args)


def _sum_loss(o, t):
    return nn.functional.cross_entropy(o, t, reduction="sum")


OTHER = nn.Linear(3, 3)
PROBES = [
    (dict(model=[1, 2]), TypeError, "model must be a torch.nn.Module, got list"),
    (dict(train_data=(X6, Y6 * 5)), ValueError, "class labels must be in 0..1"),
    (
        dict(loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none")),
        ValueError,
        "reduction='none'",
    ),
    (dict(loss_fn=lambda o, t: nn.functional.cross_entropy(o, t).item()), TypeError, "got float"),
    (dict(loss_fn=_sum_loss), ValueError, "batch sum"),
    (dict(optimizer=lambda p: "sgd"), TypeError, "must return a torch.optim.Optimizer, got str"),
    (dict(optimizer=lambda p: None), TypeError, "got NoneType"),
    (
        dict(optimizer=lambda p: torch.optim.SGD(OTHER.parameters(), lr=0.1)),
        ValueError,
        "not the model's trainable parameters",
    ),
    (dict(test_data=(X6[:, :5], Y6)), ValueError, "test_data: inputs have shape (5,)"),
    (dict(eval_every=0), ValueError, "eval_every must be >= 1"),
    (dict(eval_every=2.5), TypeError, "eval_every must be an integer"),
    (dict(seed=-1), ValueError, "seed must be in 0..2**63 - 1"),
    (dict(threads=0), ValueError, "threads must be in 1..1024"),
    (dict(rounds=2.5), TypeError, "rounds must be an integer, got 2.5"),
    (dict(rounds=True), TypeError, "rounds must be an integer, got True"),
    (dict(rounds=10**9), ValueError, "rounds must be <= 1e+08 / workers"),
    (dict(out="/dev/null"), ValueError, "out: /dev/null exists and is not a folder"),
    (dict(model=nn.Linear(6, 2).to("meta")), ValueError, "'meta' device"),
    (dict(deadline=0), ValueError, "deadline must be a positive finite number, got 0.0"),
    (dict(deadline=-1), ValueError, "deadline must be a positive finite number"),
    (dict(deadline=float("nan")), ValueError, "deadline must be a positive finite number"),
    (dict(checkpoint_every=-1), ValueError, "checkpoint_every must be >= 0"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    (
        dict(
            partitioning="label_sorted",
            train_data=(X6, nn.functional.one_hot(Y6, 2).float()),
            loss_fn=nn.functional.mse_loss,
            test_data=None,
            metrics=None,
        ),
        ValueError,
        "label_sorted' needs integer class labels",
    ),
    (
        dict(
            partitioning="label_sorted",
            train_data=(X6, X6[:, 0]),
            test_data=None,
            metrics=None,
            model=nn.Sequential(nn.Linear(6, 1), nn.Flatten(0)),
            loss_fn=nn.functional.mse_loss,
        ),
        ValueError,
        "real-valued (regression)",
    ),
    (dict(scheme="nope"), ValueError, "scheme must be one of"),
    (dict(scheme_options={"zz": 1}), ValueError, "bad options for scheme 'pgc'"),
    (dict(delay="gamma"), ValueError, "delay: unknown delay model 'gamma'"),
    (dict(delay=3), TypeError, "delay must be a spec"),
    (dict(metrics={"f": 3}), TypeError, "metrics['f'] must be a callable"),
    (
        dict(scheduler=lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o)),
        ValueError,
        "ReduceLROnPlateau is not supported",
    ),
    (dict(resume=True, overwrite=True), ValueError, "pick one"),
    (dict(backend="slurm"), ValueError, "backend must be one of 'local', 'ray'"),
    (dict(tensorboard="/dev/null"), ValueError, "tensorboard: /dev/null exists and is not a"),
    (dict(tensorboard=3), TypeError, "tensorboard must be a folder path"),
]


@pytest.mark.parametrize("kw,error,needle", PROBES, ids=[p[2][:40] for p in PROBES])
def test_every_bad_argument_is_refused_up_front_naming_it(tmp_path, kw, error, needle):
    out = tmp_path / "run"
    kw = {"out": out, **kw}
    with pytest.raises(error) as info:
        _small(**kw)
    assert needle in str(info.value), str(info.value)
    assert "\n" not in str(info.value)
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_a_batch_larger_than_a_partition_is_clamped_with_a_warning():
    with pytest.warns(UserWarning, match="batch_size=1000 is larger than 4 of the 4 partitions"):
        _, res = _small(batch_size=1000, rounds=1)
    assert res.history[0]["epoch"] == pytest.approx(1.0)  # every sample, once


def test_frozen_parameters_stay_frozen_and_the_rest_equals_plain_pytorch(tmp_path):
    """dgd without stragglers in float64: the same steps as a plain PyTorch loop over
    the same (full) batches; the frozen layer is bit-identical, and not in the weights."""
    import copy

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 2)).double()
    model[0].requires_grad_(False)
    plain = copy.deepcopy(model)
    frozen = {k: v.clone() for k, v in model[0].state_dict().items()}
    start = model[2].weight.detach().clone()
    opt = lambda p: torch.optim.SGD(p, lr=0.3, momentum=0.5)  # noqa: E731
    res = gradcode.fit(
        model,
        (X6, Y6),
        scheme="dgd",
        workers=4,
        optimizer=opt,
        rounds=10,
        eval_every=5,
        out=tmp_path / "run",
    )
    popt = opt([p for p in plain.parameters() if p.requires_grad])
    for _ in range(10):
        popt.zero_grad()
        nn.functional.cross_entropy(plain(X6.double()), Y6).backward()
        popt.step()
    assert res.weights.numel() == 8 * 2 + 2  # only the trainable layer is sent and stepped
    for k, v in frozen.items():
        assert torch.equal(model[0].state_dict()[k], v) and torch.equal(res.state_dict[f"0.{k}"], v)
    for a, b in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    assert not torch.equal(model[2].weight, start)  # the trainable layer did move


def _diverging(**kw):
    X = X6.double()
    y = X @ torch.arange(6.0, dtype=torch.float64)
    model = nn.Sequential(nn.Linear(6, 1), nn.Flatten(0)).double()
    return _small(
        model=model,
        train_data=(X, y),
        loss_fn=nn.functional.mse_loss,
        test_data=None,
        metrics=None,
        optimizer=lambda p: torch.optim.SGD(p, lr=1e5),
        rounds=50,
        **kw,
    )


def test_a_non_finite_run_stops_as_the_cli_does(tmp_path):
    from gradcode.runtime import TrainingStopped
    from gradcode.runtime.checkpoint import load_checkpoint

    out = tmp_path / "run"
    with pytest.raises(
        TrainingStopped, match=r"round \d+: .*stopping \(checkpoint in .*checkpoint.pt\)"
    ):
        _diverging(out=out)
    ck = load_checkpoint(out / "checkpoint.pt")
    assert bool(torch.isfinite(ck["weights"]).all())  # the last finite weights
    assert not (out / "summary.json").exists() and not (out / "model.pt").exists()
    lines = (out / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(ln)["round"] for ln in lines] == list(range(len(lines)))
    with pytest.raises(TrainingStopped):
        _diverging()  # without out: the same stop, no files


def test_a_run_that_applies_no_gradient_warns_as_the_cli_does(tmp_path):
    with pytest.warns(UserWarning, match="no gradient was applied in 3 of 3 rounds"):
        _small(scheme="dgd", deadline=1e-9, out=tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["skipped_steps"] == 3 and "warning" in summary


def test_fit_and_the_cli_write_the_same_files_with_the_same_fields(tmp_path, capsys):
    from gradcode.cli import main

    with pytest.raises(SystemExit) as exc:
        main(
            [
                "train",
                "--scheme",
                "frc",
                "-n",
                "4",
                "-s",
                "1",
                "--rounds",
                "3",
                "--eval-every",
                "1",
                "--checkpoint-every",
                "2",
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
    assert exc.value.code == 0, capsys.readouterr().err
    _small(scheme="frc", checkpoint_every=2, out=tmp_path / "fit")
    cli, fit = tmp_path / "cli", tmp_path / "fit"
    assert sorted(p.name for p in cli.iterdir()) == sorted(p.name for p in fit.iterdir())
    for name in ("config.json", "summary.json"):
        assert (
            json.loads((cli / name).read_text()).keys()
            == json.loads((fit / name).read_text()).keys()
        )
    recs = [
        [json.loads(x) for x in (d / "rounds.jsonl").read_text().splitlines()] for d in (cli, fit)
    ]
    assert [r.keys() for r in recs[0]] == [r.keys() for r in recs[1]]
    summary = json.loads((fit / "summary.json").read_text())
    assert {
        "exact_fraction",
        "fallback_rounds",
        "mean_staleness",
        "skipped_steps",
    } <= summary.keys()


def test_fit_writes_tensorboard_events_or_refuses_without_the_package(tmp_path, monkeypatch):
    """``tensorboard=DIR``: the CLI's ``--tensorboard`` (tests/runtime/test_tensorboard.py
    reads the events back in full); without the package, refused before anything is written."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, res = _small(out=tmp_path / "run", tensorboard=tmp_path / "tb")
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    got = [(e.step, e.value) for e in acc.Scalars("eval/test_accuracy")]
    assert got == [(h["round"], pytest.approx(h["test_accuracy"])) for h in res.history]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["tensorboard"] == str(tmp_path / "tb")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails
    with pytest.raises(ValueError) as info:
        _small(out=tmp_path / "run2", tensorboard=tmp_path / "tb2")
    assert str(info.value) == (
        "tensorboard=DIR needs the tensorboard package: pip install 'gradcode[tensorboard]'"
    )
    assert not (tmp_path / "run2").exists() and not (tmp_path / "tb2").exists()


def test_a_second_fit_into_the_same_out_never_mixes_two_runs(tmp_path):
    out = tmp_path / "run"
    _small(out=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(TypeError):  # fails on its arguments: nothing touched
        _small(out=out, rounds=2.5)
    with pytest.raises(ValueError, match="holds another run"):  # valid, but the folder is taken
        _small(out=out, rounds=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    from gradcode.runtime import TrainingStopped

    with pytest.raises(TrainingStopped):  # overwrite, then fail mid-run: only its own files
        _diverging(out=out, overwrite=True)
    assert not (out / "summary.json").exists() and not (out / "model.pt").exists()
    assert json.loads((out / "config.json").read_text())["optimizer"] == "user:SGD"


def test_fit_resumes_bit_for_bit_and_refuses_a_changed_run(tmp_path):
    kw = dict(batch_size=8, optimizer=lambda p: torch.optim.SGD(p, lr=0.2, momentum=0.9))
    _, full = _small(rounds=8, **kw)
    _small(rounds=4, checkpoint_every=2, out=tmp_path / "run", **kw)
    _, resumed = _small(rounds=8, checkpoint_every=2, out=tmp_path / "run", resume=True, **kw)
    torch.testing.assert_close(resumed.weights, full.weights, atol=0, rtol=0)
    lines = (tmp_path / "run" / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(ln)["round"] for ln in lines] == list(range(8))
    with pytest.raises(ValueError, match="lr: 0.2 -> 0.1"):
        _small(
            rounds=9,
            out=tmp_path / "run",
            resume=True,
            batch_size=8,
            optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
        )
    with pytest.raises(ValueError, match="dataset: user:"):
        _small(rounds=9, out=tmp_path / "run", resume=True, train_data=(X6 + 1, Y6), **kw)


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda ck: ck["optimizer"]["param_groups"][0].__setitem__("lr", 1e9), "lr=1000000000.0"),
        (lambda ck: ck.__setitem__("weights", ck["weights"].long()), "holds int64 weights"),
    ],
)
def test_fit_refuses_a_tampered_checkpoint_on_resume(tmp_path, change, needle):
    from gradcode.runtime.checkpoint import load_checkpoint, save_checkpoint

    out = tmp_path / "run"
    _small(rounds=4, checkpoint_every=2, out=out)
    ck = load_checkpoint(out / "checkpoint.pt")
    change(ck)
    save_checkpoint(out / "checkpoint.pt", ck)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match=needle):
        _small(rounds=6, checkpoint_every=2, out=out, resume=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
