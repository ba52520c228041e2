"""Local backend: a stateful scheme's late worker is busy, not refreshed for free."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from gradcode.codes import make_scheme
from gradcode.runtime import LocalCluster, Schedule, train
from gradcode.stragglers import PersistentSlow, ShiftedExponential

from .helpers import interrupted_then_resumed, oracle, setup

SLOW = PersistentSlow(ShiftedExponential(1.0, 1.0), k=1, kappa=8.0, layout="aligned")


def _rounds(name, rounds=12, model=SLOW):
    scheme = make_scheme(name, 6, 1, rng=np.random.default_rng(0))
    cluster = LocalCluster(scheme, oracle(6), Schedule(model, 3, rounds, 6))
    w = oracle(6).initial_weights()
    outs = [cluster.run_round(t, w) for t in range(rounds)]
    return cluster, outs


def test_a_slow_pgc_worker_skips_rounds_and_refreshes_its_memory_at_its_own_pace():
    cluster, outs = _rounds("pgc")
    # worker 0 is 8x slower: it is busy through most rounds and computes nothing in them
    computed = [bool(np.isfinite(o.times[0])) for o in outs]
    assert 1 <= sum(computed) <= len(outs) // 2
    # its memory holds only gradients from rounds it actually started
    started = {t for t, c in enumerate(computed) if c}
    assert set(cluster.worker_states[0].computed.values()) <= started
    # a fast worker computes every round
    assert all(np.isfinite(o.times[3]) for o in outs)


def test_a_busy_worker_starts_late_when_it_becomes_free_during_the_round():
    cluster, outs = _rounds("pgc_memory", rounds=30)
    base = Schedule(SLOW, 3, 30, 6)
    lagged = [
        t
        for t, o in enumerate(outs)
        if np.isfinite(o.times[0]) and o.times[0] > base.times(t, [1] * 6)[0] + 1e-12
    ]
    assert lagged  # it finished later than its own draw: it started after the broadcast


def test_stateless_codes_keep_the_broadcast_model():
    cluster, outs = _rounds("frc")
    base = Schedule(SLOW, 3, 12, 6)
    for t, o in enumerate(outs):
        np.testing.assert_array_equal(o.times, base.times(t, [2] * 6))


@pytest.mark.parametrize("name", ["pgc", "pgc_memory"])
def test_resume_under_persistent_stragglers_is_bit_identical(tmp_path, name):
    def fresh():
        scheme, cluster, orc, cfg = setup(name, rounds=16, model=SLOW)
        return scheme, cluster, orc, replace(cfg, checkpoint_every=4)

    full = train(*fresh())
    resumed = interrupted_then_resumed(fresh, 10, tmp_path / "ck.pt")
    assert torch.equal(resumed.weights, full.weights)
    assert [h["time"] for h in resumed.history] == [h["time"] for h in full.history]
