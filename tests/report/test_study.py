"""Per-task headline, 95% CIs, best exact code and Ray clocks of the report (issue 14).

Every results directory here is written by hand, so every ratio is known: a run
that reaches the target reaches it at round ``h`` and time ``T`` (constant round
time ``T / h``) and stops there, as the harness stops runs at the target; a run
that never reaches it runs ``NEVER_ROUNDS`` rounds below the target.
"""

import csv
import json
import math

import numpy as np
import pytest
from scipy import stats

from gradcode.report.analysis import analyse
from gradcode.report.page import render_report
from gradcode.report.study import best_exact, headline_by_task
from gradcode.report.tables import ci95, geo_ci95
from gradcode.report.wallclock import wallclock

TASK = "fashion_mnist/mlp"
TARGET = 0.8
NEVER_ROUNDS = 10
SEEDS = (0, 1, 2)
T_DGD = {0: 8.0, 1: 16.0, 2: 12.0}  # DGD's time to target per seed (8 rounds each)

#: scheme -> per seed (rounds to target, time-to-target ratio vs DGD), None: never reached.
PLAN = {
    "dgd": {k: (8, 1.0) for k in SEEDS},
    "pgc": {0: (6, 0.8), 1: (6, 0.9), 2: (6, 1.0)},
    "frc": {k: (8, 1.2) for k in SEEDS},
    "crc": {k: (8, 1.5) for k in SEEDS},
    # faster than frc where it reaches, but misses seed 2: ranks after frc
    "cyclic_mds": {0: (8, 0.5), 1: (8, 0.5), 2: None},
    "is_sgd": {k: None for k in SEEDS},
}


def _curve(plan, t_dgd, target=TARGET):
    """(accuracy per round, round time) of one run."""
    if plan is None:
        rounds, dt = NEVER_ROUNDS, 1.0
        return [0.7 * target * k / rounds for k in range(1, rounds + 1)], dt
    h, ratio = plan
    return [target * k / h for k in range(1, h + 1)], ratio * t_dgd / h


def write_results(
    path,
    plan=PLAN,
    *,
    column=True,
    backend="local",
    scale=None,
    fidelity=None,
    report=None,
    tuned=False,
    stragglers=("se",),
    s_values=(1,),
):
    """A results directory: results.csv, rounds.csv, experiment.json."""
    path.mkdir(parents=True, exist_ok=True)
    rows, rounds = [], []
    for st in stragglers:
        for s in s_values:
            group = f"fmnist-iid-{st}-s{s}"
            for scheme, per_seed in plan.items():
                for seed in SEEDS:
                    cid = f"{group}-{scheme}-{seed}"
                    acc, dt = _curve(per_seed[seed], T_DGD[seed])
                    cell = dict(cell_id=cid, group=group, scheme=scheme, straggler=st,
                                seed=seed, dataset="fashion_mnist", model="mlp", s=s,
                                partitioning="iid")  # fmt: skip
                    row = {**cell, "status": "ok", "error": "", "delay": "shifted-exp",
                           "lr": 0.1, "momentum": 0.0, "tuned": tuned,
                           "tune_seed": 7 if tuned else "",
                           "rounds": len(acc), "wall_clock": dt * len(acc), "time_per_round": dt,
                           "train_loss": 1 - acc[-1], "test_loss": 1 - acc[-1],
                           "test_accuracy": acc[-1], "backend": backend, "batch_size": 32,
                           "retimed_from": f"{group}-dgd-{seed}" if scheme == "frc" else "",
                           "reached_target": per_seed[seed] is not None}  # fmt: skip
                    if column:
                        row["target_accuracy"] = TARGET
                    if scale is not None:
                        row["time_scale"] = scale
                    rows.append(row)
                    for k, a in enumerate(acc):
                        rr = {**cell, "round": k, "time": dt * (k + 1), "duration": dt,
                              "train_loss": 1 - a, "test_loss": 1 - a, "test_accuracy": a,
                              "staleness_max": 0}  # fmt: skip
                        if scale is not None:
                            rr["predicted_duration"] = dt / fidelity[scheme]
                            rr["time_scale"] = scale
                        rounds.append(rr)
    for name, table in (("results.csv", rows), ("rounds.csv", rounds)):
        cols = list(dict.fromkeys(k for r in table for k in r))
        with (path / name).open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            w.writerows(table)
    rep = {"metric": "test_accuracy", **(report or {})}
    exp = {"name": "study", "workers": 8, "rounds": 10, "backend": backend, "report": rep}
    (path / "experiment.json").write_text(json.dumps(exp))
    return path


