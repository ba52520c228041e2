"""docs/ray.md's multi-node recipe, executed: ``ray start`` head + worker node on this
machine (ports on 127.0.0.1), ``gradcode train --address HOST:PORT`` and
``--address auto``, with Ray's token authentication on (Ray >= 2.60 turns it on
for ``ray start --head`` as soon as a token exists on the machine).  Also: a run
without ``--address`` starts a private instance and never joins that cluster.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from gradcode.runtime.ray.connect import connect  # noqa: E402

from .ray_nodes import RayStartCluster  # noqa: E402

pytestmark = pytest.mark.slow


def _train(cluster, out, address, n=4, env=None):
    args = ["--backend", "ray", "--address", address, "-n", str(n), "-s", "1", "--scheme", "frc"]
    args += ["--rounds", "4", "--eval-every", "4", "--out", str(out), "--quiet"]
    code = "from gradcode.cli import main; main()"
    try:
        return subprocess.run(
            [sys.executable, "-c", code, "train", *args],
            env=cluster.env if env is None else env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    except subprocess.TimeoutExpired as exc:  # say where it hung
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"gradcode train --address {address} hung for 180 s; stderr:\n{err[-3000:]}")


@pytest.fixture(scope="module")
def started():
    if ray.is_initialized():  # this module needs its own connections
        ray.shutdown()
    cluster = RayStartCluster()
    try:
        cluster.start_head(num_cpus=1)
        cluster.add_worker(num_cpus=1, resources='{"worker_node": 1}')
        yield cluster
    finally:
        cluster.stop()


def test_train_with_explicit_address(started, tmp_path):
    res = _train(started, tmp_path, started.address)
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exact_fraction"] == 1.0 and summary["rounds"] == 4


def test_train_with_address_auto(started, tmp_path):
    # "auto" resolves RAY_ADDRESS first, then the latest cluster recorded on this machine.
    # Name the cluster: the record can point at an instance an earlier run started and
    # stopped (seen: a 180 s hang on a dead, differently authenticated GCS).
    env = {**started.env, "RAY_ADDRESS": started.address}
    res = _train(started, tmp_path, "auto", n=2, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert json.loads((tmp_path / "summary.json").read_text())["exact_fraction"] == 1.0


def test_local_run_does_not_join_the_running_cluster(started, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", started.address)  # even when named in the environment
    assert connect(None) is True
    try:
        gcs = ray.get_runtime_context().gcs_address
        assert not gcs.endswith(f":{started.port}")
        assert "worker_node" not in ray.cluster_resources()
    finally:
        ray.shutdown()
