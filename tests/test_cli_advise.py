"""``gradcode advise``: the table, --json, --figure, one-line errors, and the issue-25 check.

Done when (issue 25, first half): ``gradcode advise --trace FILE -n 24 --json``
on a measured trace predicts each candidate's mean round time within 3 % of an
exact replay of that trace, computed here independently (tests/advise_oracle.py:
the replay rule from scratch, every block of 24 trace workers, through
:func:`gradcode.sim.simulate`), and recommends an exact scheme on the shared
AWS traces, where redundancy is nearly free.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from gradcode.cli import main
from gradcode.codes import REGISTRY, make_code
from gradcode.stragglers import read_trace

from .advise_oracle import replay_mean
from .test_advise import LOADS, latency_bound_table
from .trace_files import SHARED_NAMES, shared_trace, write_long


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["advise", *argv])
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def own_trace(tmp_path_factory):
    return write_long(tmp_path_factory.mktemp("adv") / "lat.csv", latency_bound_table(), LOADS)


@pytest.mark.parametrize("name", SHARED_NAMES)
def test_done_when_round_times_within_3pct_of_exact_replay_and_exact_pick(name):
    path = shared_trace(name)
    code, out, err = run_cli("--trace", str(path), "-n", "24", "--json")
    assert code == 0, err
    rec = json.loads(out)
    assert set(rec) >= {"regime", "candidates", "recommendation"}
    assert {"scheme", "s"} <= set(rec["recommendation"])
    trace = read_trace(path)
    worst = 0.0
    for c in rec["candidates"]:
        assert {"scheme", "s", "round_time", "exact", "rounds_factor", "time_to_target"} <= set(c)
        code_ = make_code(c["scheme"], 24, c["s"], rng=np.random.default_rng(0))
        exact = replay_mean(code_, trace.table, trace.loads)
        worst = max(worst, abs(c["round_time"] / exact - 1))
        assert c["round_time"] == pytest.approx(exact, rel=0.03), c
    assert worst < 1e-6  # the replay is exact, not merely within 3 %
    pick = rec["recommendation"]
    assert REGISTRY[pick["scheme"]].exact and pick["scheme"] not in ("pgc", "sr_sgc")
    assert rec["regime"]["kind"] == "latency-bound"
    assert rec["regime"]["slow_workers"] == [] and rec["regime"]["crashes"] == []


def test_table_and_figure(own_trace, tmp_path):
    png = tmp_path / "f" / "advise.png"
    code, out, err = run_cli("--trace", str(own_trace), "-n", "12", "--figure", str(png))
    assert code == 0, err
    assert "recommendation:" in out and "regime: latency-bound" in out
    assert "Redundancy is nearly free" in out and "Runner-up" in out
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"


def test_json_is_strict_and_complete(own_trace):
    code, out, _ = run_cli("--trace", str(own_trace), "-n", "12", "--json", "--target", "300")
    assert code == 0
    rec = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))
    assert rec["target_rounds"] == 300
    assert rec["rounds_factor_source"].startswith("docs/results/pgc_study_headline_by_task.csv")
    skipped = {(x["scheme"], x["s"]): x["reason"] for x in rec["skipped"]}
    assert "n + s is odd" in skipped["cyclic_mds", 2]
    assert "does not divide n=12" in skipped["frc", 4]
    assert skipped["is_sgd", 0] == "at s = 0 it is dgd"
    pairs = {(c["scheme"], c["s"]) for c in rec["candidates"]}
    assert not pairs & set(skipped) and ("frc", 3) in pairs
    times = [c["time_to_target"] for c in rec["candidates"] if c["time_to_target"] is not None]
    assert times == sorted(times)
    best = rec["candidates"][0]
    assert best["time_to_target"] == pytest.approx(best["round_time"] * 300, rel=1e-6)


def test_factors_file_overrides_the_study(own_trace, tmp_path):
    f = tmp_path / "f.csv"
    f.write_text("scheme,s,rounds_factor\nis_sgd,,0.1\n")
    code, out, _ = run_cli("--trace", str(own_trace), "-n", "12", "--json", "--factors", str(f))
    rec = json.loads(out)
    assert code == 0 and rec["recommendation"]["scheme"] == "is_sgd"
    assert rec["rounds_factor_source"].startswith(str(f))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--trace", "/nonexistent.csv"], "trace file not found: /nonexistent.csv"),
        (["--trace", "TRACE", "-n", "2000"], "n must be an integer in [2, 1000]"),
        (["--trace", "TRACE", "-n", "12", "--max-s", "12"], "max_s"),
        (["--trace", "TRACE", "--delay", "shifted-exp"], "give one input"),
        (["--trace", "TRACE", "--persistent", "k=1"], "wrap a delay model"),
        (["--trace", "TRACE", "--target", "0.8"], "needs run=DIR"),
        (["--trace", "TRACE", "--schemes", " , "], "at least one scheme"),
        (["--delay", "gamma"], "unknown delay model"),
        (["--run", "/nonexistent"], "run folder not found"),
        (["--trace", "TRACE", "--model-size", "inf"], "model_size"),
    ],
)
def test_user_mistakes_are_one_line(argv, match, own_trace):
    argv = [str(own_trace) if a == "TRACE" else a for a in argv]
    code, out, err = run_cli(*argv)
    assert code == 2, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gradcode: error:") and match in lines[0]


def test_bad_trace_row_is_named(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("round,worker,load,seconds\n0,0,1,1.0\n0,0,2,abc\n")
    code, _, err = run_cli("--trace", str(p))
    assert code == 2 and f"trace {p} line 3" in err and len(err.strip().splitlines()) == 1
