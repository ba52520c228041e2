"""Wall clock vs simulation: Ray's measured round times against the virtual clock.

For the same seeded schedule every Ray round logs ``duration`` (measured real
seconds / ``time_scale``) next to ``predicted_duration`` (what the local
backend's virtual clock -- the simulator -- gives for that round).  On an idle
machine their ratio is overheads only: the median over 50 rounds must be within
15% of 1.  The check is honest about noise: the machine's load is read before
and after (``os.getloadavg`` per core); a miss on a demonstrably loaded machine
is retried once with 4x longer delays (overheads shrink relative to them) and
then *skipped* with the measured load in the reason, never passed silently.
"""

from __future__ import annotations

import os
import statistics

import pytest

ray = pytest.importorskip("ray")

from gradcode.runtime.config import DelaySpec, RunConfig  # noqa: E402
from gradcode.runtime.run import run  # noqa: E402

pytestmark = pytest.mark.slow


def _load() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def _median_ratio(tmp_path, time_scale: float) -> float:
    cfg = RunConfig(
        scheme="cyclic_mds",
        workers=4,
        stragglers=1,
        rounds=50,
        eval_every=50,
        backend="ray",
        time_scale=time_scale,
        delay=DelaySpec("shifted-exp:a=1,mu=1"),
    )
    res = run(cfg, tmp_path / f"ts{time_scale}")
    pairs = [(h["duration"], h["predicted_duration"]) for h in res.history]
    assert all(p > 0 for _, p in pairs)
    return statistics.median(d / p for d, p in pairs)


def test_measured_round_times_track_the_simulator(tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    loads, ratios = [_load()], []
    for time_scale in (0.05, 0.2):
        ratios.append(_median_ratio(tmp_path, time_scale))
        loads.append(_load())
        if abs(ratios[-1] - 1) <= 0.15:
            return
        if max(loads) < 0.7:  # idle machine: a real miss
            break
    if max(loads) >= 0.7:
        pytest.skip(
            f"machine loaded ({max(loads):.1f} runnable per core): measured/predicted medians "
            f"{[round(r, 3) for r in ratios]} not within 15%"
        )
    pytest.fail(f"measured/predicted round time medians {ratios} not within 15% of 1")
