"""The report's leaf: statistics, writers, scheme order; table modules without matplotlib."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.report import tables
from gradcode.report.tables import (
    csv_text,
    markdown_table,
    mean_std,
    read_csv,
    scheme_order,
    write_csv,
)

#: Modules that compute tables: importing them must not import matplotlib.
TABLE_MODULES = [
    "gradcode.report.tables",
    "gradcode.report.analysis",
    "gradcode.report.study",
    "gradcode.report.wallclock",
    "gradcode.report.fidelity",
    "gradcode.report.sections",
    "gradcode.grid.harness",
]


def test_table_modules_do_not_import_matplotlib():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in TABLE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib')\n"
        + "assert not bad, bad[:5]\n"
        + "import gradcode.report.figures\n"
        + "assert 'matplotlib' in sys.modules\n"  # the check can fail
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_plot_styles_follow_the_table_order():
    from gradcode.report.plotting import SCHEME_STYLE

    assert tuple(SCHEME_STYLE) == tables.SCHEME_ORDER
    assert scheme_order(["zz", "pgc", "aa", "dgd"]) == ["dgd", "pgc", "aa", "zz"]


def test_the_baseline_is_named_once():
    from pathlib import Path

    src = Path(tables.__file__).resolve().parents[1]
    hits = [p for p in src.rglob("*.py") if 'BASELINE = "dgd"' in p.read_text()]
    assert [p.relative_to(src).as_posix() for p in hits] == ["report/tables.py"]


@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=20))
def test_mean_std_is_numpys_sample_statistic(xs):
    m, s = mean_std(xs)
    assert m == pytest.approx(np.mean(xs), abs=1e-6)
    assert s == pytest.approx(np.std(xs, ddof=1), abs=1e-6)


def test_one_value_has_no_sample_std_and_the_table_shows_a_dash():
    m, s = mean_std([0.25, None, math.nan])
    assert m == 0.25 and math.isnan(s)
    assert tables.fmt(s) == "–"
    from gradcode.report.analysis import headline
    from gradcode.report.page import headline_markdown

    run = {"scheme": "pgc", "ratio_vs_dgd": 0.8, "rounds_ratio_vs_dgd": 0.9, "lr": 0.5,
           "time_to_target": 4.0, "test_accuracy": 0.9, "time_per_round": 1.0}  # fmt: skip
    (row,) = headline([run])
    assert row["ratio_gmean"] == 0.8 and math.isnan(row["ratio_ci_low"]) and row["ratio_n"] == 1
    assert "| 0.800 [–], n=1 |" in headline_markdown([row])


def test_csv_round_trip_and_columns(tmp_path):
    rows = [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": None, "c": True, "extra": 9}]
    path = write_csv(tmp_path / "t.csv", rows)
    assert read_csv(path) == [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": None, "c": True}]
    assert csv_text(rows, ["c"]) == "c\r\nx\r\nTrue\r\n"
    assert csv_text([]) == "" and csv_text([], ["a"]) == "a\r\n"
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_markdown_table_shape():
    text = markdown_table(["a", "b"], [["1", "2"], ["3", "4"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]
