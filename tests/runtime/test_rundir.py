"""A run folder belongs to one run: lock, refusal of another run's files, --overwrite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gradcode.cli import main
from gradcode.runtime.rundir import LOCK, RUN_FILES, FolderInUse, RunFolder, check_out_folder

ARGS = ["train", "--scheme", "frc", "-n", "6", "-s", "1", "--eval-every", "2", "--quiet"]


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _rounds(folder: Path) -> list[int]:
    return [json.loads(x)["round"] for x in (folder / "rounds.jsonl").read_text().splitlines()]


def _one_line(code, out, err, needle):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcode: error:"), err
    assert needle in lines[0] and "Traceback" not in out + err, lines[0]


def test_the_lock_admits_one_run_at_a_time(tmp_path):
    folder = RunFolder(tmp_path / "run")
    with folder.claim():
        assert (tmp_path / "run" / LOCK).is_file()
        with pytest.raises(FolderInUse, match="is in use by another gradcode run"):
            with RunFolder(tmp_path / "run").claim():
                pass
    with RunFolder(tmp_path / "run").claim():  # released at the end of the block
        pass


def test_a_second_run_into_a_running_folder_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    with RunFolder(out).claim():  # another run is writing there
        code, o, err = _cli(capsys, *ARGS, "--rounds", "2", "--out", str(out))
        _one_line(code, o, err, "is in use by another gradcode run")
        code, o, err = _cli(capsys, *ARGS, "--rounds", "2", "--out", str(out), "--overwrite")
        _one_line(code, o, err, "is in use by another gradcode run")
    assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing of either run written


def test_a_fresh_run_on_another_runs_files_is_refused_and_touches_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        _cli(capsys, *ARGS, "--rounds", "4", "--checkpoint-every", "2", "--out", str(out))[0] == 0
    )
    before = _snapshot(out)
    code, o, err = _cli(capsys, *ARGS, "--rounds", "3", "--out", str(out))
    _one_line(code, o, err, "holds another run (checkpoint.pt, config.json, model.pt, rounds")
    assert "--overwrite" in err and "--resume" in err
    assert _snapshot(out) == before


def test_overwrite_deletes_every_file_of_the_old_run_so_resume_cannot_mix(tmp_path, capsys):
    """Issue 21: a fresh run left the old checkpoint, and --resume then continued the old
    run, appending its rounds 20-29 to the new run's 0-7."""
    out = tmp_path / "run"
    old = [*ARGS, "--rounds", "8", "--checkpoint-every", "4", "--out", str(out)]
    assert _cli(capsys, *old)[0] == 0
    (out / "notes.txt").write_text("mine")  # not a run file: kept
    (out / ".checkpoint.pt.123.tmp").write_bytes(b"torn")  # a leftover of a killed write
    new = [*ARGS, "--rounds", "3", "--seed", "1", "--out", str(out)]
    assert _cli(capsys, *new, "--overwrite")[0] == 0
    names = {p.name for p in out.iterdir()}
    assert names == {"config.json", "rounds.jsonl", "summary.json", "model.pt", "notes.txt", LOCK}
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert _rounds(out) == [0, 1, 2]
    code, o, err = _cli(capsys, *new, "--rounds", "6", "--resume")
    _one_line(code, o, err, "no checkpoint")
    assert _rounds(out) == [0, 1, 2]


def test_resume_and_overwrite_together_are_refused(tmp_path, capsys):
    code, o, err = _cli(capsys, *ARGS, "--out", str(tmp_path), "--resume", "--overwrite")
    _one_line(code, o, err, "pick one")


def test_run_files_lists_leftover_temporary_files(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.run_files() == []
    (tmp_path / ".rounds.jsonl.abc.tmp").write_text("")
    (tmp_path / "other.txt").write_text("")
    assert [p.name for p in folder.run_files()] == [".rounds.jsonl.abc.tmp"]
    for name in RUN_FILES:
        (tmp_path / name).write_text("")
    assert len(folder.run_files()) == len(RUN_FILES) + 1


def test_check_out_folder(tmp_path):
    assert check_out_folder(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    with pytest.raises(ValueError, match="exists and is not a folder"):
        check_out_folder("/dev/null")
    with pytest.raises(ValueError, match="must be a folder path"):
        check_out_folder("a\x00b")


def test_two_processes_into_one_folder_at_once_one_runs_one_is_refused(tmp_path):
    """Issue 21: both exited 0, leaving one run's config, the other's summary and torn
    log lines.  Now exactly one runs; the other ends in one line, and the folder is one
    run's (every log line valid JSON, config and summary of the same run)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from gradcode.cli import main; main()",
                *ARGS,
                "--rounds",
                "40",
                "--seed",
                str(seed),
                "--out",
                str(out),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2)
    assert len(err.strip().splitlines()) == 1, err
    assert "in use by another gradcode run" in err or "holds another run" in err
    winner = 1 + [code for code, _ in results].index(0)
    assert json.loads((out / "config.json").read_text())["seed"] == winner
    assert _rounds(out) == list(range(40))
    assert json.loads((out / "summary.json").read_text())["rounds"] == 40
