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
