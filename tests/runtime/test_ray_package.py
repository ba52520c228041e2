"""The Ray backend's package: importable without starting (or importing) Ray."""

import subprocess
import sys


def test_importing_gradcode_and_the_backend_does_not_import_ray():
    code = (
        "import sys, gradcode, gradcode.cli, gradcode.runtime.run, gradcode.runtime.ray\n"
        "from gradcode.runtime.ray import RayActorPool, RayCluster\n"
        "RayActorPool().close()\n"
        "assert 'ray' not in sys.modules, 'ray imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_socket_probe_tells_a_dead_listener_from_a_live_one(tmp_path):
    import socket

    from gradcode.runtime.ray.connect import socket_listening

    path = str(tmp_path / "store")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen(1)
        assert socket_listening(path)
    assert not socket_listening(path)  # the file is still there, nobody listens
    assert not socket_listening(str(tmp_path / "missing"))


def test_a_lost_ray_cluster_is_one_cli_line(tmp_path, monkeypatch, capsys):
    """RayClusterLost is a TrainingStopped: the CLI prints one line with the folder."""
    import pytest

    from gradcode.cli import main
    from gradcode.runtime import run as run_module
    from gradcode.runtime.loop import TrainingStopped
    from gradcode.runtime.ray.cluster import RayClusterLost, cluster_lost

    assert issubclass(RayClusterLost, TrainingStopped)

    def dying(*args, **kwargs):
        raise cluster_lost(3, "this process's Ray node (raylet and object store)")

    monkeypatch.setattr(run_module, "run", dying)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--quiet", "--rounds", "5", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1, err
    assert "round 3: this process's Ray node" in err[0] and str(tmp_path) in err[0]
