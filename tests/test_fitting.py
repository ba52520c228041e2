"""``gradcode.fit``: a user's own module, Dataset and loss, on both backends."""

from __future__ import annotations

import json
import re
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
