"""``gradcode compare``: paired time-to-target ratios across two results tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradcode.cli import main
from gradcode.report import paired
from gradcode.report.tables import read_csv, write_csv

COLUMNS = ("task", "partitioning", "scheme", "s", "straggler", "seed", "reached", "time_to_target")


def _row(scheme, seed, time, straggler="x", s=3):
    reached = time is not None
    return {"task": "adult/mlp", "partitioning": "iid", "scheme": scheme, "s": s,
            "straggler": straggler, "seed": seed, "reached": reached,
            "time_to_target": time if reached else ""}  # fmt: skip


def test_golden_two_groups_pairing_by_seed_and_never_reached_counted():
    a = [_row("p", 0, 1.0), _row("p", 1, 4.0), _row("p", 2, None), _row("p", 0, 3.0, "y")]
    b = [_row("q", 1, 2.0), _row("q", 0, 2.0), _row("q", 2, 5.0), _row("q", 0, 1.0, "y"),
         _row("q", 7, 1.0)]  # seed 7 has no partner in a: not paired  # fmt: skip
    x, y, total = paired.paired(a, "p", b, "q")
    assert (x["straggler"], y["straggler"], total["task"]) == ("x", "y", "all")
    assert x["ratio_gmean"] == pytest.approx(1.0)  # sqrt(0.5 * 2)
    assert (x["ratio_n"], x["reached_a"], x["reached_b"], x["runs"]) == (2, 2, 3, 3)
    assert y["ratio_gmean"] == pytest.approx(3.0) and math.isnan(y["ratio_ci_low"])
    assert total["ratio_gmean"] == pytest.approx((0.5 * 2 * 3) ** (1 / 3))
    assert (total["ratio_n"], total["runs"]) == (3, 4)


@given(st.lists(st.floats(0.1, 100), min_size=1, max_size=6), st.floats(0.1, 10))
def test_a_constant_speed_up_is_recovered_exactly_with_a_zero_width_interval(times, c):
    a = [_row("p", k, t * c) for k, t in enumerate(times)]
    b = [_row("q", k, t) for k, t in enumerate(times)]
    (group, total) = paired.paired(a, "p", b, "q")
    assert group["ratio_gmean"] == pytest.approx(c) and group["ratio_n"] == len(times)
    if len(times) > 1:
        assert group["ratio_ci_low"] == pytest.approx(c) == group["ratio_ci_high"]
    swapped = paired.paired(b, "q", a, "p")[0]
    assert swapped["ratio_gmean"] == pytest.approx(1 / c)


def test_the_cli_prints_the_table_and_writes_it(tmp_path, capsys):
    a, b = tmp_path / "a_results.csv", tmp_path / "b_results.csv"
    write_csv(a, [_row("pgc+none", 0, 2.0), _row("pgc+none", 1, 2.0)], COLUMNS)
    write_csv(b, [_row("dgd", 0, 4.0), _row("dgd", 1, 4.0)], COLUMNS)
    with pytest.raises(SystemExit) as done:
        main(["compare", f"{a}:pgc+none", f"{b}:dgd", "--csv", str(tmp_path / "r.csv")])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "a_results:pgc+none / b_results:dgd" in out and "0.50 [0.50, 0.50] (2)" in out
    assert read_csv(tmp_path / "r.csv")[-1]["ratio_gmean"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere.csv:dgd", "{b}:dgd"], "nowhere.csv: no such results file"),
        (["{b}", "{b}:dgd"], "expected RESULTS.csv:SCHEME"),
        (["{b}:frc", "{b}:dgd"], "no rows of scheme 'frc' (it has dgd)"),
        (["{b}:dgd", "{other}:dgd"], "no cell of dgd matches one of dgd"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path, capsys, args, message):
    b, other = tmp_path / "b.csv", tmp_path / "other.csv"
    write_csv(b, [_row("dgd", 0, 4.0)], COLUMNS)
    write_csv(other, [_row("dgd", 9, 4.0)], COLUMNS)
    with pytest.raises(SystemExit) as done:
        main(["compare", *(x.format(b=b, other=other) for x in args)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_pooled_rows_per_s_when_the_tables_hold_several():
    a = [_row("p", 0, 1.0, s=1), _row("p", 0, 3.0, s=3)]
    b = [_row("q", 0, 2.0, s=1), _row("q", 0, 1.0, s=3)]
    rows = paired.paired(a, "p", b, "q")
    pooled = [(r["s"], round(r["ratio_gmean"], 6)) for r in rows if r["task"] == "all"]
    assert pooled == [("1", 0.5), ("3", 3.0), ("", round(1.5**0.5, 6))]
