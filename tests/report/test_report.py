"""The HTML/PNG report of a results directory."""

import base64
import math
import re
import shutil

import numpy as np
import pytest
from scipy import stats

from gradcode.report.analysis import analyse
from gradcode.report.page import render_report
from gradcode.report.tables import time_to_target


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
    assert head["dgd"]["ratio_gmean"] == pytest.approx(1.0)
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
    # + one per-task figure (issue 14)
    assert len(imgs) == 4
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "<table>" in text and "time-to-target ratio vs DGD" in text
    for scheme in ("dgd", "is_sgd", "frc", "pgc", "pgc_reference"):
        assert f"<td>{scheme}</td>" in text
    assert "cyclic_mds at s=2" in text  # the skipped note
    assert 'src="http' not in text and "<link" not in text  # self-contained
    pngs = sorted(p.name for p in (results / "report").glob("*.png"))
    assert "headline.png" in pngs and "task_breast_cancer_logreg.png" in pngs and len(pngs) == 4
    md = (results / "report" / "headline.md").read_text()
    assert md.startswith("| scheme |") and "By straggler model" in md and "By dataset/model" in md


def test_cli_report(ci_results, tmp_path, capsys, monkeypatch):
    import gradcode.report.page as report_module
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


# ---------------------------------------------------------------- issue 13.8 and tuning


def test_ratios_over_seeds_are_geometric_means_with_log_scale_intervals(ci_results):
    _, out, _ = ci_results
    an = analyse(out)
    for h in an["headline"]:
        ratios = [
            p["ratio_vs_dgd"]
            for p in an["per_run"]
            if p["scheme"] == h["scheme"] and np.isfinite(p["ratio_vs_dgd"])
        ]
        if len(ratios) > 1:
            logs = np.log(ratios)  # geometric mean, t-interval on the log scale
            half = stats.t.ppf(0.975, len(logs) - 1) * np.std(logs, ddof=1) / np.sqrt(len(logs))
            assert h["ratio_gmean"] == pytest.approx(np.exp(logs.mean()))
            assert h["ratio_ci_high"] == pytest.approx(np.exp(logs.mean() + half))
            assert h["ratio_n"] == len(ratios)
    assert all("rounds_to_target" in p and "rounds_ratio_vs_dgd" in p for p in an["per_run"])
    dgd = [p for p in an["per_run"] if p["scheme"] == "dgd"]
    assert all(p["rounds_ratio_vs_dgd"] == pytest.approx(1.0) for p in dgd)


def test_group_figure_labels_one_legend_and_distinct_styles(ci_results):
    from gradcode.report.analysis import round_curves
    from gradcode.report.figures import group_figure
    from gradcode.report.tables import read_csv

    _, out, _ = ci_results
    an = analyse(out)
    rows = [r for r in read_csv(out / "results.csv") if r["straggler"] == "persistent"]
    fig = group_figure(
        rows[0]["group"], rows, round_curves(read_csv(out / "rounds.csv")), an["per_run"]
    )
    for ax in fig.axes:
        assert ax.get_ylabel(), ax.get_title()
        assert ax.get_legend() is None  # no per-panel legends
    bar_axes = [ax for ax in fig.axes if ax.patches]
    assert len(bar_axes) == 4 and all(
        "units" in ax.get_ylabel() or "fraction" in ax.get_ylabel() for ax in bar_axes
    )
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert len(labels) == 5 and "FRC" in labels and "pgc_reference" in labels
    looks = {
        (str(h.get_linestyle()), h.get_linewidth(), h.get_marker()) for h in legend.legend_handles
    }
    assert len(looks) == len(labels)  # every scheme's line looks different
    title = fig._suptitle.get_text()
    assert "breast_cancer/logreg" in title and "s = 2" in title and "kappa=5" in title


def test_report_page_names_the_experiment_and_its_parameters(ci_results, tmp_path):
    _, out, _ = ci_results
    results = tmp_path / "somewhere"
    shutil.copytree(out, results)
    text = render_report(results).read_text()
    assert "<title>ci_small</title>" in text and "<h1>ci_small</h1>" in text
    for piece in ("<b>workers</b>: 6", "<b>rounds</b>: 12", "0.5 for every scheme",
                  "base shifted-exp:a=1,mu=1 + persistent k=1,kappa=5"):  # fmt: skip
        assert piece in text, piece
    assert "<h3>breast_cancer/logreg, iid partitions, s = 2; stragglers &#x27;persistent" in text
    assert "<h3>group_" not in text


def test_report_shows_tuned_learning_rates(tuned_results, tmp_path):
    _, out, res = tuned_results
    results = tmp_path / "tuned"
    shutil.copytree(out, results)
    text = render_report(results).read_text()
    assert "<h2>Tuned learning rates</h2>" in text and "tuning seed 7" in text
    assert "(tuned)" in text and "rounds-to-target ratio vs DGD" in text
    head = {h["scheme"]: h for h in analyse(results)["headline"]}
    for (_, scheme), (lr, _m) in res.chosen.items():
        assert head[scheme]["lr"] == f"{lr:g} (tuned)"


def test_group_figure_says_how_learning_rates_were_chosen(ci_results, tuned_results):
    from gradcode.report.analysis import round_curves
    from gradcode.report.figures import group_figure
    from gradcode.report.tables import read_csv

    for (_, out, _), expect in ((ci_results, "0.5 for every scheme (not tuned)"),
                                (tuned_results, "tuned per scheme on seed 7: dgd ")):  # fmt: skip
        rows = read_csv(out / "results.csv")
        rows = [r for r in rows if r["group"] == rows[0]["group"]]
        curves = round_curves(read_csv(out / "rounds.csv"))
        fig = group_figure(rows[0]["group"], rows, curves, analyse(out)["per_run"])
        assert expect in fig._suptitle.get_text()
