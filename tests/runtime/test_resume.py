"""``--resume`` continues only the run that was started, and never harms its folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradcode.cli import main
from gradcode.runtime.config import DelaySpec, RunConfig
from gradcode.runtime.resume import check_resume, config_record, resume_mismatch

BASE = RunConfig(scheme="frc", workers=6, stragglers=1, rounds=4, checkpoint_every=2)
ARGS = ["train", "--scheme", "frc", "-n", "6", "-s", "1", "--rounds", "4",
        "--checkpoint-every", "2", "--eval-every", "2", "--quiet"]  # fmt: skip


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# ------------------------------------------------------------ the pure rule


@pytest.mark.parametrize(
    "change,field",
    [
        ({"workers": 8}, "workers"),
        ({"lr": 0.1}, "lr"),
        ({"seed": 1}, "seed"),
        ({"delay": DelaySpec("pareto:alpha=2.5")}, "delay.base"),
        ({"delay": DelaySpec(persistent="k=1")}, "delay.persistent"),
        ({"rounds": 3}, "rounds"),
        ({"scheme": "crc"}, "scheme"),
        ({"dataset": "wine"}, "dataset"),
        ({"model": "mlp"}, "model"),
        ({"momentum": 0.5}, "momentum"),
        ({"deadline": 3.0}, "deadline"),
        ({"scheme_options": (("d", 2),)}, "scheme_options"),
    ],
)
def test_a_changed_field_is_named(change, field):
    from dataclasses import replace

    diff = resume_mismatch(config_record(BASE), replace(BASE, **change))
    assert len(diff) == 1 and diff[0].startswith(f"{field}: "), diff


@pytest.mark.parametrize(
    "change", [{"rounds": 4}, {"rounds": 40}, {"eval_every": 1}, {"checkpoint_every": 0}]
)
def test_allowed_changes_pass(change):
    from dataclasses import replace

    assert resume_mismatch(config_record(BASE), replace(BASE, **change)) == []


def test_a_field_added_since_counts_at_its_default():
    saved = config_record(BASE)
    saved.pop("time_scale")
    assert resume_mismatch(saved, BASE) == []
    assert resume_mismatch(saved, RunConfig(**{**BASE.__dict__, "time_scale": 0.5})) != []


def test_check_resume_without_a_run_creates_nothing(tmp_path):
    target = tmp_path / "never"
    with pytest.raises(ValueError, match="nothing to resume"):
        check_resume(BASE, target)
    assert not target.exists()


# ---------------------------------------------------------- through the CLI


@pytest.fixture
def started(tmp_path, capsys) -> Path:
    out = tmp_path / "run"
    code, _, err = _cli(capsys, *ARGS, "--out", str(out))
    assert code == 0, err
    return out


@pytest.mark.parametrize(
    "argv,field",
    [
        (["-n", "8"], "workers"),
        (["--lr", "0.1"], "lr"),
        (["--seed", "1"], "seed"),
        (["--delay", "pareto:alpha=2.5"], "delay.base"),
        (["--rounds", "3"], "rounds"),
        (["--scheme", "crc"], "scheme"),  # was a traceback
        (["--dataset", "wine"], "dataset"),  # was a traceback
        (["--model", "mlp"], "model"),  # was a traceback
    ],
)
def test_resume_refuses_another_run_in_one_line_and_touches_nothing(started, capsys, argv, field):
    before = _snapshot(started)
    code, out, err = _cli(capsys, *ARGS, "--out", str(started), "--resume", *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcode: error: --resume")
    assert f"{field}: " in lines[0] and "Traceback" not in out + err
    assert _snapshot(started) == before  # config.json, log, checkpoint: byte for byte


def test_resume_with_more_rounds_continues_and_records_them(started, capsys):
    # the last --rounds wins
    code, _, err = _cli(capsys, *ARGS, "--rounds", "6", "--out", str(started), "--resume")
    assert code == 0, err
    assert json.loads((started / "config.json").read_text())["rounds"] == 6
    rounds = [json.loads(x)["round"] for x in (started / "rounds.jsonl").read_text().split("\n")
              if x]  # fmt: skip
    assert rounds == list(range(6))


def test_a_torn_last_log_line_is_dropped_with_a_warning(started, capsys):
    log = started / "rounds.jsonl"
    with log.open("a") as f:
        f.write('{"round": 4, "time": 1')  # killed mid-write
    # the last --rounds wins
    code, _, err = _cli(capsys, *ARGS, "--rounds", "6", "--out", str(started), "--resume")
    assert code == 0, err
    assert "gradcode: warning:" in err and "torn" in err
    rounds = [json.loads(x)["round"] for x in log.read_text().splitlines()]
    assert rounds == list(range(6))


def test_a_corrupt_line_inside_the_log_is_an_error_not_a_traceback(started, capsys):
    log = started / "rounds.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "{oops", *lines[1:]]) + "\n")
    code, out, err = _cli(capsys, *ARGS, "--out", str(started), "--resume")
    assert code == 2 and "line 2 is not JSON" in err and "Traceback" not in out + err


def test_a_foreign_file_as_checkpoint_is_one_line(started, capsys):
    import pickle

    checkpoints = [p for p in started.iterdir() if p.name.startswith("checkpoint")]
    assert checkpoints
    for p in checkpoints:
        p.write_bytes(pickle.dumps(["not", "a", "checkpoint"]))
    code, out, err = _cli(capsys, *ARGS, "--out", str(started), "--resume")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in out + err
