"""Grids: every cell validated before any runs; failures reported; no orphans; torn files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gradcode.grid.harness import run_experiment
from gradcode.grid.parse import parse_experiment
from gradcode.grid.results import read_csv

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

GRID = """
workers = 4
rounds = 3
eval_every = 3
{shared}
[stragglers.se]
base = "shifted-exp:a=1,mu=1"
{persistent}
[grid]
schemes = ["dgd", "is_sgd"]
seeds = {seeds}
tasks = ["breast_cancer/logreg"]
s = [1]
partitionings = ["iid"]
"""


def _grid(persistent="", seeds="[0]", **top):
    raw = tomllib.loads(GRID.format(shared="", persistent=persistent, seeds=seeds))
    return {**raw, **top}


@pytest.mark.parametrize(
    "grid,needle",
    [
        (_grid(seeds="[0, -1]"), "seeds must be >= 0"),
        (_grid(momentum=-0.5), "momentum in [0, 1)"),
        (_grid(momentum=1.0), "momentum in [0, 1)"),
        (_grid(momentum=float("nan")), "momentum in [0, 1)"),
        (_grid(weight_decay=-1.0), "weight_decay >= 0"),
        (_grid(data_dir="/nonexistent/gradcode-data"), "data_dir"),
        (_grid(workers=10_000_000), "workers <= 10000"),
        (_grid(rounds=10**12), "rounds * workers"),
        (_grid(deadline=float("inf")), "deadline"),
        (_grid(lr=float("inf")), "finite lr"),
    ],
)
def test_bad_values_are_refused_when_parsed(grid, needle):
    with pytest.raises(ValueError) as exc:
        parse_experiment(grid)
    assert needle in str(exc.value)


def test_persistent_k_above_n_is_refused_before_any_cell_runs(tmp_path):
    cfg = parse_experiment(_grid(persistent='persistent = "k=9,kappa=5"'))
    with pytest.raises(ValueError, match="cannot slow k=9 workers out of n=4"):
        run_experiment(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_missing_data_files_are_refused_before_any_cell_runs(tmp_path):
    raw = _grid(data_dir=str(tmp_path))
    raw["grid"]["tasks"] = ["breast_cancer/logreg", "mnist/logreg"]
    cfg = parse_experiment(raw)
    with pytest.raises(ValueError, match="mnist"):
        run_experiment(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_cli_exits_non_zero_when_a_cell_fails(tmp_path, capsys, monkeypatch):
    import gradcode.runtime.run as run_module
    from gradcode.cli import main

    real = run_module.run

    def flaky(rc, out_dir, **kw):
        if rc.scheme == "is_sgd":
            raise RuntimeError("boom")
        return real(rc, out_dir, **kw)

    monkeypatch.setattr(run_module, "run", flaky)
    config = tmp_path / "g.toml"
    config.write_text(GRID.format(shared="", persistent="", seeds="[0]"))
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "run", str(config), "--out", str(tmp_path / "out"), "--quiet"])
    cap = capsys.readouterr()
    assert exc.value.code == 1
    assert "1 failed" in cap.out and "1 cell(s) failed" in cap.err
    rows = {r["scheme"]: r["status"] for r in read_csv(tmp_path / "out" / "results.csv")}
    assert rows == {"dgd": "ok", "is_sgd": "error"}


def test_a_torn_summary_reruns_that_cell_and_the_grid_goes_on(tmp_path):
    cfg = parse_experiment(_grid())
    first = run_experiment(cfg, tmp_path, progress=False)
    assert len(first.ran) == 2 and not first.failed
    torn = tmp_path / "runs" / first.ran[0] / "summary.json"
    torn.write_text(torn.read_text()[:10])  # killed mid-write
    with (tmp_path / "runs" / first.ran[1] / "rounds.jsonl").open("a") as f:
        f.write('{"round": 3, "ti')  # a torn log line in the other cell
    again = run_experiment(cfg, tmp_path, progress=False)
    assert again.ran == [first.ran[0]] and again.reused == [first.ran[1]]
    assert json.loads(torn.read_text())["rounds"] == 3
    rows = read_csv(tmp_path / "results.csv")
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert len(read_csv(tmp_path / "rounds.csv")) == 6


# ---------------------------------------------------------------- orphans


def _children(pid: int, match: str = "") -> list[int]:
    """Child processes of ``pid`` whose command line contains ``match``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmd = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and match in cmd:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_the_grid_leaves_no_worker_running(tmp_path):
    """``jobs = 2``: kill -9 the grid process mid-cell; its pool workers exit too."""
    config = tmp_path / "long.toml"
    config.write_text(
        # reuse = false: no replay phase first (a million-round replay would come first)
        GRID.format(shared="jobs = 2\nreuse = false", persistent="", seeds="[0]").replace(
            "rounds = 3", "rounds = 1000000"
        )
    )
    script = textwrap.dedent(
        f"""
        from gradcode.grid.harness import run_experiment
        from gradcode.grid.parse import load_experiment
        run_experiment(load_experiment({str(config)!r}), {str(tmp_path / "out")!r},
                       progress=False)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 240  # spawning workers imports torch: slow on a busy box
        runs = tmp_path / "out" / "runs"
        while time.monotonic() < deadline:  # both cells started training
            if runs.is_dir() and len(list(runs.glob("*/config.json"))) == 2:
                break
            assert parent.poll() is None, "the grid ended before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("the cells did not start")
        workers = _children(parent.pid)
        assert len(workers) >= 2
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not [w for w in workers if _alive(w)], "orphaned workers still running"
    finally:
        parent.kill()
        for w in workers:
            if _alive(w):
                os.kill(w, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_the_running_cells_at_once(tmp_path):
    """``jobs = 2``: KeyboardInterrupt in the grid terminates its workers (no waiting
    for the cells to finish, no queued cell started)."""
    import threading

    raw = _grid(jobs=2, rounds=1_000_000)
    raw["reuse"] = False  # no replay phase first (a million-round replay would come first)
    raw["grid"]["seeds"] = [0, 1]  # 4 cells: 2 running, 2 queued
    cfg = parse_experiment(raw)
    runs = tmp_path / "runs"
    seen: list[int] = []

    def interrupt() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if runs.is_dir() and len(list(runs.glob("*/config.json"))) >= 2:
                seen.extend(_children(os.getpid(), match="spawn_main"))  # pool workers
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.2)

    # A process started in the background by a non-interactive shell ignores SIGINT (and
    # Python then installs no KeyboardInterrupt handler): install it for this test.
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg, tmp_path, progress=False)
    finally:
        signal.signal(signal.SIGINT, old)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(w) for w in seen):
        time.sleep(0.2)
    assert seen and not [w for w in seen if _alive(w)]
    assert len(list(runs.glob("*/config.json"))) == 2  # the queued cells never started
    assert time.monotonic() - t0 < 300
