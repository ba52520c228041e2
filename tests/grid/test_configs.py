"""The experiment files in experiments/ parse, and the study's grid is the one promised."""

from pathlib import Path

import pytest

from gradcode.grid.parse import load_experiment

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def needs_shared_traces(path: Path) -> None:
    """Skip a grid that replays the shared AWS traces where they are absent (clean CI)."""
    if "../shared/traces/" in path.read_text() and not (REPO.parent / "shared" / "traces").is_dir():
        pytest.skip("the shared traces (../shared/traces) are absent")


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("*.toml")), ids=lambda p: p.name)
def test_every_experiment_file_parses(path, monkeypatch):
    needs_shared_traces(path)
    monkeypatch.chdir(REPO)  # grids name files relative to the repository root
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


def test_the_decisive_study(monkeypatch):
    """Issue 26: the schemes, regimes, tuning axes and seeds the study promises."""
    monkeypatch.chdir(REPO)
    paths = [EXPERIMENTS / f"{n}.toml" for n in ("decisive", "decisive_cnn", "decisive_adam")]
    for p in paths:
        needs_shared_traces(p)
    cfg, cnn, adam = (load_experiment(p) for p in paths)
    assert {c.scheme for c in cfg.cells()} == {
        "dgd", "is_sgd", "frc", "crc", "cyclic_mds", "sgc", "partial",
        "sr_sgc", "pgc+none", "pgc", "pgc_reference", "pgc_memory",
    }  # fmt: skip
    regimes = {"shifted_exp", "pareto", "persistent", "bursty", "crash", "aws_sydney",
               "aws_sydney_fit"}  # fmt: skip
    assert {c.straggler for c in cfg.cells()} == regimes
    assert cfg.delay_specs["aws_sydney"].base.startswith("trace:path=../shared/traces/")
    assert {0.0, 0.5, 0.9} <= set(cfg.tune.momentum)
    assert {"none", "auto"} < set(cfg.tune.stale_correction)
    for c in (cfg, cnn, adam):
        assert c.tune.seed not in {cell.seed for cell in c.cells()}
        assert len({cell.seed for cell in c.cells()}) >= 3 and 3 in {cell.s for cell in c.cells()}
        assert all(c.run_config(cell).target_accuracy for cell in c.cells())
    assert {c.s for c in cfg.cells()} == {1, 3}
    assert {(c.dataset, c.model, c.partitioning) for c in cfg.cells()} == {
        ("adult", "mlp", "iid"),
        ("adult", "mlp", "label_sorted"),
        ("fashion_mnist", "mlp", "iid"),
    }
    assert all(cnn.run_config(c).target_accuracy == 0.86 for c in cnn.cells())
    assert {"pgc_memory", "pgc", "pgc+none"} <= {c.scheme for c in cnn.cells()}
    assert adam.optimizer == "adam"


WIDE_LR = (0.1, 0.2, 0.4, 0.8, 1.6)


@pytest.mark.parametrize(
    ("name", "base_name", "optimizer", "lr"),
    [("decisive_lr", "decisive", "sgd", WIDE_LR),  # the lr candidates change
     ("decisive_nesterov", "decisive_lr", "nesterov", WIDE_LR)],  # the optimizer changes
)  # fmt: skip
def test_each_follow_up_changes_one_thing(monkeypatch, name, base_name, optimizer, lr):
    """decisive_lr.toml widens decisive.toml's lr grid; decisive_nesterov.toml is
    decisive_lr.toml on Nesterov momentum.  Their cells are the base grid's cells (same
    seeds, regimes, targets, caps, tuning seed and regime), so a cell here and there
    compare one to one (``gradcode compare``)."""
    for n in (base_name, name):
        needs_shared_traces(EXPERIMENTS / f"{n}.toml")
    monkeypatch.chdir(REPO)
    base, other = (load_experiment(EXPERIMENTS / f"{n}.toml") for n in (base_name, name))
    assert base.optimizer == "sgd" and other.optimizer == optimizer
    assert tuple(other.tune.lr) == lr and other.tune.momentum == base.tune.momentum
    assert (other.tune.seed, other.tune.straggler) == (base.tune.seed, base.tune.straggler)
    same = {c: base.run_config(c) for c in base.cells()}
    for cell in other.cells():
        assert cell in same, cell
        a, b = same[cell], other.run_config(cell)
        for key in ("workers", "rounds", "batch_size", "target_accuracy", "eval_every"):
            assert getattr(a, key) == getattr(b, key), key
        assert base.delay_specs[cell.straggler] == other.delay_specs[cell.straggler]
    assert {c.scheme for c in other.cells()} == {"dgd", "is_sgd", "partial", "pgc_memory"}


def test_a_task_can_fix_its_own_momentum():
    """decisive_ray.toml gives each scheme its tuned (lr, momentum) as a task's own."""
    from gradcode.grid.parse import parse_experiment

    def grid(tasks):
        return {"workers": 6, "momentum": 0.9, "stragglers": {"se": {"base": "shifted-exp"}},
                "grid": {"schemes": ["dgd"], "seeds": [0], "s": [1], "partitionings": ["iid"],
                         "tasks": tasks}}  # fmt: skip

    cfg = parse_experiment(grid([{"dataset": "breast_cancer", "model": "logreg", "momentum": 0.5},
                                 "wine/logreg"]))  # fmt: skip
    got = {c.dataset: cfg.run_config(c).momentum for c in cfg.cells()}
    assert got == {"breast_cancer": 0.5, "wine": 0.9}
    with pytest.raises(ValueError, match="momentum must be in"):
        parse_experiment(grid([{"dataset": "wine", "model": "logreg", "momentum": 1.5}]))
