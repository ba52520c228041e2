"""Real Ray nodes for tests: ``ray start`` head + worker nodes on this machine.

Everything lives in a private temp dir (``RAY_TMPDIR``), so ``--address auto``
finds this cluster and no other process on the machine joins it by accident.
Every port is chosen free on localhost.  Token authentication is on, as in
docs/ray.md: the nodes get ``RAY_AUTH_MODE=token`` and a fresh
``RAY_AUTH_TOKEN``; clients (``self.env``) get only the token.  :meth:`RayStartCluster.stop` ends
exactly the processes whose command line names that temp dir (SIGTERM, then
SIGKILL) -- never ``ray stop``, which would stop every Ray on the machine,
including other users' ones.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pids_mentioning(text: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmd:
            out.append(int(d.name))
    return out


def kill_mentioning(text: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process whose command line contains ``text``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = pids_mentioning(text)
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        end = time.time() + grace
        while pids_mentioning(text) and time.time() < end:
            time.sleep(0.2)
        if not pids_mentioning(text):
            return


class RayStartCluster:
    """``ray start --head`` plus worker nodes, all on 127.0.0.1 ports."""

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="gcray", dir="/tmp")  # short: socket paths
        self.token = secrets.token_hex(32)
        self.env = {**os.environ, "RAY_TMPDIR": self.tmp, "RAY_AUTH_TOKEN": self.token}
        for var in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
            self.env.pop(var, None)
        self.node_env = {**self.env, "RAY_AUTH_MODE": "token"}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray = str(Path(sys.executable).with_name("ray"))

    def _start(self, *args: str) -> None:
        ports = {
            "--dashboard-agent-listen-port": free_port(),
            "--dashboard-agent-grpc-port": free_port(),
            "--metrics-export-port": free_port(),
            "--runtime-env-agent-port": free_port(),
        }
        cmd = [self.ray, "start", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
        cmd += [f"{k}={v}" for k, v in ports.items()] + ["--object-store-memory=100000000"]
        cmd += list(args)
        res = subprocess.run(cmd, env=self.node_env, capture_output=True, text=True, timeout=120)
        if res.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")

    def start_head(self, num_cpus: int = 1) -> None:
        self._start(
            "--head",
            f"--port={self.port}",
            f"--num-cpus={num_cpus}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--temp-dir={self.tmp}",
        )

    def add_worker(self, num_cpus: int = 1, resources: str | None = None) -> None:
        args = [f"--address={self.address}", f"--num-cpus={num_cpus}"]
        if resources:
            args.append(f"--resources={resources}")
        self._start(*args)

    def stop(self) -> None:
        kill_mentioning(self.tmp)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> RayStartCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
