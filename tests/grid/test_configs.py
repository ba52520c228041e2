"""The experiment files in experiments/ parse, and the study's grid is the one promised."""

from pathlib import Path

import pytest

from gradcode.grid.parse import load_experiment

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_experiment_file_parses(path):
    cfg = load_experiment(path)
    assert cfg.cells()


def test_the_study_grid():
    cfg = load_experiment(EXPERIMENTS / "pgc_study.toml")
    cnn = load_experiment(EXPERIMENTS / "pgc_study_cnn.toml")
    cells = cfg.cells()
    assert cfg.workers == cnn.workers == 24 and cfg.tune is not None and cfg.reuse
    tasks = {(c.dataset, c.model) for c in cells + cnn.cells()}
    assert {("fashion_mnist", "cnn"), ("fashion_mnist", "mlp"), ("adult", "mlp")} <= tasks
    assert {c.scheme for c in cells} == {"dgd", "is_sgd", "frc", "crc", "cyclic_mds", "sgc",
                                         "partial", "sr_sgc", "pgc", "pgc_reference"}  # fmt: skip
    assert {c.straggler for c in cells} == {"shifted_exp", "pareto", "persistent", "bursty",
                                            "crash"}  # fmt: skip
    assert {c.s for c in cells} == {1, 3} and {c.seed for c in cells} == {0, 1, 2}
    assert {c.partitioning for c in cells} == {"iid", "label_sorted"}
    for c in cells:  # every run trains to a stated target
        assert cfg.run_config(c).target_accuracy is not None
    assert {c.scheme for c in cnn.cells()} == {c.scheme for c in cells}
    assert all(cnn.run_config(c).target_accuracy == 0.85 for c in cnn.cells())


def test_the_ray_subset():
    cfg = load_experiment(EXPERIMENTS / "pgc_study_ray.toml")
    cells = cfg.cells()
    assert cfg.backend == "ray" and cfg.workers == 24 and cfg.time_scale
    assert {c.scheme for c in cells} == {"dgd", "is_sgd", "frc", "crc", "partial", "pgc"}
    assert len({c.straggler for c in cells}) == 2 and {c.s for c in cells} == {3}
    assert len({c.seed for c in cells}) == 2 and len(cells) == 24
