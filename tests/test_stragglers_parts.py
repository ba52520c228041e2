"""The clock model with parts: its formula, load independence of draws, stalls, files, specs."""

import numpy as np
import pytest

from gradcode.codes import make_code, make_scheme
from gradcode.runtime import LocalCluster, Schedule
from gradcode.runtime.config import DelaySpec, parse_delay
from gradcode.sim import simulate_model
from gradcode.stragglers import (
    AdditivePause,
    Bursty,
    ClockModel,
    CrashStop,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
    Stall,
    read_model,
    write_model,
)
from gradcode.stragglers.distributions import (
    Constant,
    Empirical,
    Exp,
    LogNormal,
    Normal,
    ParetoTail,
    parse_part,
)

from .runtime.helpers import oracle

RNG = np.random.default_rng


def test_constant_parts_give_the_formula():
    m = ClockModel(Constant(2.0), Constant(0.5), Constant(1e6), 5e5, Constant(0.25))
    np.testing.assert_array_equal(m.sample(RNG(0), 2, 3, load=4), np.full((2, 3), 4.75))
    np.testing.assert_array_equal(m.sample(RNG(0), 1, 3, load=[0, 1, 2]), [[2.75, 3.25, 3.75]])


def test_draws_do_not_depend_on_load():
    m = ClockModel(LogNormal(1.0, 0.5, 0.3), Exp(0.1, 0.05), common=Normal(0, 0.1))
    a, b = m.sample(RNG(3), 50, 6, load=1), m.sample(RNG(3), 50, 6, load=3)
    lat = ClockModel(m.latency, Constant(0.0), common=m.common).sample(RNG(3), 50, 6)
    np.testing.assert_allclose((b - lat) / (a - lat), 3.0)  # same draws, compute x 3


@pytest.mark.parametrize(
    "part,mean,sd",
    [
        (Exp(1.0, 2.0), 3.0, 2.0),
        (Normal(1.0, 0.5), 1.0, 0.5),
        (
            LogNormal(1.0, 2.0, 0.5),
            1.0 + 2.0 * np.exp(0.125),
            2.0 * np.sqrt((np.e**0.25 - 1) * np.e**0.25),
        ),
        (ParetoTail(1.0, 3.0), 1.5, np.sqrt(3 / 4 / 1.0)),
    ],
)
def test_parts_have_their_moments(part, mean, sd):
    x = part.draw(RNG(0).random(400_000))
    assert x.mean() == pytest.approx(mean, rel=0.01)
    assert x.std() == pytest.approx(sd, rel=0.05)


def test_empirical_part_stays_in_range_and_keeps_quantiles():
    x = RNG(0).lognormal(0, 1, 10_000)
    e = Empirical.of(x, 201)
    draws = e.draw(RNG(1).random(100_000))
    assert x.min() <= draws.min() and draws.max() <= x.max()
    assert np.quantile(draws, 0.9) == pytest.approx(np.quantile(x, 0.9), rel=0.02)


def test_stall_waves_hit_rounds_together():
    stall = Stall(prob=(0.2,), loads=(0.0,), share=Constant(0.5), size=Constant(10.0))
    m = ClockModel(Constant(1.0), Constant(0.0), stall=stall)
    t = m.sample(RNG(0), 20_000, 40)
    hit = t > 5
    waves = hit.any(axis=1)
    assert waves.mean() == pytest.approx(0.2, abs=0.01)
    assert hit[waves].mean() == pytest.approx(0.5, abs=0.01)
    assert set(np.unique(t)) == {1.0, 11.0}


def test_stall_probability_follows_load_and_is_coupled():
    stall = Stall(prob=(0.0, 0.3), loads=(0.0, 2.0), share=Constant(1.0), size=Constant(5.0))
    m = ClockModel(Constant(1.0), Constant(0.0), stall=stall)
    at = {L: (m.sample(RNG(4), 10_000, 2, load=L) > 3)[:, 0] for L in (0, 1, 2, 9)}
    assert not at[0].any()
    assert at[1].mean() == pytest.approx(0.15, abs=0.01) and at[2].mean() == pytest.approx(
        0.3, abs=0.015
    )
    assert (at[1] <= at[2]).all() and (at[2] == at[9]).all()  # a wave at load 1 is one at load 2


def test_chunk_times_sum_to_the_time_at_the_load():
    m = ClockModel(LogNormal(0.5, 1.0, 0.2), Exp(0.2, 0.1), common=Normal(0, 0.05))
    finish = np.cumsum(m.chunk_times(RNG(5), 30, 4, 3, chunk_load=0.5), axis=-1)
    for c in range(3):
        np.testing.assert_allclose(finish[..., c], m.sample(RNG(5), 30, 4, load=0.5 * (c + 1)))


