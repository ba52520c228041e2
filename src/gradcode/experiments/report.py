"""Plots and a self-contained HTML report for a results directory of the harness.

:func:`render_report` reads ``results.csv`` and ``rounds.csv`` (written by
:func:`gradcode.experiments.harness.run_experiment`) and writes into
``RESULTS_DIR/report/``:

* ``group_<group>.png`` per comparison group (dataset/model, partitioning,
  straggler model, s): loss and accuracy vs simulated wall-clock time and vs
  rounds (mean over seeds, sample-std band; the x position on the time axis is
  the mean time at that round), time per iteration, time to target and final
  accuracy (bars: mean, error bar: sample std over seeds), and a histogram of
  the per-round maximum staleness of the schemes with stale gradients (pgc
  family, SR-SGC); drawn by :mod:`gradcode.experiments.report_figures`;
* ``headline.png`` -- time-to-target ratio vs DGD per scheme over all groups;
* ``headline.csv`` / ``headline.md`` -- the headline table;
* for Ray runs only (their rounds log the simulator's prediction):
  ``fidelity.csv`` and ``fidelity.png`` -- measured vs predicted round time
  per (group, scheme), see :mod:`gradcode.experiments.report_fidelity`;
* ``headline_by_task.csv`` / ``.md`` and ``task_<task>.png`` -- per task,
  straggler model and ``s``: ratios vs DGD and vs the best exact code with 95%
  t-intervals over seeds (:mod:`gradcode.experiments.report_study`);
* for Ray runs: ``wallclock.csv`` / ``.md`` and ``wallclock_<group>.png`` --
  time to target on the measured and the simulated clock, in seconds
  (:mod:`gradcode.experiments.report_wallclock`);
* ``report.html`` -- titled by the experiment's name: its run parameters,
  the tuned learning rates (``[tune]``), the tables, and everything above,
  images embedded as base64.

Time to target.  For each (group, seed) the target of ``[report] metric``
(``train_loss``, ``test_loss`` or ``test_accuracy``) is, in this order,
``[report] targets[task]``, the ``target_accuracy`` column (accuracy only),
the absolute ``[report] target``, or the metric DGD reaches at ``target_at``
of its rounds (the last evaluation at or before that round; ``target_at = 1``
is DGD's final value); see :func:`gradcode.experiments.report_study.target_for`.
A run's time to target is the simulated time of its first evaluation that
reaches the target (accuracy ``>=``, loss ``<=``; ``inf`` if never); the
ratio vs DGD is taken per seed (both runs saw the same straggler schedule),
then averaged over the seeds where the scheme reached the target.  The
rounds-to-target ratio (rounds at that first evaluation, per seed, vs DGD's)
is reported next to it, to separate "fewer rounds" from "cheaper rounds".
Standard deviations are sample ones (``ddof = 1``; "–" for a single value).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from .harness import read_csv as _read_csv
from .report_fidelity import fidelity, fidelity_html
from .report_figures import (
    PGC_FAMILY,
    _fidelity_figure,
    _group_figure,
    _headline_figure,
    _mean_std,
    _scheme_order,
    group_figure,
    group_title,
)
from .report_page import experiment, params_html, tuning_html
from .report_study import csv_text as _csv_text
from .report_study import target_for, target_text, write_study
from .tuning import rounds_to_target, time_to_target

BASELINE = "dgd"


#: Columns the report needs in each input table.
_REQUIRED = {
    "results.csv": ("cell_id", "group", "scheme", "seed", "status"),
    "rounds.csv": ("cell_id", "round", "time"),
}


def read_csv(path: Path) -> list[dict]:
    """Rows of an input table, checked: it exists, ends with a newline (not
    truncated), has the columns the report needs and a full row per line.
    Anything else is one ``ValueError`` naming the file."""
    path = Path(path)
    hint = "rerun `gradcode experiment run` to rewrite it"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path} is missing ({hint})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from None
    if not text.endswith("\n"):
        raise ValueError(f"{path} is truncated (no final newline; {hint})")
    try:
        table = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ValueError(f"{path} is not a valid CSV file: {exc}") from None
    header = table[0] if table else []
    missing = [c for c in _REQUIRED.get(path.name, ()) if c not in header]
    if missing:
        raise ValueError(f"{path} lacks column(s) {missing} ({hint})")
    for i, row in enumerate(table[1:]):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {i + 2} has {len(row)} fields, not {len(header)}")
    return _read_csv(path)


def _settings(results_dir: Path, **override) -> dict:
    rep = {"metric": "train_loss", "target_at": 1.0, "target": None}
    exp = results_dir / "experiment.json"
    if exp.is_file():
        rep.update(json.loads(exp.read_text()).get("report", {}))
    rep.update({k: v for k, v in override.items() if v is not None})
    return rep


def _curves(round_rows: list[dict]) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """cell_id -> arrays over evaluation rounds (round, time, losses, accuracy)."""
    by_cell: dict[str, list[dict]] = defaultdict(list)
    for r in round_rows:
        by_cell[r["cell_id"]].append(r)
    out = {}
    for cid, rows in by_cell.items():
        rows.sort(key=lambda r: r["round"])
        ev = [r for r in rows if r.get("train_loss") is not None]
        out[cid] = {
            "round": np.array([r["round"] + 1 for r in ev], dtype=float),
            "time": np.array([r["time"] for r in ev], dtype=float),
            "train_loss": np.array([r["train_loss"] for r in ev], dtype=float),
            "test_loss": np.array([r["test_loss"] for r in ev], dtype=float),
            "test_accuracy": np.array([r["test_accuracy"] for r in ev], dtype=float),
            "staleness_max": np.array([r["staleness_max"] or 0 for r in rows], dtype=int),
            "rounds": len(rows),
        }
    return out


def analyse(results_dir: str | Path, **settings) -> dict:
    """Per-(group, scheme, seed) time to target and ratios vs DGD; the headline rows."""
    results_dir = Path(results_dir)
    rep = _settings(results_dir, **settings)
    rows = [r for r in read_csv(results_dir / "results.csv") if r["status"] == "ok"]
    curves = _curves(read_csv(results_dir / "rounds.csv"))
    metric = rep["metric"]
    per_run = []
    by_gs: dict[tuple[str, int], dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["cell_id"] in curves:
            by_gs[r["group"], r["seed"]][r["scheme"]] = r
    for (group, seed), schemes in sorted(by_gs.items()):
        base = schemes.get(BASELINE)
        base_curve = curves[base["cell_id"]] if base is not None else None
        target = target_for(rep, list(schemes.values()), base_curve)
        has_base = base is not None and target is not None
        t_base = time_to_target(curves[base["cell_id"]], metric, target) if has_base else math.nan
        r_base = rounds_to_target(curves[base["cell_id"]], metric, target) if has_base else math.nan
        for scheme, r in schemes.items():
            c = curves[r["cell_id"]]
            ttt = time_to_target(c, metric, target) if target is not None else math.nan
            rtt = rounds_to_target(c, metric, target) if target is not None else math.nan
            ratio = ttt / t_base if np.isfinite(t_base) and t_base > 0 else math.nan
            r_ratio = rtt / r_base if np.isfinite(r_base) and r_base > 0 else math.nan
            per_run.append(
                {
                    "group": group,
                    "task": f"{r['dataset']}/{r['model']}",
                    "partitioning": r.get("partitioning"),
                    "s": r.get("s"),
                    "seed": seed,
                    "scheme": scheme,
                    "straggler": r["straggler"],
                    "cell_id": r["cell_id"],
                    "backend": r.get("backend") or "local",
                    "time_scale": r.get("time_scale"),
                    "retimed_from": r.get("retimed_from") or "",
                    "metric": metric,
                    "target": target,
                    "time_to_target": ttt,
                    "ratio_vs_dgd": ratio,
                    "rounds_to_target": rtt,
                    "rounds_ratio_vs_dgd": r_ratio,
                    "test_accuracy": r["test_accuracy"],
                    "time_per_round": r["time_per_round"],
                    "lr": r.get("lr"),
                    "momentum": r.get("momentum"),
                    "tuned": bool(r.get("tuned")),
                }
            )
    return {"settings": rep, "per_run": per_run, "headline": _headline(per_run)}


def _headline(per_run: list[dict], key: str | None = None) -> list[dict]:
    """One row per scheme (or per (key, scheme)): ratio vs DGD and final accuracy."""
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    for p in per_run:
        buckets[(p[key] if key else "", p["scheme"])].append(p)
    out = []
    keys = sorted({k for k, _ in buckets})
    for k in keys:
        for scheme in _scheme_order([s for kk, s in buckets if kk == k]):
            ps = buckets[k, scheme]
            ratios = [p["ratio_vs_dgd"] for p in ps]
            reached = sum(np.isfinite(p["time_to_target"]) for p in ps)
            r_mean, r_std = _mean_std(ratios)
            rr_mean, rr_std = _mean_std([p["rounds_ratio_vs_dgd"] for p in ps])
            a_mean, a_std = _mean_std([p["test_accuracy"] for p in ps])
            t_mean, _ = _mean_std([p["time_per_round"] for p in ps])
            row = {key: k} if key else {}
            row.update(
                scheme=scheme,
                runs=len(ps),
                reached=int(reached),
                ratio_mean=r_mean,
                ratio_std=r_std,
                ratio_median=float(np.nanmedian(ratios)) if np.isfinite(ratios).any() else math.nan,
                rounds_ratio_mean=rr_mean,
                rounds_ratio_std=rr_std,
                lr=_lr_text(ps),
                accuracy_mean=a_mean,
                accuracy_std=a_std,
                time_per_round=t_mean,
            )
            out.append(row)
    return out


def _lr_text(ps: list[dict]) -> str:
    """The learning rates used (``"0.5"``, or ``"0.1-1"`` when they differ by group)."""
    lrs = sorted({float(p["lr"]) for p in ps if p.get("lr") is not None})
    mark = " (tuned)" if any(p.get("tuned") for p in ps) else ""
    if not lrs:
        return ""
    return (f"{lrs[0]:g}" if len(lrs) == 1 else f"{lrs[0]:g}-{lrs[-1]:g}") + mark


# ---------------------------------------------------------------- tables and HTML


def _fmt(x, digits=3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def _table_rows(head: list[dict], key: str | None = None) -> tuple[list[str], list[list[str]]]:
    cols = ([key] if key else []) + [
        "scheme",
        "lr",
        "time-to-target ratio vs DGD (mean ± std)",
        "median ratio",
        "rounds-to-target ratio vs DGD (mean ± std)",
        "reached/runs",
        "final test accuracy",
        "time/round",
    ]
    body = []
    for h in head:
        body.append(
            ([str(h[key])] if key else [])
            + [
                h["scheme"],
                h.get("lr", ""),
                f"{_fmt(h['ratio_mean'])} ± {_fmt(h['ratio_std'])}",
                _fmt(h["ratio_median"]),
                f"{_fmt(h['rounds_ratio_mean'])} ± {_fmt(h['rounds_ratio_std'])}",
                f"{h['reached']}/{h['runs']}",
                f"{_fmt(h['accuracy_mean'])} ± {_fmt(h['accuracy_std'])}",
                _fmt(h["time_per_round"], 2),
            ]
        )
    return cols, body


def markdown_table(head: list[dict], key: str | None = None) -> str:
    cols, body = _table_rows(head, key)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def _html_table(head: list[dict], key: str | None = None) -> str:
    cols, body = _table_rows(head, key)
    th = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


CSS = """body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:right}th{background:#eee}img{max-width:100%}"""


def render_report(results_dir: str | Path, **settings) -> Path:
    """Write the plots, headline table and ``report.html``; return the HTML path.

    ``settings`` override the experiment's ``[report]`` table (``metric``,
    ``target_at``, ``target``).
    """
    results_dir = Path(results_dir)
    out = results_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    an = analyse(results_dir, **settings)
    per_run, head = an["per_run"], an["headline"]
    all_rows = read_csv(results_dir / "results.csv")
    ok_rows = [r for r in all_rows if r["status"] == "ok"]
    round_rows = read_csv(results_dir / "rounds.csv")
    curves = _curves(round_rows)
    ok_rows = [r for r in ok_rows if r["cell_id"] in curves]
    fid_rows, fid_points = fidelity(round_rows)
    if fid_rows:
        (out / "fidelity.csv").write_text(_csv_text(fid_rows))

    by_straggler = _headline(per_run, key="straggler")
    by_task = _headline(per_run, key="task")
    _write_headline_csv(out / "headline.csv", head)
    (out / "headline.md").write_text(
        markdown_table(head)
        + "\nBy straggler model:\n\n"
        + markdown_table(by_straggler, "straggler")
        + "\nBy dataset/model:\n\n"
        + markdown_table(by_task, "task")
    )
    (out / "per_run.csv").write_text(_csv_text(per_run))

    images = [_headline_figure(head, out / "headline.png")] if head else []
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in ok_rows:
        groups[r["group"]].append(r)
    for g in sorted(groups):
        images.append(_group_figure(g, groups[g], curves, per_run, out / f"group_{g}.png"))

    rep = an["settings"]
    titles = {f"group_{g}": group_title(groups[g]) for g in groups}
    group_titles = {g: group_title(groups[g]) for g in groups}
    study_html, study_images = write_study(out, per_run, round_rows, rep["metric"], group_titles)
    target_txt = target_text(rep, ok_rows)
    failed = [r for r in all_rows if r["status"] != "ok"]
    skipped = _read_skipped(results_dir / "skipped.csv")
    exp = experiment(results_dir)
    name = html.escape(str(exp.get("name") or results_dir.name))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{name}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{name}</h1>",
        f"<p>Results directory {html.escape(str(results_dir))}.</p>",
        params_html(exp, all_rows),
        tuning_html(exp, results_dir, read_csv),
        f"<p>{len(ok_rows)} finished cells, {len(failed)} failed or missing, "
        f"{len(skipped)} skipped, {len(groups)} groups. Target: {html.escape(target_txt)}; "
        "ratio = scheme's simulated time to target / DGD's, per seed (same straggler schedule), "
        "mean ± sample std (ddof = 1) over the runs that reached it; the rounds-to-target ratio "
        "separates fewer rounds from cheaper rounds.</p>",
        "<h2>Headline</h2>",
        _html_table(head),
        "<h3>By straggler model</h3>",
        _html_table(by_straggler, "straggler"),
        "<h3>By dataset/model</h3>",
        _html_table(by_task, "task"),
    ]
    parts.append(study_html)
    if fid_rows:
        parts.append(fidelity_html(fid_rows))
    if skipped:
        notes = sorted({f"{r['scheme']} at s={r['s']}: {r['reason']}" for r in skipped})
        parts.append("<h3>Skipped</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes))
        parts.append("</ul>")
    if failed:
        parts.append("<h3>Failed or missing cells</h3><ul>")
        parts += [f"<li>{html.escape(r['cell_id'])}: {html.escape(str(r['error']))}</li>"
                  for r in failed]  # fmt: skip
        parts.append("</ul>")
    parts.append("<h2>Figures</h2>")
    images += [p for p, _ in study_images]
    titles.update({p.stem: t for p, t in study_images})
    titles["headline"] = "Time-to-target ratio vs DGD, all groups"
    if fid_rows:
        images.append(_fidelity_figure(fid_points, out / "fidelity.png"))
        titles["fidelity"] = "Ray: measured vs predicted round time"
    for p in images:
        parts.append(f"<h3>{html.escape(titles.get(p.stem, p.stem))}</h3>{_img(p)}")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


def _write_headline_csv(path: Path, head: list[dict]) -> None:
    path.write_text(_csv_text(head))


def _read_skipped(path: Path) -> list[dict]:
    return read_csv(path) if path.is_file() else []


__all__ = [
    "PGC_FAMILY",
    "analyse",
    "group_figure",
    "markdown_table",
    "render_report",
    "time_to_target",
]