@pytest.fixture
def study(tmp_path):
    return write_results(tmp_path / "study")


def _rows(out, scheme, table=None):
    table = headline_by_task(analyse(out)["per_run"]) if table is None else table
    return [r for r in table if r["scheme"] == scheme]


def test_ci95_is_the_t_interval():
    xs = [0.8, 0.9, 1.0]
    mean, lo, hi = ci95(xs)
    half = stats.t.ppf(0.975, 2) * np.std(xs, ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(0.9) and half == pytest.approx(0.2484, abs=1e-4)
    assert (lo, hi) == pytest.approx((0.9 - half, 0.9 + half))
    m1, lo1, hi1 = ci95([1.0, math.inf, math.nan])  # only finite values count
    assert m1 == 1.0 and math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(x) for x in ci95([]))


def test_accuracy_targets_from_the_column_reach_upwards(study):
    an = analyse(study)
    assert an["settings"]["metric"] == "test_accuracy"
    runs = an["per_run"]
    assert {p["target"] for p in runs} == {TARGET}
    dgd = {p["seed"]: p for p in runs if p["scheme"] == "dgd"}
    for k in SEEDS:  # first evaluation with accuracy >= 0.8: round 8
        assert dgd[k]["time_to_target"] == pytest.approx(T_DGD[k])
        assert dgd[k]["rounds_to_target"] == 8
    pgc = sorted((p for p in runs if p["scheme"] == "pgc"), key=lambda p: p["seed"])
    assert [p["ratio_vs_dgd"] for p in pgc] == pytest.approx([0.8, 0.9, 1.0])
    assert [p["rounds_ratio_vs_dgd"] for p in pgc] == pytest.approx([0.75] * 3)
    assert all(p["time_to_target"] == math.inf for p in runs if p["scheme"] == "is_sgd")


