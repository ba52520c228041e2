"""Plots and a self-contained HTML report for a results directory of the harness.

:func:`render_report` reads ``results.csv`` and ``rounds.csv`` (written by
:func:`gradcode.grid.harness.run_experiment`) and writes into
``RESULTS_DIR/report/``:

* ``group_<group>.png`` per comparison group (dataset/model, partitioning,
  straggler model, s): loss and accuracy vs simulated wall-clock time and vs
  rounds (mean over seeds, sample-std band; the x position on the time axis is
  the mean time at that round), time per iteration, time to target and final
  accuracy (bars: mean, error bar: sample std over seeds), and a histogram of
  the per-round maximum staleness of the schemes with stale gradients (pgc
  family, SR-SGC); drawn by :mod:`gradcode.report.figures`;
* ``headline.png`` -- time-to-target ratio vs DGD per scheme over all groups;
* ``headline.csv`` / ``headline.md`` -- the headline table;
* for Ray runs only (their rounds log the simulator's prediction):
  ``fidelity.csv`` and ``fidelity.png`` -- measured vs predicted round time
  per (group, scheme), see :mod:`gradcode.report.fidelity`;
* ``headline_by_task.csv`` / ``.md`` and ``task_<task>.png`` -- per task,
  straggler model and ``s``: ratios vs DGD and vs the best exact code with 95%
  t-intervals over seeds (:mod:`gradcode.report.study`);
* for Ray runs: ``wallclock.csv`` / ``.md`` and ``wallclock_<group>.png`` --
  time to target on the measured and the simulated clock, in seconds
  (:mod:`gradcode.report.wallclock`);
* ``<grid>_results.csv`` -- one row per reported cell: its settings, time to
  target (empty if never reached), final test accuracy and the ``gradcode train``
  command that reproduces it (:mod:`gradcode.report.cells`); the file a study
  commits as ``docs/results/<grid>_results.csv``;
* ``report.html`` -- titled by the experiment's name: its run parameters,
  the tuned learning rates (``[tune]``), the tables, and everything above,
  images embedded as base64.

How times to target and ratios are computed: :mod:`gradcode.report.analysis`.
"""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from pathlib import Path

from .analysis import analyse, headline, headline_cells, read_checked_csv, round_curves
from .cells import CELL_RESULT_COLUMNS, cell_rows
from .fidelity import fidelity, fidelity_html
from .figures import fidelity_figure, group_title, headline_figure, save_group_figure
from .sections import experiment, params_html, tuning_html
from .study import (
    NOTE,
    TASK_COLUMNS,
    headline_by_task,
    html_sections,
    pivot_markdown,
    target_text,
    task_markdown,
    task_table_rows,
)
from .study_figures import write_task_figures, write_wallclock_figures
from .tables import html_table, markdown_table, write_csv
from .wallclock import WALL_COLUMNS, wall_markdown, wall_table_rows, wallclock


def headline_markdown(head: list[dict], key: str | None = None) -> str:
    """The headline table (one row per scheme, or per ``key`` and scheme) in markdown."""
    return markdown_table(*headline_cells(head, key))


