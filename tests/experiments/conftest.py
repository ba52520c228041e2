"""Shared fixture: the CI-sized experiment grid, run once per test session."""

from pathlib import Path

import pytest

CI_TOML = Path(__file__).resolve().parents[2] / "experiments" / "ci_small.toml"


@pytest.fixture(scope="session")
def ci_config():
    from gradcode.experiments.harness import load_experiment

    return load_experiment(CI_TOML)


@pytest.fixture(scope="session")
def ci_results(ci_config, tmp_path_factory):
    """(config, out_dir, ExperimentResult) of experiments/ci_small.toml."""
    from gradcode.experiments.harness import run_experiment

    out = tmp_path_factory.mktemp("ci_small")
    res = run_experiment(ci_config, out, progress=False)
    return ci_config, out, res


TUNED = {
    "name": "tuned_tiny",
    "workers": 6,
    "rounds": 6,
    "eval_every": 2,
    "stragglers": {"se": {"base": "shifted-exp:a=1,mu=1"}},
    "grid": {
        "schemes": ["dgd", "is_sgd", "pgc"],
        "seeds": [0, 1],
        "tasks": ["breast_cancer/logreg"],
        "s": [1],
        "partitionings": ["iid"],
    },
    "tune": {"lr": [0.05, 0.5, 4.0], "seed": 7},
    "report": {"target_at": 0.5},
}


@pytest.fixture(scope="session")
def tuned_results(tmp_path_factory):
    """(config, out_dir, ExperimentResult) of a tiny grid with a [tune] table."""
    from gradcode.experiments.harness import parse_experiment, run_experiment

    cfg = parse_experiment(TUNED)
    out = tmp_path_factory.mktemp("tuned")
    return cfg, out, run_experiment(cfg, out, progress=False)
