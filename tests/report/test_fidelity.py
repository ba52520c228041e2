"""Measured vs predicted round times of Ray runs in rounds.csv and the report (issue 12.5)."""

import json
import shutil

import numpy as np
import pytest

from gradcode.grid.results import collect_results, read_csv, round_row
from gradcode.report.fidelity import fidelity
from gradcode.report.page import render_report

SCALE = 0.01  # RunConfig.time_scale=None: the Ray default, real seconds per schedule unit


def _ratio(t: int) -> float:
    """Measured / predicted of fake round t: 1.2, but 10 (a slow outlier) every 5th round."""
    return 10.0 if t % 5 == 0 else 1.2


@pytest.fixture
def ray_like(ci_results, tmp_path):
    """ci_small's results with one (group, scheme)'s rounds made to look like Ray rounds:
    a ``predicted_duration`` logged next to ``duration``, collected again by the harness."""
    cfg, out, _ = ci_results
    results = tmp_path / "results"
    shutil.copytree(out, results)
    shutil.rmtree(results / "report", ignore_errors=True)
    rows = read_csv(results / "results.csv")
    group = sorted({r["group"] for r in rows})[0]
    cells = [r["cell_id"] for r in rows if r["group"] == group and r["scheme"] == "pgc"]
    assert len(cells) == 2  # two seeds
    for cid in cells:
        log = results / "runs" / cid / "rounds.jsonl"
        recs = [json.loads(ln) for ln in log.read_text().splitlines()]
        for rec in recs:
            rec["predicted_duration"] = rec["duration"] / _ratio(rec["round"])
        log.write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    collect_results(cfg, results, {})
    return results, group, cells


def test_round_row_carries_the_prediction_only_when_logged():
    rec = {"round": 3, "time": 9.0, "duration": 2.5, "arrived": [0, 1]}
    assert "predicted_duration" not in round_row(rec, SCALE)
    row = round_row({**rec, "predicted_duration": 2.0}, SCALE)
    assert row["predicted_duration"] == 2.0 and row["time_scale"] == SCALE
    assert row["duration"] == 2.5 and row["n_arrived"] == 2


def test_rounds_csv_has_predicted_columns_for_ray_rounds_only(ci_results, ray_like):
    _, out, _ = ci_results
    assert "predicted_duration" not in read_csv(out / "rounds.csv")[0]  # local only: as before
    results, _, cells = ray_like
    rounds = read_csv(results / "rounds.csv")
    fake = [r for r in rounds if r["cell_id"] in cells]
    assert len(fake) == 24
    for r in fake:
        assert r["predicted_duration"] == pytest.approx(r["duration"] / _ratio(r["round"]))
        assert r["time_scale"] == SCALE
    rest = [r for r in rounds if r["cell_id"] not in cells]
    assert rest and all(r["predicted_duration"] is None for r in rest)
    assert all(r["time_scale"] is None for r in rest)


def test_report_shows_measured_vs_predicted_with_the_median_ratio(ray_like):
    results, group, cells = ray_like
    path = render_report(results)
    text = path.read_text()
    assert "Measured vs predicted round time (Ray)" in text
    assert "Ray: measured vs predicted round time" in text  # the figure's heading
    assert (results / "report" / "fidelity.png").is_file()
    fid = read_csv(results / "report" / "fidelity.csv")
    assert [(r["group"], r["scheme"]) for r in fid] == [(group, "pgc")]
    (row,) = fid
    # 18 rounds at 1.2, 6 outliers at 10: the median of per-round ratios ignores them
    assert row["ratio_median"] == pytest.approx(1.2)
    assert row["runs"] == 2 and row["rounds"] == 24
    fake = [r for r in read_csv(results / "rounds.csv") if r["cell_id"] in cells]
    dur = np.array([r["duration"] for r in fake])
    pred = np.array([r["predicted_duration"] for r in fake])
    assert row["measured_median_s"] == pytest.approx(np.median(dur) * SCALE)
    assert row["predicted_median_s"] == pytest.approx(np.median(pred) * SCALE)
    assert f"<td>{1.2:.3f}</td>" in text


def test_local_only_report_has_no_fidelity_section(ci_results, tmp_path):
    _, out, _ = ci_results
    results = tmp_path / "results"
    shutil.copytree(out, results)
    shutil.rmtree(results / "report", ignore_errors=True)
    text = render_report(results).read_text()
    assert "<table>" in text  # the report itself is there
    assert "predicted" not in text.lower()
    assert not (results / "report" / "fidelity.csv").exists()
    assert not (results / "report" / "fidelity.png").exists()


def test_fidelity_skips_rounds_without_delays_or_prediction():
    base = {"group": "g", "scheme": "pgc", "cell_id": "c", "duration": 3.0}
    rows = [
        {**base, "predicted_duration": 2.0, "time_scale": 0.5},
        {**base, "predicted_duration": 2.0, "time_scale": 0},  # --time-scale 0: no delays
        {**base, "predicted_duration": 0.0, "time_scale": 0.5},
        {**base, "predicted_duration": None, "time_scale": None},  # local round
    ]
    (row,), points = fidelity(rows)
    assert row["rounds"] == 1 and row["ratio_median"] == pytest.approx(1.5)
    assert row["measured_median_s"] == pytest.approx(1.5)
    assert row["predicted_median_s"] == pytest.approx(1.0)
    assert points["g", "pgc"].tolist() == [[1.0, 1.5]]
    assert fidelity(rows[1:]) == ([], {})