def headline_html(head: list[dict], key: str | None = None) -> str:
    return html_table(*headline_cells(head, key))


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
    all_rows = read_checked_csv(results_dir / "results.csv")
    ok_rows = [r for r in all_rows if r["status"] == "ok"]
    round_rows = read_checked_csv(results_dir / "rounds.csv")
    curves = round_curves(round_rows)
    ok_rows = [r for r in ok_rows if r["cell_id"] in curves]
    fid_rows, fid_points = fidelity(round_rows)
    if fid_rows:
        write_csv(out / "fidelity.csv", fid_rows)

    by_straggler = headline(per_run, key="straggler")
    by_task = headline(per_run, key="task")
    write_csv(out / "headline.csv", head)
    (out / "headline.md").write_text(
        headline_markdown(head)
        + "\nBy straggler model:\n\n"
        + headline_markdown(by_straggler, "straggler")
        + "\nBy dataset/model:\n\n"
        + headline_markdown(by_task, "task")
    )
    write_csv(out / "per_run.csv", per_run)
    exp = experiment(results_dir)
    grid_name = str(exp.get("name") or results_dir.name)
    write_csv(out / f"{grid_name}_results.csv", cell_rows(all_rows, per_run), CELL_RESULT_COLUMNS)

    images = [headline_figure(head, out / "headline.png")] if head else []
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in ok_rows:
        groups[r["group"]].append(r)
    for g in sorted(groups):
        images.append(save_group_figure(g, groups[g], curves, per_run, out / f"group_{g}.png"))

    rep = an["settings"]
    titles = {f"group_{g}": group_title(groups[g]) for g in groups}
    group_titles = {g: group_title(groups[g]) for g in groups}
    study_html, study_images = write_study(out, per_run, round_rows, rep["metric"], group_titles)
    target_txt = target_text(rep, ok_rows)
    failed = [r for r in all_rows if r["status"] != "ok"]
    skipped_csv = results_dir / "skipped.csv"
    skipped = read_checked_csv(skipped_csv) if skipped_csv.is_file() else []
    name = html.escape(grid_name)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{name}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{name}</h1>",
        f"<p>Results directory {html.escape(str(results_dir))}.</p>",
        params_html(exp, all_rows),
        tuning_html(exp, results_dir),
        f"<p>{len(ok_rows)} finished cells, {len(failed)} failed or missing, "
        f"{len(skipped)} skipped, {len(groups)} groups. Target: {html.escape(target_txt)}; "
        "ratio = scheme's simulated time to target / DGD's, per seed (same straggler schedule), "
        "geometric mean and 95% t-interval of the log ratios over the n runs where both "
        "reached the target (the others are counted in reached/runs); the rounds-to-target "
        "ratio separates fewer rounds from cheaper rounds.</p>",
        "<h2>Headline</h2>",
        headline_html(head),
        "<h3>By straggler model</h3>",
        headline_html(by_straggler, "straggler"),
        "<h3>By dataset/model</h3>",
        headline_html(by_task, "task"),
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
        images.append(fidelity_figure(fid_points, out / "fidelity.png"))
        titles["fidelity"] = "Ray: measured vs predicted round time"
    for p in images:
        parts.append(f"<h3>{html.escape(titles.get(p.stem, p.stem))}</h3>{_img(p)}")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path


def write_study(out, per_run: list[dict], round_rows: list[dict], metric: str, titles: dict):
    """Write the study's tables and figures into ``out`` (the report folder).

    Files: ``headline_by_task.csv`` / ``.md``, ``pivot_by_task.md``, ``task_<task>.png``;
    with Ray runs also ``wallclock.csv`` / ``.md`` and ``wallclock_<group>.png``.
    Returns the HTML section and ``(path, title)`` pairs of the figures, for
    ``report.html``.  ``titles``: group -> readable title."""
    rows = headline_by_task(per_run)
    if not rows:
        return "", []
    write_csv(out / "headline_by_task.csv", rows)
    (out / "headline_by_task.md").write_text(task_markdown(rows))
    (out / "pivot_by_task.md").write_text(pivot_markdown(rows))
    images = write_task_figures(rows, out)
    parts = ["<h2>Headline by task</h2>", f"<p>{NOTE}</p>"]
    parts.append(html_sections(rows, TASK_COLUMNS, task_table_rows, "h3"))
    wall, curves = wallclock(per_run, round_rows, metric)
    if wall:
        write_csv(out / "wallclock.csv", wall)
        (out / "wallclock.md").write_text(wall_markdown(wall))
        parts.append("<h2>Ray: wall clock vs simulated clock</h2>")
        parts.append(
            "<p>Wall clock = measured time &times; time_scale (seconds); simulated = cumulative "
            "predicted round time &times; time_scale, at the same first evaluation that reached "
            "the target; fidelity = mean measured / mean predicted round time.</p>"
        )
        parts.append(html_sections(wall, WALL_COLUMNS, wall_table_rows, "h3"))
        ray = [p for p in per_run if p["cell_id"] in curves]
        images += write_wallclock_figures(ray, curves, titles, out)
    return "".join(parts), images


__all__ = ["headline_html", "headline_markdown", "render_report", "write_study"]