def test_headline_by_task_means_cis_and_best_exact_code(study):
    table = headline_by_task(analyse(study)["per_run"])
    assert len(table) == len(PLAN)  # one group: one row per scheme
    (pgc,) = _rows(study, "pgc", table)
    assert (pgc["task"], pgc["partitioning"], pgc["straggler"], pgc["s"]) == (TASK, "iid", "se", 1)
    assert (pgc["runs"], pgc["reached"]) == (3, 3)
    # ratios: geometric mean, t-interval of the log ratios exponentiated, n seeds averaged
    g, lo, hi, n = geo_ci95([0.8, 0.9, 1.0])
    assert g == pytest.approx(np.exp(np.mean(np.log([0.8, 0.9, 1.0])))) and n == 3
    assert pgc["ratio_vs_dgd_gmean"] == pytest.approx(g) and pgc["ratio_vs_dgd_n"] == 3
    assert (pgc["ratio_vs_dgd_ci_low"], pgc["ratio_vs_dgd_ci_high"]) == pytest.approx((lo, hi))
    assert lo < g < hi and (lo, hi) != pytest.approx(ci95([0.8, 0.9, 1.0])[1:])
    # cyclic_mds is faster where it reaches but misses a seed: frc is the best exact code
    assert {r["best_exact"] for r in table} == {"frc"}
    vs = [0.8 / 1.2, 0.9 / 1.2, 1.0 / 1.2]
    assert pgc["ratio_vs_best_exact_gmean"] == pytest.approx(geo_ci95(vs)[0])
    assert pgc["ratio_vs_best_exact_ci_high"] == pytest.approx(geo_ci95(vs)[2])
    assert pgc["rounds_ratio_vs_dgd_gmean"] == pytest.approx(0.75)
    assert pgc["accuracy_mean"] == pytest.approx(TARGET)
    assert pgc["time_per_round_mean"] == pytest.approx(np.mean([0.8 * 8 / 6, 0.9 * 16 / 6, 2.0]))
    (frc,) = _rows(study, "frc", table)
    assert frc["ratio_vs_dgd_gmean"] == pytest.approx(1.2) and frc["retimed"] == 3
    assert frc["ratio_vs_dgd_ci_low"] == pytest.approx(1.2)  # zero spread: a point interval
    assert frc["ratio_vs_best_exact_gmean"] == pytest.approx(1.0)
    (cyc,) = _rows(study, "cyclic_mds", table)
    # a missed seed is counted (reached 2/3), not averaged (n = 2)
    assert (cyc["reached"], cyc["ratio_vs_dgd_gmean"]) == (2, pytest.approx(0.5))
    assert cyc["ratio_vs_dgd_n"] == 2
    (never,) = _rows(study, "is_sgd", table)
    assert never["reached"] == 0 and math.isnan(never["ratio_vs_dgd_gmean"])
    assert never["ratio_vs_dgd_n"] == 0
    assert math.isnan(never["time_to_target_mean"])


def test_best_exact_picks_the_smallest_mean_time():
    times = {"frc": (4, 6), "crc": (3, 6), "pgc": (1, 1)}
    runs = [
        {"scheme": c, "seed": k, "time_to_target": t}
        for c, ts in times.items()
        for k, t in enumerate(ts)
    ]
    assert best_exact(runs) == "crc"  # pgc is not an exact code
    assert best_exact([{"scheme": "frc", "seed": 0, "time_to_target": math.inf}]) == ""


def test_one_seed_has_no_interval(tmp_path):
    out = write_results(tmp_path / "one")
    rows = [r for r in csv.DictReader((out / "results.csv").open()) if r["seed"] == "0"]
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (pgc,) = _rows(out, "pgc")
    assert pgc["ratio_vs_dgd_gmean"] == pytest.approx(0.8) and math.isnan(
        pgc["ratio_vs_dgd_ci_low"]
    )
    render_report(out)
    md = (out / "report" / "headline_by_task.md").read_text()
    assert "0.800 [–]" in md


def test_target_falls_back_without_the_column(tmp_path):
    # no target_accuracy column: DGD's final accuracy (target_at = 1), i.e. 0.8 again
    out = write_results(tmp_path / "nocol", column=False)
    assert [p["target"] for p in analyse(out)["per_run"]] == pytest.approx([TARGET] * 18)
    (pgc,) = _rows(out, "pgc")
    assert pgc["ratio_vs_dgd_gmean"] == pytest.approx(geo_ci95([0.8, 0.9, 1.0])[0])
    # an absolute [report] target: 0.4 = half of 0.8, reached at half of each run's rounds
    out = write_results(tmp_path / "abs", column=False, report={"target": 0.4})
    dgd = [p for p in analyse(out)["per_run"] if p["scheme"] == "dgd"]
    assert [p["rounds_to_target"] for p in dgd] == [4, 4, 4]


