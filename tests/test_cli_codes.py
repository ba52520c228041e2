"""``gradcode codes``: every size it accepts answers within seconds (issue 21)."""

import subprocess
import sys
import time

import numpy as np
import pytest

from gradcode.cli_codes import bounded
from gradcode.codes import make_code
from gradcode.codes.inspect import report, robustness


def _gradcode(*argv, timeout=240):
    code = "from gradcode.cli import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout
    )


def test_compare_at_the_largest_n_answers():
    """n = 1000 is the documented maximum: crc cannot be built in seconds there (it is
    skipped, saying so) and the decoding checks stop at their time budget."""
    t0 = time.perf_counter()
    res = _gradcode("codes", "compare", "-n", "1000", "-s", "999")
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())  # rich wraps long lines
    assert "crc: skipped" in out and "cyclic_mds: skipped" in out and "Traceback" not in out
    assert "lstsq" in out and "time limit" in out
    assert time.perf_counter() - t0 < 200  # a few seconds on an idle machine; this is a bound


def test_show_crc_at_the_largest_n_is_one_line():
    res = _gradcode("codes", "show", "crc", "-n", "1000", "-s", "999")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "longer than" in lines[0] and "smaller -n or -s" in lines[0]


def test_bounded_gives_up_and_passes_value_errors_on():
    t0 = time.perf_counter()
    assert bounded(0.5, time.sleep, 30) is None
    assert time.perf_counter() - t0 < 20  # the child is killed, not waited for
    with pytest.raises(ValueError, match="invalid literal"):
        bounded(30, int, "x")
    assert bounded(30, divmod, 7, 2) == (3, 1)


def test_checks_say_when_their_time_ran_out():
    code = make_code("frc", 6, 2)
    rep = report(code, np.random.default_rng(0), seconds=0.0)
    assert rep.patterns_checked == 1 < rep.patterns_planned == 15
    assert "checked 1 of all 15 straggler sets" in rep.lines()[0]
    full = report(code, np.random.default_rng(0))
    assert full.lines()[0] == "checked all 15 straggler sets of size 2: all decode exactly"
    row = robustness(code, 2, np.random.default_rng(0), trials=50, seconds=0.0)
    assert row.trials == 1 and robustness(code, 2, np.random.default_rng(0), 50).trials == 50
