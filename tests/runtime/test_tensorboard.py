"""TensorBoard output: the record -> scalar map, the event files read back by TensorBoard
itself and compared with ``rounds.jsonl``, the purge on resume, the missing package."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from gradcode.runtime.config import RunConfig
from gradcode.runtime.resume import config_record, resume_mismatch
from gradcode.runtime.run import run
from gradcode.runtime.tensorboard import MISSING, Tee, clock_step, scalars

pytest.importorskip("tensorboard")  # the `dev` extra installs it
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def _cfg(tb, **kw) -> RunConfig:
    base = dict(scheme="pgc", workers=4, stragglers=1, rounds=6, eval_every=2, lr=0.1,
                tensorboard=str(tb))  # fmt: skip
    return RunConfig(**{**base, **kw})


def _events(path) -> EventAccumulator:
    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


def _series(acc, tag) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def _records(out) -> list[dict]:
    return [json.loads(ln) for ln in (out / "rounds.jsonl").read_text().splitlines()]


# ------------------------------------------------------------ the map


def test_a_round_record_becomes_these_scalars():
    rec = {"round": 7, "time": 12.5, "duration": 1.5, "arrived": [0, 2, 3], "late": [1],
           "ready": True, "used": [0, 2], "decoder": "frc", "exact": False, "covered": True,
           "residual": 0.25, "staleness_max": 2, "staleness_mean": np.float64(0.75),
           "notes": ["pipeline filling"], "lr": 0.1, "worker_times": [1.0, None],
           "mds_condition": 3.0, "train_loss": 0.5, "test_accuracy": 0.9}  # fmt: skip
    assert scalars(rec) == {
        "round/time": 12.5, "round/duration": 1.5, "round/arrived": 3.0, "round/late": 1.0,
        "decode/ready": 1.0, "decode/used": 2.0, "decode/exact": 0.0, "decode/covered": 1.0,
        "decode/residual": 0.25, "staleness/max": 2.0, "staleness/mean": 0.75,
        "decode/fallback": 1.0, "round/lr": 0.1, "round/mds_condition": 3.0,
        "eval/train_loss": 0.5, "eval/test_accuracy": 0.9,
    }  # fmt: skip


def test_scheme_fields_of_an_adaptive_run():
    """``--scheme auto`` records carry ``scheme`` and ``s``; a switch round ``switch``."""
    plain = scalars({"round": 0, "scheme": "dgd", "s": 0})
    sw = {"from": "dgd/0", "to": "frc/3", "reason": "2 stragglers"}
    switch = scalars({"round": 5, "scheme": "frc", "s": 3, "switch": sw})
    assert plain == {"scheme/s": 0.0, "scheme/switch": 0.0}
    assert switch == {"scheme/s": 3.0, "scheme/switch": 1.0}
    assert "scheme/switch" not in scalars({"round": 0, "exact": True})  # a fixed scheme


def test_switches_are_written_as_scalars_and_text(tmp_path):
    from gradcode.runtime.tensorboard import TensorBoardLog

    log = TensorBoardLog(tmp_path)
    log({"round": 0, "time": 1.0, "scheme": "dgd", "s": 0})
    sw = {"from": "dgd/0", "to": "frc/3", "reason": "persistent stragglers"}
    log({"round": 1, "time": 2.0, "scheme": "frc", "s": 3, "switch": sw})
    log.close()
    acc = _events(tmp_path)
    assert _series(acc, "scheme/switch") == [(0, 0.0), (1, 1.0)]
    assert _series(acc, "scheme/s") == [(0, 0.0), (1, 3.0)]
    text = [
        e.tensor_proto.string_val[0].decode() for e in acc.Tensors("scheme/switch/text_summary")
    ]
    assert text == ["round 1: dgd/0 -> frc/3: persistent stragglers"]
    names = [e.tensor_proto.string_val[0].decode() for e in acc.Tensors("scheme/name/text_summary")]
    assert names == ["round 0: dgd/0", "round 1: frc/3"]


def test_tee_sends_every_record_everywhere_and_closes_every_log():
    seen, closed = [], []

    class Log:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def __call__(self, rec):
            seen.append((self.name, rec["round"]))

        def close(self):
            closed.append(self.name)
            if self.fail:
                raise OSError("disk full")

    tee = Tee(Log("a", fail=True), None, Log("b"))
    tee({"round": 3})
    with pytest.raises(OSError, match="disk full"):
        tee.close()
    assert seen == [("a", 3), ("b", 3)] and closed == ["a", "b"]


# ------------------------------------------------------------ a run, read back


def test_the_events_hold_the_records_of_rounds_jsonl(tmp_path):
    tb, out = tmp_path / "tb", tmp_path / "out"
    run(_cfg(tb), out)
    recs, acc = _records(out), _events(tb)
    evals = [r for r in recs if "test_accuracy" in r]
    assert [r["round"] for r in evals] == [1, 3, 5]
    got = _series(acc, "eval/test_accuracy")
    assert [s for s, _ in got] == [1, 3, 5]
    assert [v for _, v in got] == pytest.approx([r["test_accuracy"] for r in evals], rel=1e-6)
    assert _series(acc, "round/duration") == [
        (r["round"], pytest.approx(r["duration"], rel=1e-6)) for r in recs
    ]
    for rec in recs:  # every scalar of every round, at its round (float32 in the file)
        for tag, value in scalars(rec).items():
            (step, stored), *_ = [(s, v) for s, v in _series(acc, tag) if s == rec["round"]]
            assert stored == pytest.approx(value, rel=1e-6, abs=1e-12), (tag, rec["round"])
    assert {"decode/exact", "staleness/mean", "round/time", "eval/train_loss"} <= set(
        acc.Tags()["scalars"]
    )
    config = acc.Tensors("run/config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert json.loads(config.strip("`\n")) == json.loads((out / "config.json").read_text())
    clock = _events(tb / "clock")  # the same evaluations against the run's clock
    assert _series(clock, "clock/test_accuracy") == [
        (clock_step(r["time"]), pytest.approx(r["test_accuracy"], rel=1e-6)) for r in evals
    ]
    assert [v for _, v in _series(clock, "clock/round")] == [1.0, 3.0, 5.0]


def test_a_run_without_a_folder_writes_events_too(tmp_path):
    res = run(_cfg(tmp_path, rounds=2), None)
    assert [s for s, _ in _series(_events(tmp_path), "round/time")] == [0, 1]
    assert res.rounds == 2


def test_a_resume_replaces_the_rounds_logged_past_the_checkpoint(tmp_path):
    """The killed run logged round 4 (an evaluation: its last round) after its last
    checkpoint (round 4); the resumed run redoes round 4 (no evaluation now) and goes on.
    TensorBoard shows each round once, as in the final ``rounds.jsonl``."""
    tb, out = tmp_path / "tb", tmp_path / "out"
    run(_cfg(tb, rounds=5, checkpoint_every=2), out)
    assert _series(_events(tb), "eval/test_accuracy")[-1][0] == 4
    time.sleep(1.05 - time.time() % 1)  # event files are read in name (= second) order
    run(_cfg(tb, rounds=7, checkpoint_every=2), out, resume=True)
    recs, acc = _records(out), _events(tb)
    assert [r["round"] for r in recs] == list(range(7))
    assert [s for s, _ in _series(acc, "round/time")] == list(range(7))
    assert _series(acc, "round/time") == [(r["round"], pytest.approx(r["time"])) for r in recs]
    evals = [r for r in recs if "test_accuracy" in r]
    assert [s for s, _ in _series(acc, "eval/test_accuracy")] == [1, 3, 5, 6]
    clock = _series(_events(tb / "clock"), "clock/test_accuracy")
    assert [s for s, _ in clock] == [clock_step(r["time"]) for r in evals]


def test_resuming_may_add_or_change_the_tensorboard_folder():
    old = config_record(RunConfig(rounds=10))
    assert resume_mismatch(old, RunConfig(rounds=10, tensorboard="tb")) == []
    with pytest.raises(ValueError, match="tensorboard must be a folder path"):
        RunConfig(tensorboard=5)


# ------------------------------------------------------------ without the package


def test_without_the_package_the_run_is_refused_before_it_starts(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    tb, out = tmp_path / "tb", tmp_path / "out"
    with pytest.raises(ValueError) as info:
        run(_cfg(tb), out)
    assert str(info.value) == MISSING.format(what="--tensorboard")
    assert str(info.value) == (
        "--tensorboard needs the tensorboard package: pip install 'gradcode[tensorboard]'"
    )
    assert not tb.exists() and not out.exists()
