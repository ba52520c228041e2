"""Checkpoints without pickle, atomic writes, strict JSON, non-finite stops."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from gradcode.codes.pgc import PGCWorkerState
from gradcode.codes.protocol import Message
from gradcode.runtime import JsonLinesLog, TrainingStopped, load_checkpoint, save_checkpoint, train
from gradcode.runtime.checkpoint import atomic_write_text, strict
from gradcode.runtime.optim import OptimizerConfig

from .helpers import setup


def test_round_trip_of_every_kind_of_state(tmp_path):
    block = torch.arange(12.0).reshape(3, 4)
    msg = Message(2, 5, block[1], (1, 2), (5, 4))
    gen = np.random.default_rng(3)
    gen.random(7)
    state = {
        "weights": torch.linspace(0, 1, 5, dtype=torch.float64),
        "worker": PGCWorkerState({1: block[0], 2: block[2]}, {1: 4, 2: 5}),
        "pending": [(1.5, msg)],
        "plan": {"keep": frozenset({1, 2}), "order": (3, 1), "seen": {4}},
        "by_round": {7: np.arange(3)},
        "clock": float("inf"),
        "nan": float("nan"),
        "rng": gen,
        "np_scalar": np.float64(2.5),
        "__odd": 1,
    }
    path = tmp_path / "ck.pt"
    save_checkpoint(path, state)
    back = load_checkpoint(path)
    torch.testing.assert_close(back["weights"], state["weights"])
    w = back["worker"]
    assert isinstance(w, PGCWorkerState) and w.computed == {1: 4, 2: 5}
    torch.testing.assert_close(w.grads[2], block[2])
    ((arrival, m),) = back["pending"]
    assert arrival == 1.5 and m == replace(msg, vector=m.vector) and m.partitions == (1, 2)
    torch.testing.assert_close(m.vector, block[1])
    assert back["plan"] == {"keep": frozenset({1, 2}), "order": (3, 1), "seen": {4}}
    np.testing.assert_array_equal(back["by_round"][7], np.arange(3))
    assert back["clock"] == float("inf") and np.isnan(back["nan"])
    assert back["rng"].random() == gen.random()  # the generator continues where it was
    assert back["np_scalar"] == 2.5 and back["__odd"] == 1
    # a view into a bigger block is stored as just its values
    raw = torch.load(path, weights_only=True)
    assert max(t.numel() for t in raw["tensors"]) <= 5
    json.loads(raw["meta"])  # the non-tensor part is plain (strict) JSON


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("kind", ["pickle", "torch_pickle", "garbage", "foreign_dict", "empty"])
def test_a_file_that_is_not_a_checkpoint_is_a_one_line_error_and_runs_nothing(tmp_path, kind):
    path, marker = tmp_path / "ck.pt", tmp_path / "pwned"
    evil = _Exploit()
    evil.target = marker
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"weights": evil}))
    elif kind == "torch_pickle":
        torch.save({"format": "gradcode-checkpoint", "x": evil}, path)
    elif kind == "garbage":
        path.write_bytes(os.urandom(256))
    elif kind == "foreign_dict":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a gradcode checkpoint") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_classes_outside_gradcode_are_refused(tmp_path):
    from gradcode.runtime import checkpoint as ckmod

    path = tmp_path / "ck.pt"
    meta = json.dumps({"__dataclass__": "subprocess:Popen", "fields": {}})
    torch.save(
        {"format": ckmod.FORMAT, "version": ckmod.VERSION, "meta": meta, "tensors": []}, path
    )
    with pytest.raises(ValueError, match="outside gradcode"):
        load_checkpoint(path)


def test_writes_are_atomic(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary left


def test_json_lines_are_strict(tmp_path):
    log = JsonLinesLog(tmp_path / "r.jsonl")
    log({"round": 0, "train_loss": float("nan"), "stats": [1.0, float("inf")]})
    log.close()

    def refuse(token):
        raise ValueError(token)

    rec = json.loads((tmp_path / "r.jsonl").read_text(), parse_constant=refuse)
    assert rec == {
        "round": 0,
        "train_loss": None,
        "stats": [1.0, None],
        "nonfinite": ["stats", "train_loss"],
    }
    assert strict({"a": 1.0}) == {"a": 1.0}


def test_a_diverging_run_stops_with_the_last_finite_weights(tmp_path):
    scheme, cluster, orc, cfg = setup("crc")
    cfg = replace(cfg, optimizer=OptimizerConfig(lr=1e308))
    ck = tmp_path / "ck.pt"
    with pytest.raises(TrainingStopped, match="non-finite") as info:
        train(scheme, cluster, orc, cfg, checkpoint_path=ck)
    assert "learning rate" in str(info.value) and str(ck) in str(info.value)
    saved = load_checkpoint(ck)
    assert torch.isfinite(saved["weights"]).all()


@pytest.mark.parametrize("name, stateful", [("crc", False), ("pgc", True)])
def test_checkpoints_keep_worker_memories_only_for_stateful_schemes(tmp_path, name, stateful):
    scheme, cluster, orc, cfg = setup(name, rounds=6)
    ck = tmp_path / "ck.pt"
    train(scheme, cluster, orc, replace(cfg, checkpoint_every=3), checkpoint_path=ck)
    saved = load_checkpoint(ck)
    assert (saved["cluster"]["worker_states"] is not None) == stateful
    assert saved["round"] == 6 and "optimizer" in saved and "master" in saved


def test_a_torn_last_log_line_is_dropped_with_a_warning(tmp_path):
    from gradcode.runtime.loop import read_json_lines

    path = tmp_path / "rounds.jsonl"
    path.write_text('{"round": 0}\n{"round": 1}\n{"round": 2, "ti')
    with pytest.warns(UserWarning, match="torn last line"):
        assert [r["round"] for r in read_json_lines(path)] == [0, 1]


def test_all_finite_is_exact_even_when_the_sum_overflows():
    from gradcode.runtime.cluster import all_finite

    big = torch.full((4,), 3e38)  # finite entries whose float32 sum overflows
    assert all_finite(big) and all_finite(np.full(3, 1e308))
    for bad in (float("nan"), float("inf"), -float("inf")):
        v = torch.zeros(5)
        v[3] = bad
        assert not all_finite(v) and not all_finite(v.numpy())
    assert all_finite(torch.zeros(0))
