"""The HTML/PNG report of a results directory."""

import base64
import math
import re
import shutil

import numpy as np
import pytest

from gradcode.experiments.report import analyse, render_report, time_to_target


def test_time_to_target():
    curve = {"time": np.array([1.0, 2.0, 3.0]), "train_loss": np.array([0.5, 0.3, 0.2])}
    assert time_to_target(curve, "train_loss", 0.3) == 2.0
    assert time_to_target(curve, "train_loss", 0.6) == 1.0
    assert time_to_target(curve, "train_loss", 0.1) == math.inf


def test_analyse_ratios(ci_results):
    cfg, out, _ = ci_results
    an = analyse(out)
    assert an["settings"]["target_at"] == 1.0 and an["settings"]["metric"] == "train_loss"
    runs = an["per_run"]
    assert len(runs) == len(cfg.cells())
    for p in runs:
        if p["scheme"] == "dgd":  # DGD reaches its own final loss, at its final time
            assert p["ratio_vs_dgd"] == pytest.approx(1.0)
    head = {h["scheme"]: h for h in an["headline"]}
    assert set(head) == {"dgd", "is_sgd", "frc", "pgc", "pgc_reference"}
    assert head["dgd"]["ratio_mean"] == pytest.approx(1.0)
    assert head["frc"]["reached"] == head["frc"]["runs"] == 4  # exact: same iterates as DGD
    assert 0 <= head["pgc"]["accuracy_mean"] <= 1
    # an absolute target overrides target_at
    loose = analyse(out, target=1e9)
    assert all(p["target"] == 1e9 for p in loose["per_run"])


def test_report_renders_html_with_images_and_table(ci_results, tmp_path):
    _, out, _ = ci_results
    results = tmp_path / "results"
    shutil.copytree(out, results)
    path = render_report(results)
    assert path == results / "report" / "report.html" and path.is_file()
    text = path.read_text()
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    # headline + one figure per group (2 straggler models x 1 task x 1 s x 1 partitioning)
    assert len(imgs) == 3
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "<table>" in text and "time-to-target ratio vs DGD" in text
    for scheme in ("dgd", "is_sgd", "frc", "pgc", "pgc_reference"):
        assert f"<td>{scheme}</td>" in text
    assert "cyclic_mds at s=2" in text  # the skipped note
    assert 'src="http' not in text and "<link" not in text  # self-contained
    pngs = sorted(p.name for p in (results / "report").glob("*.png"))
    assert "headline.png" in pngs and len(pngs) == 3
    md = (results / "report" / "headline.md").read_text()
    assert md.startswith("| scheme |") and "By straggler model" in md and "By dataset/model" in md


def test_cli_report(ci_results, tmp_path, capsys, monkeypatch):
    import gradcode.experiments.report as report_module
    from gradcode.cli_experiment import report

    _, out, _ = ci_results
    calls = []
    fake = lambda d: calls.append(d) or d / "report" / "report.html"  # noqa: E731
    monkeypatch.setattr(report_module, "render_report", fake)  # rendering is tested above
    report(out)
    assert calls == [out]
    assert "report.html" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no results.csv"):
        report(tmp_path / "empty")
