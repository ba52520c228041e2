"""Smoke test of the partial-straggler reproduction (tiny trial count)."""

import csv

import numpy as np
import pytest

from gradcode.experiments import ramamoorthy2024


def test_run_writes_all_panels(tmp_path):
    summary = ramamoorthy2024.run(tmp_path, trials=20, rng=np.random.default_rng(0))
    for stem in ("a_mse_vs_deadline", "b_completion_vs_l", "c_ordering", "d_vandermonde"):
        assert (tmp_path / f"{stem}.png").stat().st_size > 0
        with (tmp_path / f"{stem}.csv").open() as fh:
            assert len(list(csv.reader(fh))) > 2
    ratios = summary["completion_ratio_proposed_over_original"]
    assert all(r <= 1 for r in ratios.values() if r == r)  # proposed never later
    assert summary["ordering"]["delta=4"]["qmax_optimal_l1"] == 1 + 16 * 4 + 6


def test_rounding_and_vandermonde_error_grow_as_expected():
    assert ramamoorthy2024.round_sig(np.array([123.456, -0.0012345]), 3).tolist() == [
        123.0,
        -0.00123,
    ]
    rng = np.random.default_rng(0)
    err = ramamoorthy2024.interpolation_error
    assert err(20, 6, 20, rng) > 100 * err(20, 16, 20, rng)


def test_bad_trials():
    with pytest.raises(ValueError, match="trials"):
        ramamoorthy2024.run(".", trials=1, rng=np.random.default_rng(0))
