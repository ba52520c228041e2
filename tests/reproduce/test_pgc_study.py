"""`gradcode reproduce pgc`: learning rates tuned per scheme on a seed it does not report."""

import math

import numpy as np
import pytest

from gradcode.reproduce import pgc_study as study


def test_each_scheme_gets_its_fastest_lr_on_the_tuning_seed(tmp_path):
    cfg = study.PGCStudyConfig(
        n=8, stragglers=(1,), rounds=25, schemes=("dgd", "pgc"), lrs=(0.5, 4.0), target=1e-2
    )
    assert cfg.tuning_seed == 1000 != cfg.seed
    rows = study.run(cfg, tmp_path)
    assert len(rows) == 4 * 2 and all(r["tuned"] and r["lr"] in cfg.lrs for r in rows)
    assert {"rounds_to_target", "time_to_target"} <= set(rows[0])
    assert (tmp_path / "pgc_suboptimality.png").is_file()
    # brute force on the tuning seed for one cell: the chosen lr is the fastest to target
    oracle = study.breast_cancer_oracle(8, "iid", cfg.lam, np.random.default_rng(cfg.tuning_seed))
    model = study.models(cfg, 1)["persistent"]
    for name in cfg.schemes:
        times = {}
        for lr in cfg.lrs:
            sub, clock, _ = study._train(cfg, name, 1, oracle, model, cfg.tuning_seed, lr)
            times[lr] = study._to_target(sub, clock, cfg.target)[0]
        (row,) = [r for r in rows if (r["partitions"], r["stragglers"], r["scheme"])
                  == ("iid", "persistent", name)]  # fmt: skip
        assert times[row["lr"]] == min(times.values()) < math.inf


def test_tuning_seed_must_differ_from_the_reported_seed():
    with pytest.raises(ValueError, match="tune_seed"):
        study.PGCStudyConfig(seed=3, tune_seed=3)
    assert study.PGCStudyConfig(lrs=()).lrs == ()  # fixed lr: no tuning
