"""Ray backend failures: more than s dead workers, stop with a checkpoint, rejoin.

The issue's reproduction: ``cyclic_mds -n 6 -s 1`` with two actors killed must
decode best-effort from the four survivors every round (it used to stop
waiting at once and skip every step).
"""

from __future__ import annotations

import functools
import json

import pytest

ray = pytest.importorskip("ray")

from gradcode.runtime.config import DelaySpec, RunConfig  # noqa: E402
from gradcode.runtime.loop import TrainingStopped  # noqa: E402
from gradcode.runtime.ray import cluster as ray_cluster  # noqa: E402
from gradcode.runtime.run import run  # noqa: E402


def _cfg(**kw) -> RunConfig:
    base = dict(workers=6, stragglers=1, rounds=10, eval_every=5, backend="ray", lr=0.5)
    base.update(kw)
    return RunConfig(**base)


def _use(monkeypatch, **kw):
    monkeypatch.setattr(ray_cluster, "RayCluster", functools.partial(ray_cluster.RayCluster, **kw))


def _kill_at(round_, workers):
    def hook(cluster, t):
        if t == round_:
            for w in workers:
                cluster.kill(w)

    return hook


def test_cyclic_mds_kill_two_decodes_from_survivors(ray_session, tmp_path, monkeypatch):
    _use(monkeypatch, on_round=_kill_at(2, (1, 4)), respawn=False)
    res = run(_cfg(scheme="cyclic_mds"), tmp_path)
    after = res.history[3:]  # the kills are noticed during round 2
    assert all(h["exact"] for h in res.history[:2])
    for h in after:
        assert sorted(h["arrived"]) == [0, 2, 3, 5], h  # every survivor, every round
        assert sorted(h["used"]) == [0, 2, 3, 5]
        assert not h["ready"] and not h["exact"]
        assert not any("no usable gradient" in n for n in h["notes"])
        assert any("stop rule not met" in n for n in h["notes"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_steps"] == 0 and "warning" not in summary


def test_more_than_s_dead_stop_writes_checkpoint(ray_session, tmp_path, monkeypatch):
    _use(monkeypatch, on_round=_kill_at(1, (0, 1)), respawn=False)
    cfg = _cfg(scheme="cyclic_mds", on_undecodable="stop", workers=4, stragglers=1)
    with pytest.raises(TrainingStopped, match="more than s=1"):
        run(cfg, tmp_path)
    assert any(p.name.startswith("checkpoint.") for p in tmp_path.iterdir())


def test_no_gradient_for_many_rounds_warns(ray_session, tmp_path, monkeypatch):
    _use(monkeypatch, on_round=_kill_at(0, (0, 1)), respawn=False)
    cfg = _cfg(scheme="frc", workers=2, stragglers=1, rounds=12, eval_every=12)
    with pytest.warns(UserWarning, match="no gradient was applied in 12 of 12 rounds"):
        run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["skipped_steps"] == 12 and "too many workers" in summary["warning"]


def test_killed_workers_rejoin_with_fresh_state(ray_session, tmp_path, monkeypatch):
    """PGC (n=4, s=1): two actors killed; replacements start on any node with the
    scheme's initial state, so their first round back recomputes both stored
    partitions (the warm-up); afterwards every round is covered again."""
    kill = _kill_at(2, (1, 2))

    memory = {}

    def hook(cluster, t):
        kill(cluster, t)
        if t == 6:  # let the replacements finish starting (import torch, ...)
            ray.wait(list(cluster.starting.values()), num_returns=len(cluster.starting))
        if t == 12:
            memory.update(ray.get(cluster.actors[1].get_state.remote()).computed)

    _use(monkeypatch, on_round=hook)
    res = run(_cfg(scheme="pgc", workers=4, rounds=16, time_scale=0.005), tmp_path)
    notes = [n for h in res.history for n in h["notes"]]
    assert any("worker 1 died" in n and "replacement" in n for n in notes)
    back = [h["round"] for h in res.history if any("rejoined" in n for n in h["notes"])]
    assert back, notes
    last = res.history[max(back) + 3 :]
    assert last and all(h["covered"] and len(h["arrived"]) >= 3 for h in last)
    assert any(1 in h["arrived"] for h in last) and any(2 in h["arrived"] for h in last)
    # The replacement's memory holds only gradients it computed itself, after the kill.
    assert sorted(memory) == [0, 1] and min(memory.values()) >= 3, memory


def test_crash_stop_with_rejoin_runs_on_ray(ray_session, tmp_path):
    """A CrashStop schedule on Ray: workers 0 and 3 send nothing in rounds 3..5 (> s),
    then rejoin.  cyclic_mds (n=4, s=1) falls back to {1, 2} while they are out and is
    exact again afterwards (it needs 3 of 4, so a rejoined worker is in every round)."""
    delay = DelaySpec(crash="workers=0+3,at_round=3,rejoin_after=3")
    cfg = _cfg(scheme="cyclic_mds", workers=4, rounds=9, delay=delay, time_scale=0.002)
    res = run(cfg, tmp_path)
    assert all(h["exact"] for h in res.history[:3])
    for h in res.history[3:6]:
        assert sorted(h["used"]) == [1, 2] and not h["exact"], h
    for h in res.history[6:]:
        assert h["exact"] and (0 in h["arrived"] or 3 in h["arrived"]), h


def _descendants(pid: int) -> list[tuple[int, str]]:
    """``(pid, executable)`` of every process below ``pid`` (read from /proc)."""
    import os

    children: dict[int, list[tuple[int, str]]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/cmdline", "rb") as f:
                exe = f.read().split(b"\0")[0].decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append((int(d), exe))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child[0])
    return out


@pytest.mark.slow
def test_a_dead_ray_node_ends_the_run_in_one_line(tmp_path):
    """SIGKILL the raylet of the run's own Ray instance mid-run: the run ends with exit
    status 2 and one gradcode line naming what died and the folder of the checkpoint
    (not a traceback; Ray itself may still print its raylet notice on stdout)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from gradcode.cli import main; main()", "train"]
    cmd += ["--backend", "ray", "--scheme", "frc", "-n", "4", "-s", "1", "--rounds", "400"]
    cmd += ["--time-scale", "0.05", "--checkpoint-every", "3", "--quiet", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log, killed, end = out / "rounds.jsonl", False, time.monotonic() + 300
    try:
        while not killed and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.5)
            rounds = len(log.read_text().splitlines()) if log.is_file() else 0
            raylets = [p for p, exe in _descendants(proc.pid) if exe.endswith("/raylet")]
            if rounds >= 5 and raylets:
                os.kill(raylets[0], signal.SIGKILL)
                killed = True
        stdout, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed, "the run ended before its raylet could be killed"
    ours = [ln for ln in err.splitlines() if ln.startswith("gradcode:")]
    why = f"status {proc.returncode}\nstderr:\n{err[-3000:]}\nstdout:\n{stdout[-1500:]}"
    assert proc.returncode == 2 and len(ours) == 1 and "Traceback" not in err, why
    assert "Ray" in ours[0] and "died" in ours[0] and "checkpoint" in ours[0], ours
    assert str(out) in ours[0]
    assert (out / "checkpoint.pt").is_file()