def test_targets_by_task_override_the_column(tmp_path):
    out = write_results(tmp_path / "tt", report={"targets": {TASK: 0.4, "other/x": 0.9}})
    runs = analyse(out)["per_run"]
    assert {p["target"] for p in runs} == {0.4}
    pgc = {p["seed"]: p for p in runs if p["scheme"] == "pgc"}
    assert pgc[0]["rounds_to_target"] == 3  # 0.8 * 3/6 = 0.4
    # is_sgd peaks at 0.56: reaches 0.4 now (first round with 0.056 k >= 0.4: k = 8)
    assert all(p["rounds_to_target"] == 8 for p in runs if p["scheme"] == "is_sgd")
    # the column does not apply to a loss metric: train_loss keeps the DGD rule
    out = write_results(tmp_path / "loss", report={"metric": "train_loss"})
    runs = analyse(out)["per_run"]
    assert {round(p["target"], 9) for p in runs} == {round(1 - TARGET, 9)}
    assert [p["ratio_vs_dgd"] for p in runs if p["scheme"] == "frc"] == pytest.approx([1.2] * 3)


def test_report_writes_task_files_figures_and_html(tmp_path):
    out = write_results(tmp_path / "full", tuned=True, stragglers=("se", "pers"), s_values=(1, 2))
    html = render_report(out).read_text()
    rep = out / "report"
    for name in ("headline_by_task.csv", "headline_by_task.md", "task_fashion_mnist_mlp.png",
                 "headline.csv", "headline.md", "report.html"):  # fmt: skip
        assert (rep / name).is_file(), name
    assert not (rep / "wallclock.csv").exists()  # local runs only
    table = list(csv.DictReader((rep / "headline_by_task.csv").open()))
    assert len(table) == 4 * len(PLAN)  # 2 straggler models x 2 s values
    assert {"ratio_vs_dgd_ci_low", "best_exact", "ratio_vs_best_exact_gmean"} <= set(table[0])
    md = (rep / "headline_by_task.md").read_text()
    assert md.count(f"## {TASK}") == 1 and md.count("### stragglers") == 4
    cell = "{} [{}, {}], n=3".format(*(f"{x:.3f}" for x in geo_ci95([0.8, 0.9, 1.0])[:3]))
    assert cell in md and "(frc)" in md
    assert "<h2>Headline by task</h2>" in html and cell in html
    assert "time to target vs DGD" in html  # the task figure's heading


def test_task_figure_marks_never_reached_and_says_tuned(study):
    from gradcode.report.study_figures import task_figure

    rows = headline_by_task(analyse(study)["per_run"])
    fig = task_figure(TASK, rows)
    assert "same seeded straggler schedule" in fig._suptitle.get_text()
    assert "not tuned" in fig._suptitle.get_text()
    (ax,) = fig.axes
    crosses = [ln for ln in ax.lines if ln.get_marker() == "x"]
    assert len(crosses) == 1 and crosses[0].get_ydata()[0] == 1.0  # is_sgd, never reached
    assert any(t.get_text() == "never" for t in ax.texts)
    assert any(t.get_text() == "2/3" for t in ax.texts)  # cyclic_mds
    assert len(ax.patches) == len(PLAN) - 2  # bars: not DGD, not the never-reached one
    rows = [{**r, "tuned": True} for r in rows]
    assert "optimizer settings tuned per scheme" in task_figure(TASK, rows)._suptitle.get_text()


def test_group_figure_draws_the_accuracy_target(study):
    from gradcode.report.analysis import round_curves
    from gradcode.report.figures import group_figure
    from gradcode.report.tables import read_csv

    rows = read_csv(study / "results.csv")
    fig = group_figure(rows[0]["group"], rows, round_curves(read_csv(study / "rounds.csv")),
                       analyse(study)["per_run"])  # fmt: skip
    acc_axes = [ax for ax in fig.axes if ax.get_ylabel().startswith("test accuracy (")]
    assert any(ln.get_linestyle() == "--" and ln.get_ydata()[0] == pytest.approx(TARGET)
               for ax in acc_axes for ln in ax.lines)  # fmt: skip
    ttt = next(ax for ax in fig.axes if ax.get_title().startswith("time to target"))
    assert "95% CI" in ttt.get_title()


