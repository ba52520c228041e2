"""Grids with stale-gradient corrections: ``pgc+auto`` schemes and ``[tune] stale_correction``."""

from __future__ import annotations

import pytest

from gradcode.grid.parse import parse_experiment
from gradcode.grid.schema import TuneCell


def _raw(schemes, tune=None):
    raw = {
        "workers": 6,
        "rounds": 3,
        "stragglers": {"se": {"base": "shifted-exp:a=1,mu=1"}},
        "grid": {
            "schemes": schemes,
            "seeds": [0],
            "tasks": ["breast_cancer/logreg"],
            "s": [2],
            "partitionings": ["iid"],
        },
    }
    if tune is not None:
        raw["tune"] = tune
    return raw


def test_a_scheme_with_a_correction_is_its_own_scheme():
    cfg = parse_experiment(_raw(["dgd", "pgc", "pgc+auto", "sr_sgc+predict:horizon=2"]))
    by = {c.scheme: cfg.run_config(c) for c in cfg.cells()}
    assert (by["pgc"].scheme, by["pgc"].stale_correction) == ("pgc", "none")
    assert (by["pgc+auto"].scheme, by["pgc+auto"].stale_correction) == ("pgc", "auto")
    assert by["sr_sgc+predict:horizon=2"].stale_correction == "predict:horizon=2"
    assert by["dgd"].stale_correction == "none"


@pytest.mark.parametrize(
    "schemes,tune,needle",
    [
        (["dgd+predict"], None, "dgd applies no stale gradients"),
        (["nope+auto"], None, "unknown scheme 'nope\\+auto'"),
        (["pgc+magic"], None, "stale_correction must be one of"),
        (["pgc"], {"lr": [0.1], "stale_correction": ["auto", "magic"]}, "must be one of"),
        (["pgc"], {"lr": [0.1], "stale_correction": "auto"}, "must be a list"),
    ],
)
def test_bad_corrections_are_refused_when_parsed(schemes, tune, needle):
    with pytest.raises(ValueError, match=needle):
        parse_experiment(_raw(schemes, tune))


def test_tuning_over_corrections_covers_stale_schemes_only():
    tune = {"lr": [0.1, 0.5], "stale_correction": ["none", "auto", "predict"]}
    cfg = parse_experiment(_raw(["dgd", "pgc", "pgc+auto"], tune))
    cells = cfg.tuning_cells()
    per = {}
    for tc in cells:
        per.setdefault(tc.scheme, set()).add(tc.stale_correction)
    assert per == {"dgd": {None}, "pgc": {"none", "auto", "predict"}, "pgc+auto": {None}}
    assert len({tc.cell_id for tc in cells}) == len(cells) == 2 * (1 + 3 + 1)
    tc = next(t for t in cells if t.scheme == "pgc" and t.stale_correction == "predict")
    assert cfg.run_config(tc).stale_correction == "predict"
    plain = TuneCell(tc.cell, 0.1, 0.9)
    assert cfg.run_config(plain).stale_correction == "none"
    # the harness hands a chosen (lr, momentum, correction) to the reported cell
    cell = next(c for c in cfg.cells() if c.scheme == "pgc")
    assert cfg.run_config(cell, 0.5, 0.0, "auto").stale_correction == "auto"
