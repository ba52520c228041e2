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


# ------------------------------------------- the whole checkpoint, before anything


def _tamper(folder: Path, change) -> None:
    from gradcode.runtime.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(folder / "checkpoint.pt")
    change(ck)
    save_checkpoint(folder / "checkpoint.pt", ck)


def _set(key, value):
    return lambda ck: ck.__setitem__(key, value)


def _lr(value):
    def change(ck):
        ck["optimizer"]["param_groups"][0]["lr"] = value

    return change


@pytest.mark.parametrize(
    "change,needle",
    [
        (_set("round", 99), "is at round 99, outside this run's 0..6 rounds"),  # emptied the log
        (_set("round", -1), "is at round -1"),
        (lambda ck: ck.pop("master"), "is incomplete (no master)"),  # cut the log, then KeyError
        (lambda ck: ck.pop("cluster"), "is incomplete (no cluster)"),
        (_set("cluster", {"clock": 0.0}), "has no worker state"),
        (_lr(1e9), "optimizer setting lr=1000000000.0; the configuration's is 0.5"),
        (lambda ck: ck.__setitem__("weights", ck["weights"].long()), "holds int64 weights"),
        (lambda ck: ck.__setitem__("weights", ck["weights"][:3]), "holds weights of shape (3,)"),
        (lambda ck: ck.__setitem__("weights", ck["weights"] * float("nan")), "non-finite"),
        (lambda ck: ck["history"].pop(), "its history holds 3 rounds"),
        (_set("master", {"x": 1}), "master state of type dict"),
        (_set("scheduler", {"last_epoch": 3}), "with an LR scheduler"),
    ],
)
def test_a_bad_checkpoint_is_refused_before_any_file_changes(started, capsys, change, needle):
    _tamper(started, change)
    before = _snapshot(started)
    code, out, err = _cli(capsys, *ARGS, "--rounds", "6", "--out", str(started), "--resume")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcode: error: --resume"), err
    assert needle in lines[0] and "Traceback" not in out + err, lines[0]
    assert _snapshot(started) == before  # the log is neither emptied nor cut


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda log: log.unlink(), "rounds.jsonl is missing but the checkpoint is at round 4"),
        (lambda log: log.write_text("".join(log.read_text().splitlines(True)[:2])),
         "holds 2 rounds but the checkpoint is at round 4 (cut?)"),
        (lambda log: log.write_text(log.read_text().replace('"time": ', '"time": 1', 1)),
         "line 1 of"),
    ],
)  # fmt: skip
def test_a_log_that_is_not_the_checkpoints_is_an_error_saying_how_to_recover(
    started, capsys, damage, needle
):
    damage(started / "rounds.jsonl")
    before = _snapshot(started)
    code, out, err = _cli(capsys, *ARGS, "--rounds", "6", "--out", str(started), "--resume")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err and "--overwrite" in err and "Traceback" not in out + err
    assert _snapshot(started) == before


def test_a_resume_after_a_kill_drops_log_lines_past_the_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*ARGS, "--rounds", "5", "--checkpoint-every", "2", "--out", str(out)]
    assert _cli(capsys, *argv)[0] == 0  # checkpoint at round 4, log has rounds 0-4
    (out / "summary.json").unlink()  # as after a kill in round 5
    code, _, err = _cli(capsys, *argv, "--rounds", "7", "--resume")
    assert code == 0, err
    rounds = [json.loads(x)["round"] for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert rounds == list(range(7))
    assert json.loads((out / "summary.json").read_text())["rounds"] == 7


def test_a_refused_resume_keeps_the_old_summary_and_model(started, capsys):
    _tamper(started, _set("round", 99))
    _cli(capsys, *ARGS, "--rounds", "6", "--out", str(started), "--resume")
    assert (started / "summary.json").is_file() and (started / "model.pt").is_file()