SCALE = 0.01
FIDELITY = {"dgd": 1.0, "pgc": 1.25, "frc": 1.0, "crc": 1.0, "cyclic_mds": 1.0, "is_sgd": 2.0}


@pytest.fixture
def ray_study(tmp_path):
    return write_results(tmp_path / "ray", backend="ray", scale=SCALE, fidelity=FIDELITY)


def test_wallclock_converts_both_clocks_to_seconds(ray_study):
    from gradcode.report.tables import read_csv

    an = analyse(ray_study)
    rows, curves = wallclock(an["per_run"], read_csv(ray_study / "rounds.csv"), "test_accuracy")
    by = {r["scheme"]: r for r in rows}
    dgd, pgc = by["dgd"], by["pgc"]
    assert dgd["wall_time_to_target_s_mean"] == pytest.approx(np.mean(list(T_DGD.values())) * SCALE)
    assert dgd["sim_time_to_target_s_mean"] == pytest.approx(dgd["wall_time_to_target_s_mean"])
    pgc_wall = [0.8 * 8 * SCALE, 0.9 * 16 * SCALE, 12 * SCALE]
    assert pgc["wall_time_to_target_s_mean"] == pytest.approx(np.mean(pgc_wall))
    assert pgc["sim_time_to_target_s_mean"] == pytest.approx(np.mean(pgc_wall) / 1.25)
    g, lo, hi, _ = geo_ci95([0.8, 0.9, 1.0])
    assert pgc["wall_ratio_vs_dgd_gmean"] == pytest.approx(g)
    assert pgc["sim_ratio_vs_dgd_gmean"] == pytest.approx(g / 1.25)
    assert (pgc["wall_ratio_vs_dgd_ci_low"], pgc["wall_ratio_vs_dgd_ci_high"]) == pytest.approx(
        (lo, hi)
    )
    assert pgc["fidelity"] == pytest.approx(1.25) and dgd["fidelity"] == pytest.approx(1.0)
    assert by["is_sgd"]["reached"] == 0 and math.isnan(by["is_sgd"]["wall_ratio_vs_dgd_gmean"])
    c = curves["fmnist-iid-se-s1-pgc-0"]
    assert c["wall"][-1] == pytest.approx(0.8 * 8 * SCALE)
    assert c["sim"][-1] == pytest.approx(0.8 * 8 * SCALE / 1.25)
    # rounds without their own time_scale: results.csv's column is used
    bare = [{k: v for k, v in r.items() if k != "time_scale"}
            for r in read_csv(ray_study / "rounds.csv")]  # fmt: skip
    again, _ = wallclock(an["per_run"], bare, "test_accuracy")
    for key in ("wall_time_to_target_s_mean", "sim_ratio_vs_dgd_gmean", "fidelity"):
        assert [r[key] for r in again] == pytest.approx([r[key] for r in rows], nan_ok=True)


def test_ray_report_writes_wallclock_files_and_keeps_fidelity(ray_study):
    html = render_report(ray_study).read_text()
    rep = ray_study / "report"
    for name in ("wallclock.csv", "wallclock.md", "wallclock_fmnist-iid-se-s1.png",
                 "fidelity.csv", "fidelity.png"):  # fmt: skip
        assert (rep / name).is_file(), name
    table = {r["scheme"]: r for r in csv.DictReader((rep / "wallclock.csv").open())}
    assert float(table["pgc"]["fidelity"]) == pytest.approx(1.25)
    assert "<h2>Ray: wall clock vs simulated clock</h2>" in html
    assert "Measured vs predicted round time (Ray)" in html
    assert "Ray wall clock:" in html  # the wallclock figure's heading


def test_cli_report_on_a_study_dir(study, capsys):
    from gradcode.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["report", str(study)])
    assert exc.value.code == 0
    assert "report.html" in capsys.readouterr().out.replace("\n", "")  # rich wraps long paths
    assert (study / "report" / "headline_by_task.md").is_file()
