"""The verdict figure: per-scheme pooled ratios vs DGD across grids."""

from __future__ import annotations

import pytest

from gradcode.report import verdict
from gradcode.report.tables import write_csv


def _rows(scheme, ratios):
    return [{"scheme": scheme, "reached": r is not None, "ratio_vs_dgd": "" if r is None else r}
            for r in ratios]  # fmt: skip


def test_summary_pools_cells_geometrically_counts_never_reached_and_merges_corrections():
    rows = _rows("dgd", [1, 1]) + _rows("pgc_memory+auto", [0.5, 2.0, None])
    rows += _rows("pgc+none", [None, None]) + _rows("is_sgd", [0.25, 0.25])
    got = {s["scheme"]: s for s in verdict.summary(rows)}
    assert set(got) == {"pgc_memory", "pgc+none", "is_sgd"}  # dgd is the baseline, not drawn
    assert got["pgc_memory"]["ratio_gmean"] == pytest.approx(1.0)
    assert (got["pgc_memory"]["reached"], got["pgc_memory"]["runs"]) == (2, 3)
    assert got["pgc+none"]["ratio_n"] == 0 and got["pgc+none"]["reached"] == 0
    assert got["is_sgd"]["ratio_ci_low"] == pytest.approx(0.25)


def test_the_command_draws_the_figure_and_refuses_a_bad_argument(tmp_path, capsys):
    csv = tmp_path / "g_results.csv"
    rows = _rows("is_sgd", [0.5, 0.6]) + _rows("pgc+none", [None]) + _rows("pgc", [1.2, None])
    write_csv(csv, rows, ["scheme", "reached", "ratio_vs_dgd"])
    out = tmp_path / "v.png"
    assert verdict.main([f"one grid={csv}", f"again={csv}", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "pgc\t1.20" in capsys.readouterr().out
    assert verdict.main([str(csv), "--out", str(out)]) == 2
    assert "expected LABEL=RESULTS.csv" in capsys.readouterr().err
