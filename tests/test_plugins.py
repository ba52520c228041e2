"""User-defined datasets and models: register_* from Python, entry points for CLI runs and grids."""

import importlib
import textwrap

import numpy as np
import pytest
import torch

from gradcode.cli import main
from gradcode.datasets import Dataset, available_datasets, load_dataset, register_dataset
from gradcode.datasets import _registry as dataset_registry
from gradcode.models import _registry as model_registry
from gradcode.models import available_models, make_model, register_model
from gradcode.plugins import call_accepting


def _toy(rng, test_fraction=0.25):
    X = rng.standard_normal((40, 3))
    y = (X[:, 0] > 0).astype(int)
    n_test = int(40 * test_fraction)
    return Dataset("toy", X[n_test:], y[n_test:], X[:n_test], y[:n_test], 2, (3,))


@pytest.fixture
def toy():
    register_dataset("toy", _toy)
    yield
    dataset_registry.unregister("toy")


def test_registered_dataset_loads_validated_and_listed(toy):
    assert "toy" in available_datasets()
    ds = load_dataset("toy", np.random.default_rng(0), test_fraction=0.5)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert len(ds.y_test) == 20  # test_fraction was passed through
    register_dataset("toy", _toy)  # the same loader again is fine


@pytest.mark.parametrize(
    "name, loader, match",
    [
        ("wine", _toy, "built in"),
        ("bad name!", _toy, "plain identifier"),
        ("x", 5, "callable"),
    ],
)
def test_register_dataset_errors(name, loader, match):
    with pytest.raises(ValueError, match=match):
        register_dataset(name, loader)


def test_register_twice_needs_replace(toy):
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy", lambda rng: _toy(rng))
    register_dataset("toy", lambda rng: _toy(rng), replace=True)


@pytest.mark.parametrize(
    "result, match",
    [
        ("nope", "returned str"),
        (
            Dataset(
                "b", np.zeros((3, 2)), np.array([0, 1, 5]), np.zeros((1, 2)), np.array([0]), 2, (2,)
            ),
            "label 5 in y_train is out of range 0..1",
        ),
        (
            Dataset(
                "b", np.zeros((3, 2)), np.array([0, 1, 1]), np.zeros((1, 3)), np.array([0]), 2, (2,)
            ),
            "X_test has shape",
        ),
        (
            Dataset(
                "b",
                np.full((3, 2), np.nan),
                np.array([0, 1, 1]),
                np.zeros((1, 2)),
                np.array([0]),
                2,
                (2,),
            ),
            "NaN",
        ),
    ],
)
def test_bad_loader_results_are_one_line_errors(result, match):
    register_dataset("bad", lambda: result)
    try:
        with pytest.raises(ValueError, match=match):
            load_dataset("bad", np.random.default_rng(0))
    finally:
        dataset_registry.unregister("bad")


def test_registered_model_is_cast_and_listed():
    def factory(input_shape, n_classes, rng):
        gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
        lin = torch.nn.Linear(int(np.prod(input_shape)), n_classes)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen))
        return torch.nn.Sequential(torch.nn.Flatten(), lin)

    register_model("lin", factory)
    try:
        assert "lin" in available_models()
        m = make_model("lin", (3,), 2, np.random.default_rng(0), dtype=torch.float64)
        assert next(m.parameters()).dtype == torch.float64
        m2 = make_model("lin", (3,), 2, np.random.default_rng(0), dtype=torch.float64)
        assert torch.equal(m[1].weight, m2[1].weight)  # the factory got the seeded rng
        register_model("notmod", lambda: 3)
        with pytest.raises(ValueError, match="not a torch.nn.Module"):
            make_model("notmod", (3,), 2, np.random.default_rng(0))
        with pytest.raises(ValueError, match="built in"):
            register_model("mlp", factory)
    finally:
        model_registry.unregister("lin")
        model_registry.unregister("notmod")


def test_call_accepting_passes_only_named_arguments():
    assert call_accepting(lambda a, b=2: (a, b), a=1, c=3) == (1, 2)
    assert call_accepting(lambda **kw: sorted(kw), a=1, c=3) == ["a", "c"]


# ------------------------------------------------------------------ entry points


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed-looking package 'gcplug' declaring one dataset and one model."""
    pkg = tmp_path / "gcplug"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        import numpy as np, torch
        from gradcode.datasets import Dataset

        def load(rng, test_fraction):
            X = rng.standard_normal((60, 4))
            y = (X[:, 0] + X[:, 1] > 0).astype(int)
            k = int(60 * test_fraction)
            return Dataset("gcdata", X[k:], y[k:], X[:k], y[:k], 2, (4,))

        def build(input_shape, n_classes):
            return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, n_classes))
    """)
    )
    info = tmp_path / "gcplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gcplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[gradcode.datasets]\ngcdata = gcplug:load\n\n[gradcode.models]\ngcnet = gcplug:build\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    dataset_registry.unregister("gcdata")
    model_registry.unregister("gcnet")


def test_entry_points_are_found(plugin):
    assert "gcdata" in available_datasets() and "gcnet" in available_models()
    ds = load_dataset("gcdata", np.random.default_rng(0))
    model = make_model("gcnet", ds.input_shape, ds.n_classes, np.random.default_rng(0))
    assert model(torch.from_numpy(ds.X_test)).shape == (len(ds.y_test), 2)


def _cli(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    cap = capsys.readouterr()
    return exc.value.code, cap.out + cap.err


def test_cli_train_with_plugin_dataset_and_model(plugin, capsys, tmp_path):
    code, out = _cli(
        capsys,
        "train",
        "--dataset",
        "gcdata",
        "--model",
        "gcnet",
        "-n",
        "4",
        "-s",
        "1",
        "--rounds",
        "3",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 0, out
    assert (tmp_path / "o" / "summary.json").is_file()


def test_toml_grid_with_plugin_dataset_and_model(plugin, capsys, tmp_path):
    (tmp_path / "g.toml").write_text(
        textwrap.dedent("""
        workers = 4
        rounds = 3
        lr = 0.5
        eval_every = 3
        jobs = 1
        [stragglers.se]
        base = "shifted-exp:a=1,mu=1"
        [grid]
        schemes = ["dgd", "pgc"]
        seeds = [0]
        tasks = ["gcdata/gcnet"]
        s = [1]
        partitionings = ["iid"]
    """)
    )
    code, out = _cli(
        capsys, "experiment", "run", str(tmp_path / "g.toml"), "--out", str(tmp_path / "res")
    )
    assert code == 0, out
    assert "gcdata" in (tmp_path / "res" / "results.csv").read_text()


def test_unknown_plugin_name_lists_the_choices(capsys, tmp_path):
    code, out = _cli(
        capsys,
        "train",
        "--dataset",
        "nosuch",
        "--rounds",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and "unknown dataset 'nosuch'" in out and "fashion_mnist" in out
