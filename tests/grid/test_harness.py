"""The experiment harness: TOML parsing/validation, grid runs, shared schedules, resume,
failure isolation and the tidy CSVs."""

import json
import math
import os

import numpy as np
import pytest

from gradcode.grid import pool
from gradcode.grid.harness import run_experiment
from gradcode.grid.parse import load_experiment, parse_experiment
from gradcode.grid.results import is_finished, read_csv

from . import conftest

BASE = {
    "workers": 6,
    "rounds": 4,
    "eval_every": 2,
    "stragglers": {"se": {"base": "shifted-exp:a=1,mu=1"}},
    "grid": {
        "schemes": ["dgd", "pgc"],
        "seeds": [0],
        "tasks": ["breast_cancer/logreg"],
        "s": [1],
        "partitionings": ["iid"],
    },
}


def _with(**changes):
    raw = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        d = raw
        for p in path:
            d = d[p]
        if value is None:
            d.pop(key)
        else:
            d[key] = value
    return raw


# ---------------------------------------------------------------- parsing


def test_parse_ci_small(ci_config):
    cfg = ci_config
    assert cfg.workers == 6 and cfg.rounds == 12 and cfg.name == "ci_small"
    assert set(cfg.delay_specs) == {"shifted_exp", "persistent"}
    assert cfg.delay_specs["persistent"].persistent == "k=1,kappa=5"
    cells = cfg.cells()
    assert len(cells) == 2 * 2 * 5  # stragglers x seeds x buildable schemes
    assert len({c.cell_id for c in cells}) == len(cells)
    skipped = cfg.skipped()
    assert {c.scheme for c, _ in skipped} == {"cyclic_mds"} and len(skipped) == 4
    assert "odd" in skipped[0][1]
    rc = cfg.run_config(cells[0])
    assert rc.workers == 6 and rc.stragglers == 2 and rc.seed == cells[0].seed
    assert rc.delay == cfg.delay_specs[cells[0].straggler]


def test_subgrids_union_and_task_lr():
    raw = _with(grids=[{"tasks": [{"dataset": "wine", "model": "logreg", "lr": 0.1}], "s": [2]}])
    cfg = parse_experiment(raw)
    cells = cfg.cells()
    assert len(cells) == 2 + 2
    wine = [c for c in cells if c.dataset == "wine"]
    assert {c.s for c in wine} == {2}
    assert cfg.run_config(wine[0]).lr == 0.1
    assert cfg.run_config(cells[0]).lr == cfg.lr


def test_frc_not_dividing_is_skipped_with_note():
    cfg = parse_experiment(_with(grid__schemes=["dgd", "frc"], grid__s=[1, 2, 3]))
    assert {(c.scheme, c.s) for c, _ in cfg.skipped()} == {("frc", 3)}
    assert "divide" in cfg.skipped()[0][1]
    assert len(cfg.cells()) == 3 + 2


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"grid__schemes": ["dgd", "nope"]}, "unknown scheme 'nope'"),
        ({"grid__tasks": ["iris/logreg"]}, "unknown dataset 'iris'"),
        ({"grid__tasks": ["wine/transformer"]}, "unknown model 'transformer'"),
        ({"grid__tasks": ["wine"]}, "dataset/model"),
        ({"grid__partitionings": ["random"]}, "unknown partitioning 'random'"),
        ({"grid__stragglers": ["se", "heavy"]}, "unknown straggler model 'heavy'"),
        ({"stragglers": {"se": {"base": "gamma:k=2"}}}, "unknown delay model 'gamma'"),
        ({"stragglers": {"se": {"base": "shifted-exp:a=1,nu=1"}}}, "stragglers.se"),
        ({"stragglers": {"se": {"base": "shifted-exp", "slow": "x"}}}, "unknown key"),
        ({"stragglers": {}}, "at least one straggler"),
        ({"grid__s": [6]}, "s must be in 0..5"),
        ({"grid__seeds": [0.5]}, "seeds must be integers"),
        ({"grid__seeds": []}, "non-empty list"),
        ({"grid__schemes": None}, "missing axis"),
        ({"grid__colour": ["red"]}, "unknown key"),
        ({"grid": None}, "missing [grid]"),
        ({"wrokers": 4}, "unknown key(s) ['wrokers']"),
        ({"workers": "six"}, "workers must be int"),
        ({"rounds": 0}, "rounds must be >= 1"),
        ({"lr": -1.0}, "lr must be positive"),
        ({"optimizer": "lbfgs"}, "optimizer must be"),
        ({"backend": "mpi"}, "backend must be"),
        ({"report": {"target_at": 2.0}}, "target_at"),
        ({"report": {"colour": 1}}, "[report]: unknown key"),
        ({"grids": [{"lr": 0.1}]}, "[[grids]] #1: unknown key"),
    ],
)
def test_validation_errors(changes, message):
    with pytest.raises(ValueError) as exc:
        parse_experiment(_with(**changes))
    assert message in str(exc.value)


