"""``run``: a RunConfig end to end, its files (strict JSON, state_dict, checkpoint), resume."""

from __future__ import annotations

import json

import pytest
import torch

from gradcode.runtime.config import RunConfig
from gradcode.runtime.run import run


def _cfg(**kw):
    base = dict(
        scheme="pgc", workers=4, stragglers=1, dataset="digits", model="mlp", rounds=8,
        eval_every=4, batch_size=16, lr=0.2, checkpoint_every=4,
    )  # fmt: skip
    base.update(kw)
    return RunConfig(**base)


def _strict(text):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_run_writes_strict_json_a_state_dict_and_a_checkpoint(tmp_path):
    res = run(_cfg(), tmp_path)
    recs = [_strict(ln) for ln in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert [r["round"] for r in recs] == list(range(8))
    assert recs[-1]["epoch"] == pytest.approx(8 * 64 / res_n_train(res))
    summary = _strict((tmp_path / "summary.json").read_text())
    assert summary["test_accuracy"] == res.final()["test_accuracy"]
    sd = torch.load(tmp_path / "model.pt", weights_only=True)
    assert all(v.dtype == torch.float32 for v in sd.values())
    assert (tmp_path / "checkpoint.pt").is_file() and not list(tmp_path.glob("*.tmp"))


def res_n_train(res):
    return 1797 - round(0.2 * 1797)


def test_float64_and_threads_are_honoured_and_restored(tmp_path):
    before = torch.get_num_threads()
    res = run(_cfg(dtype="float64", threads=1, rounds=2, checkpoint_every=0), tmp_path)
    assert res.weights.dtype == torch.float64
    assert torch.get_num_threads() == before


def test_resume_continues_bit_for_bit(tmp_path):
    full = run(_cfg(rounds=8), tmp_path / "full")
    run(_cfg(rounds=4), tmp_path / "part")
    resumed = run(_cfg(rounds=8), tmp_path / "part", resume=True)
    torch.testing.assert_close(resumed.weights, full.weights, atol=0, rtol=0)
    lines = (tmp_path / "part" / "rounds.jsonl").read_text().splitlines()
    assert [json.loads(ln)["round"] for ln in lines] == list(range(8))


def test_resume_from_a_foreign_file_is_a_one_line_error(tmp_path):
    run(_cfg(rounds=4), tmp_path)
    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x04not a checkpoint")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="not a gradcode checkpoint"):
        run(_cfg(rounds=8), tmp_path, resume=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing touched


def test_minibatches_on_a_ray_backend_that_ignores_rounds_are_refused(monkeypatch):
    pytest.importorskip("ray")
    from gradcode.runtime.ray import cluster as ray_cluster
    from gradcode.runtime.run import build_cluster, build_scheme, build_task

    monkeypatch.setattr(ray_cluster.RayCluster, "minibatch_rounds", False, raising=False)
    cfg = _cfg(backend="ray")
    scheme = build_scheme(cfg)
    with pytest.raises(ValueError, match="batch-size is not supported by this Ray backend"):
        build_cluster(cfg, scheme, build_task(cfg, scheme.k))


def test_cosine_schedule_takes_the_learning_rate_to_zero(tmp_path):
    const = run(_cfg(rounds=6, checkpoint_every=0), tmp_path / "c")
    cos = run(_cfg(rounds=6, checkpoint_every=0, lr_schedule="cosine"), tmp_path / "k")
    assert [h["lr"] for h in const.history] == [0.2] * 6
    lrs = [h["lr"] for h in cos.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lr_schedule"):
        _cfg(lr_schedule="step")
