"""The quadratic stability analysis of heavy ball with stale gradients."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.codes import REGISTRY, make_scheme
from gradcode.stability import (
    FRESH,
    compensated,
    delayed,
    is_stable,
    max_stable_step,
    mean_age,
    predicted,
    spectral_radius,
    uniform,
)


@pytest.mark.parametrize(
    "profile,momentum,expected",
    [
        (FRESH, 0.9, 3.8),
        (uniform(3), 0.9, 0.070),
        (delayed(1), 0.9, 0.10),
        (FRESH, 0.0, 2.0),
        (uniform(3), 0.0, 1.17),
        (delayed(1), 0.0, 1.0),
    ],
)
def test_the_issues_six_numbers(profile, momentum, expected):
    assert max_stable_step(profile, momentum) == pytest.approx(expected, abs=0.005)


def test_staleness_shrinks_the_step_54x_at_momentum_0_9():
    ratio = max_stable_step(FRESH, 0.9) / max_stable_step(uniform(3), 0.9)
    assert 53 < ratio < 55


@given(st.floats(0.0, 0.97))
def test_fresh_heavy_ball_limit_is_polyaks(mu):
    assert max_stable_step(FRESH, mu) == pytest.approx(2 * (1 + mu), rel=1e-4)


@given(st.sampled_from([uniform(1), uniform(3), delayed(1), delayed(2), (0.7, 0.2, 0.1)]),
       st.floats(0.0, 0.95))  # fmt: skip
def test_the_limit_separates_stable_from_unstable(profile, mu):
    c = max_stable_step(profile, mu)
    assert is_stable(profile, 0.99 * c, mu)
    assert not is_stable(profile, 1.01 * c, mu)


def test_a_mix_with_fresh_gradients_can_be_more_stable_than_fresh_ones():
    # staleness is not always harmful: at momentum 0, averaging 60 % fresh and 40 % one
    # round old damps the oscillation of gradient descent (2.5 > 2) -- but not at 0.9
    assert max_stable_step((0.6, 0.4), 0.0) == pytest.approx(2.5, rel=1e-4)
    assert max_stable_step((0.6, 0.4), 0.9) < max_stable_step(FRESH, 0.9)


def test_kernels_of_the_corrections():
    p = uniform(3)
    np.testing.assert_allclose(predicted(p, 0.0)[:4], p)
    np.testing.assert_allclose(compensated(p, 1.0), [1, 0, 0, 0])
    assert predicted(p, 1.5).sum() == pytest.approx(1.0)  # a constant gradient is unchanged
    # prediction at the mean age more than doubles the stale step at momentum 0.9
    assert max_stable_step(predicted(p, mean_age(p)), 0.9) > 2.5 * max_stable_step(p, 0.9)


def test_gradient_descent_at_lr_h_1_converges_in_one_step():
    assert spectral_radius(FRESH, 1.0, 0.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("bad", [(), (0.5, 0.4), (-0.5, 1.5), (np.nan,)])
def test_bad_profiles_are_refused(bad):
    with pytest.raises(ValueError, match="staleness profile"):
        mean_age(bad)


@pytest.mark.parametrize("name", [n for n, i in REGISTRY.items() if i.stateful])
def test_every_stale_schemes_profile_is_a_distribution(name):
    scheme = make_scheme(name, 12, 2, rng=np.random.default_rng(0))
    profile = getattr(scheme, "staleness_profile", None)
    if name in ("partial", "tandon_partial"):
        assert profile is None  # fresh gradients (streamed within a round)
        return
    assert profile is not None
    assert sum(profile) == pytest.approx(1.0) and min(profile) >= 0


def test_scheme_profiles():
    assert make_scheme("pgc", 24, 3).staleness_profile == uniform(3)
    assert make_scheme("pgc_reference", 24, 3).staleness_profile == uniform(3)
    assert make_scheme("sr_sgc", 24, 3, rng=np.random.default_rng(0)).staleness_profile == (
        delayed(1)
    )
    assert make_scheme("pgc_memory", 24, 3).staleness_profile == (21 / 24, 3 / 24)