def test_load_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        load_experiment(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("workers = [\n")
    with pytest.raises(ValueError, match="invalid TOML"):
        load_experiment(bad)


# ---------------------------------------------------------------- running


def test_grid_runs_end_to_end(ci_results):
    cfg, out, res = ci_results
    assert res.failed == [] and len(res.ran) == len(cfg.cells())
    rows = read_csv(out / "results.csv")
    assert len(rows) == len(cfg.cells())
    assert {r["cell_id"] for r in rows} == {c.cell_id for c in cfg.cells()}
    for r in rows:
        assert r["status"] == "ok", r
        assert r["rounds"] == 12 and r["workers"] == 6 and r["lr"] == 0.5
        assert 0 <= r["test_accuracy"] <= 1 and r["wall_clock"] > 0
        assert r["time_per_round"] == pytest.approx(r["wall_clock"] / 12)
    rounds = read_csv(out / "rounds.csv")
    assert len(rounds) == 12 * len(rows)
    assert {"cell_id", "scheme", "straggler", "seed", "round", "duration"} <= set(rounds[0])
    evals = [r for r in rounds if r["train_loss"] is not None]
    assert len(evals) == 4 * len(rows)  # eval_every = 3, 12 rounds
    skipped = read_csv(out / "skipped.csv")
    assert len(skipped) == 4 and {r["scheme"] for r in skipped} == {"cyclic_mds"}
    assert json.loads((out / "experiment.json").read_text())["workers"] == 6


def test_schemes_in_a_cell_share_the_schedule(ci_results):
    cfg, out, _ = ci_results
    rows = read_csv(out / "results.csv")
    digest = {}
    for r in rows:
        digest.setdefault((r["straggler"], r["seed"]), set()).add(r["schedule_digest"])
    assert all(len(d) == 1 for d in digest.values())  # one schedule per (straggler, seed)
    assert len({next(iter(d)) for d in digest.values()}) == len(digest)  # seeds differ

    # end to end: dgd waits for all workers, is_sgd for the first n - s, both at load 1;
    # with the same schedule is_sgd's arrivals are the first n - s of dgd's, every round.
    def log(scheme, straggler="shifted_exp", seed=1):
        cell = next(
            c for c in cfg.cells() if (c.scheme, c.straggler, c.seed) == (scheme, straggler, seed)
        )
        lines = (out / "runs" / cell.cell_id / "rounds.jsonl").read_text().splitlines()
        return [json.loads(x) for x in lines]

    for straggler in ("shifted_exp", "persistent"):
        full, first = log("dgd", straggler), log("is_sgd", straggler)
        for a, b in zip(full, first, strict=True):
            assert len(b["arrived"]) == 6 - 2
            assert b["arrived"] == a["arrived"][:4]
            assert b["duration"] <= a["duration"]


def test_resume_skips_finished_cells(ci_results, monkeypatch):
    cfg, out, _ = ci_results
    calls = []
    real = pool.JOBS["run"]  # how the harness runs one cell (in-process with jobs = 1)
    monkeypatch.setitem(pool.JOBS, "run", lambda rc, d: calls.append(d) or real(rc, d))
    first = cfg.cells()[0]
    summary = out / "runs" / first.cell_id / "summary.json"
    mtime = os.stat(summary).st_mtime_ns
    res = run_experiment(cfg, out, progress=False)
    assert calls == [] and res.ran == [] and len(res.reused) == len(cfg.cells())
    assert os.stat(summary).st_mtime_ns == mtime
    summary.unlink()  # an unfinished cell runs again, and only it
    res = run_experiment(cfg, out, progress=False)
    assert res.ran == [first.cell_id] and len(calls) == 1 and summary.is_file()
    assert len(read_csv(out / "results.csv")) == len(cfg.cells())


def test_changed_config_reruns_cells(tmp_path):
    cfg = parse_experiment(BASE)
    assert len(run_experiment(cfg, tmp_path, progress=False).ran) == 2
    assert run_experiment(cfg, tmp_path, progress=False).ran == []
    changed = parse_experiment(_with(lr=0.25))
    assert len(run_experiment(changed, tmp_path, progress=False).ran) == 2


def test_failing_cell_does_not_stop_the_grid(tmp_path, monkeypatch):
    import gradcode.runtime.run as run_module

    real = run_module.run

    def flaky(rc, out_dir, **kw):
        if rc.scheme == "pgc":
            raise RuntimeError("boom")
        return real(rc, out_dir, **kw)

    monkeypatch.setattr(run_module, "run", flaky)
    cfg = parse_experiment(_with(grid__schemes=["pgc", "dgd", "is_sgd"]))
    seen = []
    res = run_experiment(cfg, tmp_path, progress=lambda cell, status: seen.append(status))
    assert len(res.failed) == 1 and len(res.ran) == 3 and seen.count("ok") == 2
    err = tmp_path / "runs" / res.failed[0] / "error.txt"
    assert "RuntimeError: boom" in err.read_text()
    rows = {r["scheme"]: r for r in read_csv(tmp_path / "results.csv")}
    assert rows["pgc"]["status"] == "error" and "boom" in rows["pgc"]["error"]
    assert rows["dgd"]["status"] == "ok" and rows["is_sgd"]["status"] == "ok"
    monkeypatch.setattr(run_module, "run", real)  # fixed: only the failed cell reruns
    failed = res.failed
    res = run_experiment(cfg, tmp_path, progress=False)
    assert res.ran == failed and res.failed == [] and not err.exists()


def test_cli_experiment_run(tmp_path, capsys):
    from gradcode.cli_experiment import experiment_run

    toml = tmp_path / "tiny.toml"
    toml.write_text(
        'workers = 4\nrounds = 3\neval_every = 3\n[stragglers.se]\nbase = "shifted-exp"\n'
        '[grid]\nschemes = ["dgd", "frc"]\nseeds = [0]\ntasks = ["wine/logreg"]\n'
        's = [2]\npartitionings = ["iid"]\n'
    )
    experiment_run(toml, tmp_path / "out", quiet=True)
    text = capsys.readouterr().out
    assert "ran 1 cell(s)" in text and "1 skipped" in text
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 1


def test_a_new_config_field_at_its_default_keeps_cells_finished(tmp_path):
    from dataclasses import asdict

    from gradcode.runtime.config import RunConfig

    rc = RunConfig(rounds=3)
    (tmp_path / "summary.json").write_text("{}")
    old = json.loads(json.dumps(asdict(rc), default=str))
    old.pop("time_scale")  # written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert is_finished(rc, tmp_path)
    assert not is_finished(RunConfig(rounds=3, time_scale=0.5), tmp_path)
    assert not is_finished(RunConfig(rounds=4), tmp_path)


# ---------------------------------------------------------------- per-scheme tuning


@pytest.mark.parametrize(
    "tune, message",
    [
        ({"lr": [0.1], "seed": 0}, "one of the reported seeds"),
        ({"lr": [0.1], "colour": 1}, "[tune]: unknown key"),
        ({"seed": 3}, "missing lr"),
        ({"lr": []}, "non-empty list"),
        ({"lr": [0.1, -1.0]}, "positive"),
        ({"lr": [0.1, 0.1]}, "distinct"),
        ({"lr": [0.1], "momentum": [1.5]}, "momentum"),
        ({"lr": [0.1], "seed": "x"}, "seed must be an integer"),
    ],
)
def test_tune_validation(tune, message):
    with pytest.raises(ValueError) as exc:
        parse_experiment(_with(tune=tune))
    assert message in str(exc.value)


def test_tuning_cells_cover_every_group_and_scheme_on_the_tuning_seed():
    cfg = parse_experiment(_with(tune={"lr": [0.1, 1.0], "momentum": [0.0, 0.9], "seed": 5}))
    tcs = cfg.tuning_cells()
    assert len(tcs) == 2 * 2 * 2  # schemes x lr x momentum (one group)
    assert {tc.cell.seed for tc in tcs} == {5}
    rc = cfg.run_config(tcs[-1])
    assert (rc.seed, rc.lr, rc.momentum) == (5, 1.0, 0.9)
    assert len({tc.cell_id for tc in tcs}) == len(tcs)


def test_select_picks_the_fastest_to_target_per_scheme_ties_by_accuracy():
    from gradcode.grid.tuning import select

    def curve(losses, acc=0.9):
        k = len(losses)
        return {"round": np.arange(1.0, k + 1), "time": np.arange(1.0, k + 1) * 2,
                "train_loss": np.array(losses, float), "test_accuracy": np.full(k, acc),
                "rounds": k}  # fmt: skip

    cands = [
        {"scheme": "dgd", "lr": 0.1, "momentum": 0.0, "curve": curve([0.6, 0.5, 0.4])},
        {"scheme": "dgd", "lr": 1.0, "momentum": 0.0, "curve": curve([0.5, 0.3, 0.2])},
        {"scheme": "pgc", "lr": 0.1, "momentum": 0.0, "curve": curve([0.6, 0.5, 0.2])},
        {"scheme": "pgc", "lr": 1.0, "momentum": 0.0, "curve": curve([0.4, 0.2, 0.1])},
        {"scheme": "pgc", "lr": 3.0, "momentum": 0.0, "curve": None},  # diverged / failed
        {"scheme": "is_sgd", "lr": 0.1, "momentum": 0.0, "curve": curve([0.5, 0.4, 0.3], 0.8)},
        {"scheme": "is_sgd", "lr": 1.0, "momentum": 0.0, "curve": curve([0.5, 0.4, 0.3], 0.95)},
    ]
    rows = select(cands, "train_loss", target_at=1.0)
    assert {r["target"] for r in rows} == {0.2}  # DGD's best final loss (lr 1.0)
    chosen = {r["scheme"]: r["lr"] for r in rows if r["chosen"]}
    assert chosen == {"dgd": 1.0, "pgc": 1.0, "is_sgd": 1.0}
    pgc = {r["lr"]: r for r in rows if r["scheme"] == "pgc"}
    assert pgc[1.0]["time_to_target"] == 4.0 and pgc[0.1]["time_to_target"] == 6.0
    assert pgc[1.0]["rounds_to_target"] == 2.0 and pgc[3.0]["status"] == "failed"
    # nobody in is_sgd reaches 0.2: the tie goes to the higher final accuracy
    assert all(r["time_to_target"] == math.inf for r in rows if r["scheme"] == "is_sgd")
    cands[5]["curve"]["test_accuracy"][:] = 0.99
    assert {r["lr"] for r in select(cands, "train_loss", 1.0) if r["chosen"]
            and r["scheme"] == "is_sgd"} == {0.1}  # fmt: skip


def test_tuned_grid_uses_each_schemes_best_lr_on_reported_seeds_only(tuned_results):
    cfg, out, res = tuned_results
    assert res.failed == [] and len(res.tuning_ran) == 3 * 3 and len(res.ran) == 3 * 2
    tune = read_csv(out / "tuning.csv")
    assert len(tune) == 9 and {r["seed"] for r in tune} == {7}
    for scheme in ("dgd", "is_sgd", "pgc"):
        rows = [r for r in tune if r["scheme"] == scheme]
        (best,) = [r for r in rows if r["chosen"]]
        # the chosen candidate is the fastest to target (times recomputed from the logs)
        for r in rows:
            log = out / "tune" / r["cell_id"] / "rounds.jsonl"
            recs = [json.loads(x) for x in log.read_text().splitlines()]
            hits = [x["time"] for x in recs if x.get("train_loss") is not None
                    and x["train_loss"] <= r["target"] * (1 + 1e-12)]  # fmt: skip
            assert (hits[0] if hits else math.inf) == pytest.approx(r["time_to_target"])
            assert best["time_to_target"] <= r["time_to_target"]
        assert res.chosen[rows[0]["group"], scheme] == (best["lr"], best["momentum"])
        for r in read_csv(out / "results.csv"):
            if r["scheme"] == scheme:
                assert r["lr"] == best["lr"] and r["tuned"] is True and r["tune_seed"] == 7
    results = read_csv(out / "results.csv")
    assert {r["seed"] for r in results} == {0, 1}  # the tuning seed is not reported
    assert {r["seed"] for r in read_csv(out / "rounds.csv")} == {0, 1}
    assert not any("seed7" in p.name for p in (out / "runs").iterdir())
    assert len({r["lr"] for r in results}) >= 1 and all(r["status"] == "ok" for r in results)


def test_tuned_grid_resumes(tuned_results, tmp_path):
    import shutil

    cfg, out, _ = tuned_results
    work = tmp_path / "copy"
    shutil.copytree(out, work)
    res = run_experiment(cfg, work, progress=False)
    assert res.ran == [] and res.tuning_ran == [] and len(res.reused) == 6
    # one more candidate: only its tuning runs run; reported cells rerun only where the
    # choice changed (their config.json differs), and then with the new choice
    more = parse_experiment({**conftest.TUNED, "tune": {"lr": [0.05, 0.5, 4.0, 1.0], "seed": 7}})
    res = run_experiment(more, work, progress=False)
    assert len(res.tuning_ran) == 3 and all("_lr1_" in c for c in res.tuning_ran)
    changed = {s for (_, s), v in res.chosen.items() if v != _chosen(out)[s]}
    scheme_of = {c.cell_id: c.scheme for c in more.cells()}
    assert sorted(scheme_of[c] for c in res.ran) == sorted([*changed, *changed])  # 2 seeds each
    for r in read_csv(work / "results.csv"):
        assert r["lr"] == dict((s, v[0]) for (_, s), v in res.chosen.items())[r["scheme"]]


def test_the_tuning_runs_are_scored_once_and_tuning_csv_written_once(
    tuned_results, tmp_path, monkeypatch
):
    import shutil

    from gradcode.grid import tuning

    cfg, out, _ = tuned_results
    shutil.copytree(out, tmp_path / "copy")
    scored, written = [], []
    real_select, real_write = tuning.select, tuning.write_csv
    monkeypatch.setattr(tuning, "select", lambda *a, **k: scored.append(1) or real_select(*a, **k))
    monkeypatch.setattr(
        tuning, "write_csv", lambda path, *a, **k: written.append(path) or real_write(path, *a, **k)
    )
    res = run_experiment(cfg, tmp_path / "copy", progress=False)
    groups = {tc.group for tc in cfg.tuning_cells()}
    assert len(scored) == len(groups) and [p.name for p in written] == ["tuning.csv"]
    assert res.chosen == tuning.choose(cfg, tmp_path / "copy")


def _chosen(out):
    return {r["scheme"]: (r["lr"], r["momentum"]) for r in read_csv(out / "tuning.csv")
            if r["chosen"]}  # fmt: skip


def test_cli_experiment_run_reports_tuning(tmp_path, capsys):
    from gradcode.cli_experiment import experiment_run

    toml = tmp_path / "tiny.toml"
    toml.write_text(
        'workers = 4\nrounds = 3\neval_every = 3\n[stragglers.se]\nbase = "shifted-exp"\n'
        '[grid]\nschemes = ["dgd"]\nseeds = [0]\ntasks = ["wine/logreg"]\n'
        's = [1]\npartitionings = ["iid"]\n[tune]\nlr = [0.1, 0.5]\nseed = 9\n'
    )
    experiment_run(toml, tmp_path / "out", quiet=True)
    text = capsys.readouterr().out
    assert "ran 1 cell(s)" in text and "tuning: 2 run(s) on seed 9 (2 run now, 0 failed)" in text
