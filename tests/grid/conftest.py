"""Shared fixtures: the CI-sized experiment grids, each run once per test session.

``tests/report`` uses the same runs (its conftest imports these fixtures; the
module-level cache makes the second fixture definition reuse the first's run).
"""

from pathlib import Path

import pytest

CI_TOML = Path(__file__).resolve().parents[2] / "experiments" / "ci_small.toml"

_RUNS: dict[str, tuple] = {}


def _once(key: str, build):
    if key not in _RUNS:
        _RUNS[key] = build()
    return _RUNS[key]


@pytest.fixture(scope="session")
def ci_config():
    from gradcode.grid.parse import load_experiment

    return load_experiment(CI_TOML)


@pytest.fixture(scope="session")
def ci_results(ci_config, tmp_path_factory):
    """(config, out_dir, ExperimentResult) of experiments/ci_small.toml."""
    from gradcode.grid.harness import run_experiment

    def build():
        out = tmp_path_factory.mktemp("ci_small")
        return ci_config, out, run_experiment(ci_config, out, progress=False)

    return _once("ci", build)


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
    from gradcode.grid.harness import run_experiment
    from gradcode.grid.parse import parse_experiment

    def build():
        cfg = parse_experiment(TUNED)
        out = tmp_path_factory.mktemp("tuned")
        return cfg, out, run_experiment(cfg, out, progress=False)

    return _once("tuned", build)
