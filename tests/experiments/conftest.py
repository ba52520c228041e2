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
