"""``<grid>_results.csv``: one row per reported cell, never-reached cells kept, commands in."""

from __future__ import annotations

import csv

from gradcode.report.analysis import analyse
from gradcode.report.cells import CELL_RESULT_COLUMNS
from gradcode.report.page import render_report

REQUIRED = ("task", "scheme", "s", "straggler", "seed", "lr", "momentum", "stale_correction",
            "time_to_target", "final_test_accuracy", "command", "reached")  # fmt: skip


def test_the_cells_file_has_a_row_per_cell_and_keeps_the_misses(ci_results):
    cfg, out, _ = ci_results
    render_report(out)
    path = out / "report" / f"{cfg.name}_results.csv"
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(REQUIRED) <= set(rows[0]) and list(rows[0]) == list(CELL_RESULT_COLUMNS)
    assert sorted(r["cell_id"] for r in rows) == sorted(c.cell_id for c in cfg.cells())
    per_run = {p["cell_id"]: p for p in analyse(out)["per_run"]}
    for r in rows:
        p = per_run[r["cell_id"]]
        assert r["reached"] == str(p["time_to_target"] < float("inf"))
        assert (r["time_to_target"] == "") == (r["reached"] == "False")
        if r["reached"] == "True":
            assert float(r["time_to_target"]) == p["time_to_target"]
        assert r["command"].startswith("gradcode train --scheme " + r["scheme"])
        assert f"--seed {r['seed']} " in r["command"]
        assert r["task"] == f"{p['task']}"
    # an unreachable target: every run misses it, and every cell is still a row
    render_report(out, target=1e-9)
    with path.open(newline="") as f:
        missed = list(csv.DictReader(f))
    assert len(missed) == len(rows)
    assert all(r["reached"] == "False" and r["time_to_target"] == "" for r in missed)
    assert all(r["final_test_accuracy"] for r in missed)
    render_report(out)  # the shared run's report as the other tests expect it
