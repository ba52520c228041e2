"""PGC's running message sum (``r >= 4``): within 1e-12 of the exact sum in float64,
re-summed exactly every ``r`` rounds, the same whether or not the backend releases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gradcode.codes.pgc import PGC, PGCWorkerState

D = 257


def _exact(state, scheme, w):
    out = None
    for p in scheme.placement[w]:  # left to right, as the exact re-sum does
        out = state.grads[p].clone() if out is None else out + state.grads[p]
    return out


def _play(scheme, w, rounds, release=True, seed=0, spike=None):
    rng = np.random.default_rng(seed)
    st = scheme.init_worker(w)
    for t in range(rounds):
        plan = scheme.compute_plan(st, w, t)
        if release:
            st = scheme.release(st, w, plan)
        scale = 1e12 if t == spike else 1.0
        grads = {p: torch.as_tensor(rng.standard_normal(D)) * scale for p in plan}
        st, m = scheme.worker_message(st, w, t, grads)
        yield t, st, m


@pytest.mark.parametrize("placement", ["frc", "cr"])
@pytest.mark.parametrize("n,s", [(8, 3), (10, 4), (12, 5)])
def test_running_sum_stays_within_1e12_and_is_exact_every_r_rounds(placement, n, s):
    scheme = PGC(n, s, placement=placement)
    exact_rounds = 0
    for t, st, m in _play(scheme, 1, 40):
        if scheme.filling(t):
            continue
        exact = _exact(st, scheme, 1)
        rel = float((m.vector - exact).norm() / exact.norm())
        assert rel <= 1e-12, (t, rel)
        assert st.running is not None and 0 <= st.running < scheme.r
        if st.running == 0:
            assert torch.equal(m.vector, exact)
            exact_rounds += 1
    assert exact_rounds >= (40 - scheme.fill - 1) // scheme.r


def test_backends_with_and_without_release_send_the_same_bits():
    """LocalCluster releases (subtracts) before computing; the Ray actor does not (the
    message subtracts): the same operations in the same order."""
    scheme = PGC(8, 3)
    a = [m.vector.clone() for _, _, m in _play(scheme, 5, 30, release=True)]
    b = [m.vector.clone() for _, _, m in _play(scheme, 5, 30, release=False)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_one_buffer_and_r_gradients_for_the_workers_life():
    scheme = PGC(8, 3, fill=0)
    ptr = None
    for _, st, m in _play(scheme, 2, 20):
        assert m.vector is st.total and len(st.grads) == scheme.r
        ptr = m.vector.data_ptr() if ptr is None else ptr
        assert m.vector.data_ptr() == ptr


def test_a_spike_is_forgotten_at_the_first_exact_sum_after_it_left():
    scheme = PGC(8, 3, fill=0)  # r = 4
    spike, left = 5, None
    for t, st, m in _play(scheme, 0, 30, spike=spike):
        if left is None and all(st.computed[p] > spike for p in scheme.placement[0]):
            left = t  # the spiked gradient is no longer stored
        if left is not None and t >= left + scheme.r - 1:
            assert np.abs(m.vector.numpy()).max() < 100, t  # re-summed exactly since
    assert left is not None


def test_r_at_most_3_resums_every_round():
    scheme = PGC(6, 2)
    for t, st, m in _play(scheme, 3, 20):
        if not scheme.filling(t):
            assert torch.equal(m.vector, _exact(st, scheme, 3)) and st.running == 0


def test_a_state_from_an_older_checkpoint_resums():
    """Checkpoints written before ``running`` existed restore states without it."""
    scheme = PGC(8, 3, fill=0)
    *_, (t, st, _) = _play(scheme, 0, 9)
    old = object.__new__(PGCWorkerState)
    for f in dataclasses.fields(PGCWorkerState):
        if f.name != "running":
            object.__setattr__(old, f.name, getattr(st, f.name))
    plan = scheme.compute_plan(old, 0, t + 1)
    grads = {p: torch.ones(D, dtype=torch.float64) for p in plan}
    new, m = scheme.worker_message(scheme.release(old, 0, plan), 0, t + 1, grads)
    assert new.running == 0 and torch.equal(m.vector, _exact(new, scheme, 0))


def test_numpy_vectors_run_the_same_sum():
    scheme = PGC(8, 3, fill=0)
    rng = np.random.default_rng(1)
    st = scheme.init_worker(4)
    for t in range(16):
        plan = scheme.compute_plan(st, 4, t)
        st = scheme.release(st, 4, plan)
        st, m = scheme.worker_message(st, 4, t, {p: rng.standard_normal(D) for p in plan})
        exact = sum(st.grads[p] for p in scheme.placement[4])
        np.testing.assert_allclose(m.vector, exact, rtol=1e-12, atol=1e-12)
