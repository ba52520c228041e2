"""Property: every call of ``gradcode.fit`` returns, or refuses before writing anything.

The calls are generated from ``fit``'s *live* signature: each parameter gets a
strategy by its name (a new parameter without one fails
:func:`test_every_parameter_has_a_strategy`), drawing valid values (kept tiny
where they set the cost), wrong types, out-of-range numbers, odd callables
(returning ``None``, a string, the wrong object; raising; wrong arity) and
mismatched data (other feature sizes, labels outside the model's outputs,
lengths that differ).  Each call must

* return a complete run folder (``config.json``, ``rounds.jsonl``,
  ``summary.json``, ``model.pt``), or
* raise ``TypeError`` / ``ValueError`` (or a gradcode subclass) *raised by
  gradcode's own code* (the traceback's last frame is in ``gradcode``, never in
  torch or numpy), in one line, with the folder exactly as it was (nothing
  created in a fresh one; a previous run's folder byte for byte), or
* stop with :class:`~gradcode.runtime.loop.TrainingStopped` (a non-finite
  run), leaving one run's consistent files and no summary.
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
import traceback
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import gradcode
from gradcode.codes import REGISTRY
from gradcode.runtime import TrainingStopped
from gradcode.runtime.config import DelaySpec
from gradcode.stragglers import ShiftedExponential

SRC = str(Path(gradcode.__file__).parent)
CPU_BUDGET = 60.0  # seconds for the whole property
G = torch.Generator().manual_seed(0)
X = torch.randn(48, 5, generator=G)
Y = X[:, :3].argmax(dim=1)  # three classes


class Items(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return len(Y)

    def __getitem__(self, i):
        return X[i], Y[i]


def _mlp():
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))


def _frozen():
    m = _mlp()
    m[0].requires_grad_(False)
    return m


def _raise(*a):
    raise RuntimeError("a bug in user code")


OTHER = nn.Linear(2, 2)
# ``(label, value)``; models are factories (``fit`` trains a model in place).
VALID = {
    "model": [("mlp", _mlp), ("linear", lambda: nn.Linear(5, 3)), ("frozen", _frozen),
              ("float64", lambda: _mlp().double())],
    "train_data": [("pair", (X, Y)), ("numpy", (X.numpy(), Y.numpy())),
                   ("tensords", torch.utils.data.TensorDataset(X, Y)), ("dataset", Items())],
    "scheme": [(n, n) for n in REGISTRY],
    "workers": [(str(n), n) for n in (2, 3, 4, 6)] + [("np", np.int64(4))],
    "stragglers": [(str(s), s) for s in (0, 1, 2)],
    "delay": [("se", "shifted-exp:a=1,mu=1"), ("pareto", "pareto:alpha=2.5"),
              ("model", ShiftedExponential(1.0, 2.0)),
              ("spec", DelaySpec("pause:base=1,pause=2,prob=0.1"))],
    "loss_fn": [("ce", F.cross_entropy), ("module", nn.CrossEntropyLoss()),
                ("plus", lambda o, t: F.cross_entropy(o, t) + 1.0)],
    "optimizer": [("none", None), ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5)),
                  ("adam", lambda p: torch.optim.Adam(p, lr=0.01))],
    "batch_size": [("none", None), ("4", 4), ("100", 100)],
    "rounds": [(str(r), r) for r in (1, 2, 3)],
    "test_data": [("none", None), ("pair", (X[:20], Y[:20]))],
    "metrics": [("none", None), ("acc", {"accuracy": gradcode.accuracy})],
    "backend": [("local", "local")],  # not "ray": starting Ray is not a tiny run
    "seed": [("0", 0), ("big", 2**63 - 1)],
    "out": [("none", None), ("fresh", "FRESH"), ("old", "OLD")],
    "scheduler": [("none", None), ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, 1))],
    "clip_grad_norm": [("none", None), ("1", 1.0)],
    "eval_every": [(str(e), e) for e in (1, 2)],
    "deadline": [("none", None), ("5", 5.0)],
    "partitioning": [("iid", "iid"), ("sorted", "label_sorted")],
    "checkpoint_every": [("0", 0), ("1", 1)],
    "threads": [("1", 1), ("2", 2)],
    "num_workers": [("0", 0)],  # > 0 spawns processes: not a tiny run
    "pin_memory": [("false", False)],
    "scheme_options": [("none", None), ("empty", {})],
    "progress": [("none", None), ("record", lambda rec: rec["round"])],
    "overwrite": [("false", False), ("true", True)],
    "resume": [("false", False), ("false", False), ("false", False), ("true", True)],
    "stale_correction": [("none", "none"), ("auto", "auto")],
    "actor_pool": [("none", None)],  # a pool needs backend="ray": not a tiny run
    "tensorboard": [("none", None), ("none", None), ("fresh", "TB")],
    "auto": [("none", None)],  # scheme="auto" is tested in tests/runtime/test_auto.py
}  # fmt: skip
BAD = {
    "model": [("list", lambda: [1]), ("inputs4", lambda: nn.Linear(4, 3)),
              ("meta", lambda: _mlp().to("meta")),
              ("allfrozen", lambda: _mlp().requires_grad_(False)),
              ("half", lambda: _mlp().half()), ("noparams", lambda: nn.ReLU()),
              ("lstm", lambda: nn.LSTM(5, 3)), ("oneout", lambda: nn.Linear(5, 1))],
    "train_data": [("list", [1, 2, 3]), ("short", (X, Y[:-1])), ("labels", (X, Y + 3)),
                   ("strings", (["a"] * 3, [1, 2, 3])), ("none", None), ("float", (X, Y.float())),
                   ("nan", (X * float("nan"), Y)), ("empty", (X[:0], Y[:0])),
                   ("scalar", (torch.tensor(1.0), torch.tensor(1)))],
    "scheme": [("nope", "nope"), ("int", 5), ("none", None)],
    "workers": [("0", 0), ("-1", -1), ("2.5", 2.5), ("true", True), ("huge", 10**6), ("str", "4")],
    "stragglers": [("-1", -1), ("1.5", 1.5), ("many", 50)],
    "delay": [("gamma", "gamma"), ("int", 5), ("none", None), ("abc", "shifted-exp:mu=abc"),
              ("zero", "shifted-exp:mu=0")],
    "loss_fn": [("none_red", lambda o, t: F.cross_entropy(o, t, reduction="none")),
                ("sum", lambda o, t: F.cross_entropy(o, t, reduction="sum")),
                ("float", lambda o, t: F.cross_entropy(o, t).item()), ("raise", _raise),
                ("arity", lambda o: o.sum()), ("mse", F.mse_loss), ("int", 3), ("none", None),
                ("detached", lambda o, t: F.cross_entropy(o, t).detach())],
    "optimizer": [("None", lambda p: None), ("str", lambda p: "sgd"), ("raise", _raise),
                  ("other", lambda p: torch.optim.SGD(OTHER.parameters(), lr=0.1)),
                  ("lbfgs", lambda p: torch.optim.LBFGS(p)), ("arity", lambda: None),
                  ("bigLR", lambda p: torch.optim.SGD(p, lr=1e9)), ("int", 3)],
    "batch_size": [("0", 0), ("2.5", 2.5), ("true", True), ("str", "8")],
    "rounds": [("0", 0), ("2.5", 2.5), ("huge", 10**9), ("none", None), ("true", True)],
    "test_data": [("features", (X[:, :4], Y)), ("labels", (X, Y + 5)), ("list", [1]),
                  ("targets", (X, Y.float()))],
    "metrics": [("list", [1]), ("int", {"x": 3}), ("raise", {"r": _raise}),
                ("str", {"s": lambda o, t: "high"}), ("key", {1: gradcode.accuracy})],
    "backend": [("slurm", "slurm"), ("none", None)],
    "seed": [("-1", -1), ("huge", 2**64), ("float", 1.5)],
    "out": [("devnull", "/dev/null"), ("file", "FILE"), ("empty", ""), ("int", 5),
            ("below", "FILE/below")],
    "scheduler": [("plateau", lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o)),
                  ("int", lambda o: 3), ("raise", _raise), ("notcallable", 3)],
    "clip_grad_norm": [("0", 0.0), ("nan", float("nan")), ("str", "1")],
    "eval_every": [("0", 0), ("2.5", 2.5)],
    "deadline": [("0", 0), ("-1", -1), ("nan", float("nan")), ("inf", float("inf"))],
    "partitioning": [("random", "random"), ("int", 1)],
    "checkpoint_every": [("-1", -1), ("1.5", 1.5)],
    "threads": [("0", 0), ("huge", 10**6)],
    "num_workers": [("-1", -1), ("1.5", 1.5)],
    "pin_memory": [("int", 1), ("str", "yes")],
    "scheme_options": [("unknown", {"zz": 1}), ("list", [1]), ("key", {1: 2}),
                       ("value", {"d": "x"})],
    "progress": [("int", 3)],
    "overwrite": [("int", 1)],
    "resume": [("str", "yes")],
    "stale_correction": [("unknown", "zz"), ("int", 3), ("param", "predict:zz=1")],
    "actor_pool": [("str", "pool"), ("int", 1)],
    "tensorboard": [("devnull", "/dev/null"), ("int", 5), ("empty", ""), ("file", "FILE")],
    "auto": [("int", 3), ("spec", "warmup=2")],  # auto options without scheme="auto"
}  # fmt: skip


@st.composite
def calls(draw):
    """``{parameter: (label, value)}`` for a subset of ``fit``'s parameters; half the
    calls hold no nonsense, the others some (each included value bad with ``bad_rate``)."""
    kw = {}
    bad_rate = draw(st.sampled_from([0, 0, 0, 1, 2, 5]))  # tenths
    for name, p in inspect.signature(gradcode.fit).parameters.items():
        if p.default is inspect.Parameter.empty or draw(st.integers(0, 2)) == 0:
            bad = draw(st.integers(0, 9)) < bad_rate
            kw[name] = draw(st.sampled_from((BAD if bad else VALID)[name]))
    kw.setdefault("rounds", ("2", 2))  # cost control: the default is 100 rounds
    kw.setdefault("workers", ("4", 4))
    return kw


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp("fitfuzz")
    (root / "FILE").write_text("not a folder\n")
    torch.manual_seed(0)
    gradcode.fit(_mlp(), (X, Y), workers=4, stragglers=1, rounds=2, checkpoint_every=1,
                 out=root / "old_run")  # fmt: skip
    return root


def _snapshot(folder: Path) -> dict:
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".gradcode.lock"}


def _resolve(kw: dict, root: Path) -> tuple[dict, Path | None]:
    args = {name: value for name, (_, value) in kw.items()}
    args["model"] = args["model"]()
    out = args.get("out")
    folder = None
    if out == "FRESH":
        folder = root / f"run-{uuid.uuid4().hex[:8]}"
    elif out == "OLD":
        folder = root / f"old-{uuid.uuid4().hex[:8]}"
        shutil.copytree(root / "old_run", folder)
    elif isinstance(out, str) and out.startswith("FILE"):
        args["out"] = str(root / out)
    if folder is not None:
        args["out"] = folder
    tb = args.get("tensorboard")
    if tb == "TB":
        args["tensorboard"] = root / f"tb-{uuid.uuid4().hex[:8]}"
    elif tb == "FILE":
        args["tensorboard"] = str(root / tb)
    return args, folder


def _run_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} - {".gradcode.lock"} if folder.is_dir() else set()


def test_every_fit_call_returns_or_refuses_before_writing(scratch):
    seen: dict[str, int] = {"ok": 0, "refused": 0, "stopped": 0}
    start = time.process_time()

    @settings(max_examples=300, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(kw=calls())
    def check(kw):
        args, folder = _resolve(kw, scratch)
        before = _snapshot(folder) if folder is not None else None
        labels = {k: label for k, (label, _) in kw.items()}
        model, train = args.pop("model"), args.pop("train_data")
        try:
            res = gradcode.fit(model, train, **args)
        except TrainingStopped:
            seen["stopped"] += 1
            if folder is not None:
                assert {"config.json", "rounds.jsonl"} <= _run_files(folder), labels
                assert "summary.json" not in _run_files(folder), labels
            return
        except (TypeError, ValueError) as exc:
            seen["refused"] += 1
            last = traceback.extract_tb(exc.__traceback__)[-1]
            assert last.filename.startswith(SRC), (labels, last, exc)  # not torch, not numpy
            assert "\n" not in str(exc), (labels, str(exc))
            if folder is not None:
                assert _snapshot(folder) == before, (labels, exc)  # nothing written
            return
        seen["ok"] += 1
        if folder is not None:
            files = _run_files(folder)
            assert {"config.json", "rounds.jsonl", "summary.json", "model.pt"} <= files, labels
            log = (folder / "rounds.jsonl").read_text().splitlines()
            assert [json.loads(ln)["round"] for ln in log] == list(range(res.rounds)), labels

    check()
    assert seen["ok"] and seen["refused"], seen  # the property is not vacuous
    assert time.process_time() - start < CPU_BUDGET, seen


def test_every_parameter_has_a_strategy():
    """A parameter added to ``fit`` tomorrow must get valid and bad values here."""
    for name in inspect.signature(gradcode.fit).parameters:
        assert VALID.get(name) and BAD.get(name), name


def test_a_traceback_from_inside_torch_is_caught(scratch, monkeypatch):
    """The property can fail: an exception raised by torch escapes ``fit`` as it is."""
    import gradcode.fitting_checks as chk

    def boom(*a, **k):
        return torch.zeros(2) @ torch.zeros(3)  # RuntimeError raised inside torch

    monkeypatch.setattr(chk, "data_digest", boom)
    with pytest.raises(RuntimeError) as info:
        gradcode.fit(_mlp(), (X, Y), workers=4, stragglers=1, rounds=1)
    assert not traceback.extract_tb(info.value.__traceback__)[-1].filename.startswith(SRC)