LINEAR = [
    ShiftedExponential(1.0, 1.0),
    AdditivePause(1.0, 2.0, 0.2),
    Pareto(2.5, 1.0),
    PersistentSlow(ShiftedExponential(), k=2, kappa=3.0),
    Bursty(Pareto(), 0.1, 0.5, 4.0),
    CrashStop(AdditivePause(), count=1, at_round=2, rejoin_after=3),
]


@pytest.mark.parametrize("model", LINEAR, ids=lambda m: type(m).__name__)
def test_linear_models_keep_their_chunk_numbers(model):
    """The new hooks leave every existing model's numbers as they were (bit for bit)."""
    old = model.sample_chunks(RNG(2), 20, 6, 3) * 0.4
    np.testing.assert_array_equal(model.chunk_times(RNG(2), 20, 6, 3, 0.4), old)
    assert model.with_message_bytes(1e6) is model and model.master_time == 0.0
    assert not model.load_aware


def test_message_bytes_come_from_the_cluster_and_the_spec_wins():
    m = ClockModel(Constant(1.0), Constant(0.0), bandwidth=Constant(100.0))
    assert m.sample(RNG(0), 1, 1)[0, 0] == 1.0  # no size yet: sending is free
    assert m.with_message_bytes(50).sample(RNG(0), 1, 1)[0, 0] == 1.5
    fixed = ClockModel(Constant(1.0), Constant(0.0), Constant(100.0), message_bytes=200.0)
    assert fixed.with_message_bytes(50) is fixed
    wrapped = PersistentSlow(m, k=1, kappa=2.0).with_message_bytes(50)
    assert wrapped.sample(RNG(0), 1, 2).tolist() == [[3.0, 1.5]]
    code = make_code("dgd", 2, 0)
    assert simulate_model(code, m, RNG(0), 1, message_bytes=50).times.tolist() == [1.5]


def test_local_cluster_passes_gradient_bytes_and_master_time():
    n = 4
    orc = oracle(n)  # float64 logistic regression: num_params * 8 bytes
    model = ClockModel(Constant(1.0), Constant(0.0), bandwidth=Constant(8.0 * orc.num_params),
                       master=0.25)  # fmt: skip
    scheme = make_scheme("dgd", n, 0)
    cluster = LocalCluster(scheme, orc, Schedule(model, 0, 2, n))
    out = cluster.run_round(0, orc.initial_weights())
    assert out.duration == pytest.approx(2.25)  # 1 latency + 1 sending + 0.25 master
    assert simulate_model(make_code("dgd", n, 0), model, RNG(0), 3).times.tolist() == [1.25] * 3


def test_spec_and_file_round_trip(tmp_path):
    spec = (
        "latency=lognormal/1/0.5/0.2,compute=exp/0.1/0.05,bandwidth=1e6,message_bytes=4e5,"
        "common=normal/0/0.05,stall=exp/20/5,stall_prob=0.1,stall_share=0.2,master=0.01"
    )
    m = parse_delay(f"parts:{spec}")
    assert isinstance(m, ClockModel) and m.stall.prob == (0.1,) and m.master == 0.01
    path = write_model(tmp_path / "m.json", m, {"note": "test"})
    back = parse_delay(f"model:path={path}")
    np.testing.assert_array_equal(
        back.sample(RNG(1), 20, 5, load=2), m.sample(RNG(1), 20, 5, load=2)
    )
    assert read_model(path) == back
    slow = DelaySpec(f"model:path={path}", persistent="k=1,kappa=4").build()
    assert isinstance(slow, PersistentSlow) and slow.load_aware


@pytest.mark.parametrize(
    "spec,msg",
    [
        ("parts:latency=fast", "latency: 'fast' is not a number or one of"),
        ("parts:latency=exp/1", "exp takes 2 numbers"),
        ("parts:speed=1", "unknown key 'speed'; valid keys: bandwidth"),
        ("parts:stall_prob=0.1", "need stall=PART"),
        ("parts:stall=1,stall_prob=2", "stall prob must be probabilities"),
        ("parts:latency=lognormal/0/-1/0.1", "lognormal median must be a finite number > 0"),
        ("parts:master=-1", "master must be a finite number >= 0"),
        ("model:", "needs path=FILE.json"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, msg):
    with pytest.raises(ValueError, match=msg):
        parse_delay(spec)


def test_bad_model_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a gradcode clock model"):
        read_model(bad)
    bad.write_text('{"format": "gradcode-clock/1", "model": {"latncy": {}}}')
    with pytest.raises(ValueError, match="unknown field.s. latncy"):
        read_model(bad)
    with pytest.raises(ValueError, match="model file not found"):
        read_model(tmp_path / "none.json")


def test_trace_part_reads_per_round_and_worker(tmp_path):
    f = tmp_path / "lat.csv"
    f.write_text("1,2\n3,4\n")
    m = ClockModel(parse_part(f"trace/{f}"), Constant(1.0))
    assert m.sample(RNG(0), 3, 2, load=1).tolist() == [[2, 3], [4, 5], [2, 3]]
