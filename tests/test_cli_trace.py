"""``gradcode trace fit`` and ``gradcode trace regimes`` on a trace of our own."""

import json

import numpy as np
import pytest

from gradcode.cli import main
from gradcode.runtime.config import parse_delay
from gradcode.stragglers import ClockModel

from .trace_files import own_table, write_long

LOADS = (0.0, 1.0, 2.0, 4.0)


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    cap = capsys.readouterr()
    return exc.value.code, cap.out, cap.err


@pytest.fixture
def trace(tmp_path):
    return write_long(tmp_path / "own.csv", own_table(rounds=6, workers=16, loads=LOADS), LOADS)


def test_fit_prints_tables_saves_a_usable_model_and_a_figure(capsys, tmp_path, trace):
    model, fig = tmp_path / "fit" / "clock_own.json", tmp_path / "m.png"
    code, out, err = run(
        capsys, "trace", "fit", trace, "--out", model.parent, "--figure", fig, "-n", "8"
    )
    assert code == 0, err
    assert "compute (s / partition)" in out and "model / replay" in out
    assert f"--delay model:path={model}" in out.replace("\n", "")
    assert fig.stat().st_size > 10_000
    m = parse_delay(f"model:path={model}")
    assert isinstance(m, ClockModel) and m.sample(np.random.default_rng(0), 2, 8).shape == (2, 8)


def test_fit_json(capsys, tmp_path, trace):
    code, out, _ = run(capsys, "trace", "fit", trace, "--out", tmp_path, "--json")
    assert code == 0
    rec = json.loads(out)
    assert rec["delay"] == f"model:path={tmp_path / 'clock_own.json'}"
    assert (
        rec["figure"] == str(tmp_path / "clock_own.png") and (tmp_path / "clock_own.png").is_file()
    )
    assert [c["scheme"] for c in rec["check"]] == ["dgd", "is_sgd", "frc", "crc"] and rec["check"][
        0
    ]["n"] == 16
    assert set(rec["quantiles"]) == {"0", "1", "2", "4"}
    assert rec["model"]["compute"]["kind"] == "constant"


def test_regimes_default_figure_goes_to_out(capsys, tmp_path, trace):
    code, out, _ = run(capsys, "trace", "regimes", trace, "-n", "8", "--out", tmp_path)
    assert code == 0 and (tmp_path / "clock_regimes.png").is_file() and "time ∝ load" in out


def test_regimes_json_and_figure(capsys, tmp_path, trace):
    fig = tmp_path / "r.png"
    code, out, _ = run(capsys, "trace", "regimes", trace, "-n", "8", "--max-s", "3",
                       "--figure", fig, "--json")  # fmt: skip
    assert code == 0 and fig.is_file()
    rows = json.loads(out)["traces"]["own"]
    assert {r["regime"] for r in rows} == {"measured", "linear"}
    assert {(r["scheme"], r["s"]) for r in rows} >= {("dgd", 0), ("frc", 3), ("crc", 2)}


@pytest.mark.parametrize(
    "content,needle",
    [
        ("w0,w1\n1,2\n", "fitting needs the long format"),
        ("round,worker,load,seconds\n0,0,0,x\n", "line 2: seconds 'x' is not a number"),
    ],
)
def test_fit_errors_are_one_line(capsys, tmp_path, content, needle):
    f = tmp_path / "bad.csv"
    f.write_text(content)
    code, _, err = run(capsys, "trace", "fit", f, "--out", tmp_path)
    assert (
        code == 2 and needle in err and err.count("\n") == 1 and err.startswith("gradcode: error")
    )


def test_missing_file_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "trace", "regimes", tmp_path / "none.csv")
    assert code == 2 and "not found" in err and err.count("\n") == 1
