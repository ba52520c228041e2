"""A grid's size is counted without expanding it, and `experiment run` caps it (issue 21.6)."""

from __future__ import annotations

import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradcode.cli_experiment  # noqa: F401 - imported before any measurement
from gradcode.cli import main
from gradcode.grid.parse import parse_experiment
from gradcode.grid.size import union_size

SCHEMES = ["dgd", "frc", "crc", "is_sgd", "pgc", "cyclic_mds"]
TASKS = ["breast_cancer/logreg", "wine/logreg", "digits/mlp"]
STRAGGLERS = {"a": {"base": "shifted-exp"}, "b": {"base": "pareto:alpha=2"}}


def subset(items, min_size=1):
    return st.lists(st.sampled_from(items), min_size=min_size, max_size=len(items), unique=True)


axes = st.fixed_dictionaries(
    {
        "schemes": subset(SCHEMES),
        "stragglers": subset(list(STRAGGLERS)),
        "seeds": subset(list(range(5))),
        "tasks": subset(TASKS),
        "s": subset([1, 2, 3]),
        "partitionings": subset(["iid", "label_sorted"]),
    }
)
overrides = st.dictionaries(
    st.sampled_from(["schemes", "stragglers", "seeds", "tasks", "s", "partitionings"]),
    st.just(None),
    max_size=3,
)


@st.composite
def grids(draw):
    base = draw(axes)
    extra = []
    for keys in draw(st.lists(overrides, max_size=3)):
        other = draw(axes)
        extra.append({k: other[k] for k in keys})
    raw = {"workers": 6, "stragglers": STRAGGLERS, "grid": base, "grids": extra}
    if draw(st.booleans()):
        raw["grid"]["skip_base"] = True
        if not extra:
            extra.append({})
    if draw(st.booleans()):
        tune = {"lr": draw(subset([0.1, 0.5, 1.0])), "seed": 99}
        if draw(st.booleans()):
            tune["momentum"] = [0.0, 0.9]
        if draw(st.booleans()):
            tune["straggler"] = draw(st.sampled_from(list(STRAGGLERS)))
        if draw(st.booleans()):  # stale schemes run once per correction
            tune["stale_correction"] = draw(subset(["none", "auto", "predict"]))
        raw["tune"] = tune
    return raw


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=grids())
def test_the_count_equals_the_expanded_grid(raw):
    cfg = parse_experiment(raw)
    size = cfg.size()
    assert size.exact
    assert size.cells == len(cfg.cells())
    assert size.skipped == len(cfg.skipped())
    assert size.tuning_runs == len(cfg.tuning_cells())


def test_union_size_falls_back_to_an_upper_bound_past_its_term_budget(monkeypatch):
    import gradcode.grid.size as size

    boxes = [(frozenset(range(i, i + 3)), frozenset("xy")) for i in range(6)]
    assert union_size(boxes) == (8 * 2, True)
    monkeypatch.setattr(size, "MAX_TERMS", 4)
    assert size.union_size(boxes) == (6 * 3 * 2, False)


def _toml(tmp_path, seeds: int, name="grid.toml"):
    path = tmp_path / name
    path.write_text(
        "workers = 4\nrounds = 3\neval_every = 3\n"
        '[stragglers.a]\nbase = "shifted-exp"\n[stragglers.b]\nbase = "pareto:alpha=2"\n'
        f'[grid]\nschemes = ["dgd", "is_sgd"]\nseeds = {list(range(seeds))}\n'
        'tasks = ["wine/logreg"]\ns = [1, 2]\npartitionings = ["iid"]\n'
    )
    return path


def _cli(capsys, *argv):
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_million_cells_are_refused_at_once_without_allocating_them(tmp_path, capsys):
    config = _toml(tmp_path, 125_000)  # 2 schemes x 2 s x 2 stragglers x 125k seeds = 10^6
    t0 = time.process_time()
    tracemalloc.start()
    try:
        code, _, err = _cli(capsys, "experiment", "run", str(config), "--out", str(tmp_path / "o"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    seconds = time.process_time() - t0
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "1,000,000 cells" in lines[0] and "--yes" in lines[0], err
    assert peak < 100 * 2**20, peak  # the cells themselves would take hundreds of MB
    assert seconds < 20, seconds  # about 3 s, under tracemalloc, on a busy 2-core machine
    assert not (tmp_path / "o").exists()  # nothing written


def test_the_cap_counts_tuning_runs_and_yes_lifts_it(tmp_path, capsys, monkeypatch):
    import gradcode.cli_experiment as cli_experiment

    monkeypatch.setattr(cli_experiment, "MAX_RUNS", 7)
    config = _toml(tmp_path, 1)  # 8 cells
    code, _, err = _cli(capsys, "experiment", "run", str(config), "--out", str(tmp_path / "o"))
    assert code == 2 and "8 cells" in err and "limit of 7 runs" in err
    assert not (tmp_path / "o").exists()
    code, out, err = _cli(
        capsys, "experiment", "run", str(config), "--out", str(tmp_path / "o"), "--yes", "--quiet"
    )
    assert code == 0 and "ran 8 cell(s)" in out


def test_the_cell_count_is_printed_before_the_grid_runs(tmp_path, capsys):
    config = _toml(tmp_path, 1)
    code, _, err = _cli(capsys, "experiment", "run", str(config), "--out", str(tmp_path / "o"))
    assert code == 0
    assert err.splitlines()[0].startswith("grid: 8 cells (0 skipped), 4 workers")


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_count_matches_a_small_grid_from_toml(tmp_path, seeds):
    from gradcode.grid.parse import load_experiment

    cfg = load_experiment(_toml(tmp_path, seeds))
    assert cfg.size().cells == len(cfg.cells()) == 8 * seeds
