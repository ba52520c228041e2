"""Communication model and the chunked simulator (``gradcode.comm`` and its hook in ``sim``)."""

import numpy as np
import pytest

from gradcode.codes import make_code, make_scheme
from gradcode.comm import CommModel, arrival_increments, message_arrivals
from gradcode.sim import simulate, simulate_chunked, simulate_model
from gradcode.stragglers import ShiftedExponential


def test_message_arrivals_queue_on_one_uplink():
    comm = CommModel(latency=1.0, bandwidth=2.0)  # half a time unit per gradient
    finish = np.array([[0.0, 0.1, 5.0]])
    arr = message_arrivals(finish, [(0, 1.0), (1, 1.0), (2, 0.5)], comm)
    # second message waits for the first to leave the link (0.5), third is alone
    np.testing.assert_allclose(arr, [[1.5, 2.0, 6.25]])
    assert CommModel().free and not comm.free
    assert message_arrivals(np.array([np.inf, np.inf]), [(1, 1.0)], comm)[0] == np.inf


@pytest.mark.parametrize("bad", [{"latency": -1}, {"bandwidth": 0}, {"latency": np.inf}])
def test_bad_comm_model(bad):
    with pytest.raises(ValueError):
        CommModel(**bad)


def test_one_message_schemes_pay_the_send_time():
    code = make_code("crc", 6, 2, rng=np.random.default_rng(0))
    T = ShiftedExponential().sample(np.random.default_rng(0), 200, 6, load=3)
    base = simulate(code, T)
    with_comm = simulate(code, T, comm=CommModel(latency=0.2, bandwidth=4.0))
    np.testing.assert_allclose(with_comm.times, base.times + 0.2 + 0.25)
    np.testing.assert_array_equal(simulate(code, T, comm=CommModel()).times, base.times)


@pytest.mark.parametrize(
    ("name", "opts"), [("partial", {"l": 2}), ("tandon_partial", {"variant": "replication"})]
)
def test_chunked_schemes_run_in_the_simulator_like_on_the_local_backend(name, opts):
    from gradcode.runtime import LocalCluster, LoopConfig, OptimizerConfig, Schedule, train

    from .runtime.helpers import oracle

    sch = make_scheme(name, 6, 1, rng=np.random.default_rng(0), **opts)
    model = ShiftedExponential()
    sim = simulate_model(sch, model, np.random.default_rng(5), 8)
    assert sim.exact.all() and sim.decodable.all()
    orc = oracle(sch.k)
    cl = LocalCluster(sch, orc, Schedule(model, 5, 8, 6))
    res = train(sch, cl, orc, LoopConfig(rounds=8, optimizer=OptimizerConfig(lr=0.5)))
    np.testing.assert_allclose([h["duration"] for h in res.history], sim.times)
    # without communication, arrivals are the segment ends
    width = max(len(p) for p in sch.placement)
    T = model.sample_chunks(np.random.default_rng(1), 50, 6, width)
    np.testing.assert_allclose(
        sch.chunk_completion_time(arrival_increments(sch, T)), sch.chunk_completion_time(T)
    )
    slow = simulate_chunked(sch, T, comm=CommModel(latency=0.5))
    assert (slow.times >= simulate(sch, T).times + 0.5 - 1e-12).all()
    late = simulate(sch, T, deadline=1.0)
    assert (late.times <= 1.0).all() and not late.exact.any() and (late.residual > 0).all()


def test_chunked_simulator_validates_shapes():
    sch = make_scheme("partial", 6, 1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="chunk times must have shape"):
        simulate(sch, np.ones((3, 6)))
    with pytest.raises(ValueError, match="non-negative"):
        simulate(sch, -np.ones((3, 6, 2)))
    # the same checks as the per-worker simulator (written once, in gradcode.sim)
    with pytest.raises(ValueError, match="chunk times must be non-negative"):
        simulate(sch, np.full((3, 6, 2), np.nan))
    for bad in (0, -1.0, np.nan):
        with pytest.raises(ValueError, match="deadline must be positive"):
            simulate(sch, np.ones((3, 6, 2)), deadline=bad)
        with pytest.raises(ValueError, match="deadline must be positive"):
            simulate(make_scheme("frc", 6, 1), np.ones((3, 6)), deadline=bad)


@pytest.mark.parametrize(("name", "opts"), [("tandon_partial", {}), ("partial", {"l": 2})])
def test_segment_messages_decode_like_per_piece_messages(name, opts):
    from gradcode.comm import segment_messages

    sch = make_scheme(name, 6, 1, rng=np.random.default_rng(0), **opts)
    G = np.random.default_rng(2).standard_normal((sch.k, 4))
    rng = np.random.default_rng(3)
    per_piece, segmented = [], []
    for w in range(6):
        plan = sch.placement[w]
        done = plan[: len(plan) - int(rng.integers(0, 2))] if w in (1, 4) else plan
        per_piece += [sch.chunk_message(w, 0, c, G[c]) for c in done]
        segmented += segment_messages(sch, w, 0, [(c, G[c]) for c in done])
    expect = 2 * 6 if name == "tandon_partial" else len(per_piece)
    assert len(segmented) <= expect
    _, a = sch.master_update(None, 0, per_piece)
    _, b = sch.master_update(None, 0, segmented)
    assert a.exact == b.exact
    np.testing.assert_allclose(a.gradient, b.gradient, atol=1e-12)
