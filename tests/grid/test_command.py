"""The ``command`` column: each cell's ``gradcode train`` line parses back into the cell's
RunConfig, and running it trains the cell again (re-timed cells included)."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st

from gradcode.cli import app, main
from gradcode.cli_common import train_config
from gradcode.grid.command import local_config, train_args, train_command
from gradcode.report.tables import read_csv
from gradcode.runtime.config import DelaySpec, RunConfig


def parse_command(line: str) -> RunConfig:
    """The RunConfig ``gradcode train`` builds from ``line`` (the CLI's own parser)."""
    words = shlex.split(line)
    assert words[:2] == ["gradcode", "train"]
    train = typer.main.get_command(app).commands["train"]
    with train.make_context("train", words[2:]) as ctx:
        return train_config(ctx.params)


def test_every_cell_of_the_ci_grid_round_trips(ci_results):
    cfg, out, _ = ci_results
    rows = {r["cell_id"]: r for r in read_csv(out / "results.csv")}
    assert len(rows) == len(cfg.cells())
    for cell in cfg.cells():
        line = rows[cell.cell_id]["command"]
        assert f"--out out/{cfg.name}/{cell.cell_id}" in line
        assert parse_command(line) == cfg.run_config(cell)


def test_tuned_cells_carry_their_chosen_lr_and_momentum(tuned_results):
    cfg, out, res = tuned_results
    for row in read_csv(out / "results.csv"):
        cell = next(c for c in cfg.cells() if c.cell_id == row["cell_id"])
        rc = parse_command(row["command"])
        assert rc == cfg.tuned_run_config(cell, res.chosen)
        assert (rc.lr, rc.momentum) == (row["lr"], row["momentum"])


def test_running_a_retimed_cells_command_trains_it_to_the_same_numbers(ci_results, tmp_path):
    cfg, out, res = ci_results
    rows = read_csv(out / "results.csv")
    retimed = [r for r in rows if r["retimed_from"]]
    assert retimed, "the ci grid has re-timed cells (exact codes share DGD's trajectory)"
    row = retimed[0]
    args = shlex.split(row["command"])[1:]
    args[args.index("--out") + 1] = str(tmp_path / "again")
    with pytest.raises(SystemExit) as done:
        main([*args, "--quiet"])
    assert done.value.code == 0
    summary = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert summary["test_accuracy"] == row["test_accuracy"]  # exactly
    assert summary["rounds"] == row["rounds"]
    # a re-timed clock is summed from the replay's logged round times (9 decimals)
    assert summary["wall_clock"] == pytest.approx(row["wall_clock"], rel=1e-9, abs=1e-8)


floats = st.floats(1e-4, 0.99, allow_nan=False)
configs = st.builds(
    RunConfig,
    scheme=st.sampled_from(["dgd", "frc", "pgc", "sr_sgc", "is_sgd"]),
    workers=st.just(6),
    stragglers=st.integers(1, 2),
    dataset=st.sampled_from(["breast_cancer", "adult"]),
    model=st.sampled_from(["logreg", "mlp"]),
    partitioning=st.sampled_from(["iid", "label_sorted"]),
    delay=st.builds(
        DelaySpec,
        base=st.sampled_from(["shifted-exp:a=1,mu=1", "pareto:alpha=1.5", "trace:path=a b.csv"]),
        persistent=st.sampled_from([None, "k=2,kappa=5"]),
        bursty=st.sampled_from([None, "p_slow=0.05,p_recover=0.3,kappa=5"]),
        crash=st.sampled_from([None, "count=1,at_round=10"]),
    ),
    rounds=st.integers(1, 900),
    optimizer=st.sampled_from(["sgd", "nesterov", "adam"]),
    lr=floats,
    momentum=st.sampled_from([0.0, 0.5, 0.9]) | floats,
    weight_decay=st.sampled_from([0.0, 1e-4]),
    seed=st.integers(0, 2**40),
    eval_every=st.integers(1, 10),
    batch_size=st.sampled_from([None, 32, 64]),
    target_accuracy=st.sampled_from([None, 0.84, 0.88]),
    deadline=st.sampled_from([None, 3.5]),
    verify=st.booleans(),
    data_dir=st.sampled_from([None, "my data"]),
    lr_schedule=st.sampled_from(["constant", "cosine"]),
)


@settings(max_examples=60, deadline=None)
@given(rc=configs, backend=st.sampled_from(["local", "ray"]))
def test_any_config_round_trips_through_the_cli_parser(rc, backend):
    if rc.scheme == "pgc" or rc.scheme == "sr_sgc":
        rc = replace(rc, stale_correction="auto")
    rc = replace(rc, backend=backend, time_scale=0.05 if backend == "ray" else None)
    assert parse_command(train_command(rc, "out/x y")) == local_config(rc)


def test_scheme_options_round_trip_and_unexpressible_settings_are_refused():
    rc = RunConfig(scheme="partial", workers=6, stragglers=2, scheme_options=(("l", 2),))
    assert "l=2" in train_args(rc, "o")
    assert parse_command(train_command(rc, "o")) == rc
    with pytest.raises(ValueError, match="clip_grad_norm"):
        train_command(replace(rc, clip_grad_norm=1.0), "o")
