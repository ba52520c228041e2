"""Per-task tables of the PGC study (issue 14): targets, 95% CIs, best exact code, Ray clocks.

What is compared.  Every (task, partitioning, straggler model, ``s``) is one
comparison *group*; inside it every scheme runs on the same seeds, and one seed
fixes one straggler schedule, so the runs of two schemes with the same seed saw
exactly the same slow workers.  That is why every ratio here is taken *per seed*:

* **time-to-target ratio vs DGD** of a scheme on seed ``k`` is
  ``T_scheme(k) / T_dgd(k)``, where ``T`` is the simulated time of the first
  evaluation that reaches the target (below 1: the scheme got there faster);
* **ratio vs the best exact code** is ``T_scheme(k) / T_best(k)``; the best exact
  code of a group is, among ``frc``, ``crc``, ``cyclic_mds`` and ``partial``
  (the codes that recover the full gradient) present in it, the one with the
  smallest mean simulated time to target over the seeds (a code that missed the
  target on some seed ranks after every code that reached it on more seeds);
* **rounds-to-target ratio vs DGD**: the same with rounds instead of time, to
  separate "fewer rounds" from "cheaper rounds".

Runs that never reach the target.  Such a run has time to target ``inf``.  It is
*counted, not dropped*: ``reached/runs`` says how many of a scheme's runs reached
the target, and ``n`` next to each ratio says over how many seeds it is taken --
the seeds where *both* runs reached it (a scheme that never reaches it has no
ratio, "–", and ``reached`` 0).  A ratio over fewer seeds than ``runs`` is
therefore conditional on reaching; read it with the count.

The target.  For each (group, seed), in this order: ``[report] targets`` keyed
by task label (``{"fashion_mnist/mlp" = 0.85}``, in the metric's units); with
``metric = "test_accuracy"``, the row's ``target_accuracy`` column (the task's
absolute accuracy target, at which the harness stops a run early); the
absolute ``[report] target``; else the value of the metric DGD reaches at
``target_at`` of its rounds.  Accuracy targets are reached upwards (first
evaluation ``>=`` target), losses downwards (:func:`gradcode.report.tables.reached`).

Statistics.  Ratios are summarised by their **geometric mean** with a 95%
interval on the log scale (:func:`gradcode.report.tables.geo_ci95`): with
``y_k = ln(ratio_k)`` over the ``n`` seeds where both reached,
``exp(mean(y) ± t_{0.975, n-1} * sd(y) / sqrt(n))`` (``sd``: ``ddof = 1``;
Student's t).  A ratio of 2 and one of 0.5 average to 1, not 1.25, and the
interval stays positive under heavy-tailed clocks (an arithmetic t-interval of
ratios 0.2, 0.3, 3.0 runs below zero).  For example ratios 0.5, 1, 2: geometric
mean 1, interval [0.179, 5.595].  The time to target itself (seconds of the
simulated clock, not a ratio) keeps the arithmetic mean and t-interval
(:func:`gradcode.report.tables.ci95`).  With one seed there is no interval ("–").

Ray runs: :mod:`gradcode.report.wallclock`.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict

import numpy as np

from .tables import (
    fmt,
    fmt_ci,
    higher_is_better,
    html_table,
    markdown_lines,
    mean,
    put_ci,
    put_geo_ci,
    scheme_order,
    target_of,
)

#: The codes that recover the exact full gradient (candidates for "best exact code").
EXACT_CODES = ("frc", "crc", "cyclic_mds", "partial")


def task_label(row: dict) -> str:
    return f"{row['dataset']}/{row['model']}"


def target_for(rep: dict, rows: list[dict], base_curve: dict | None) -> float | None:
    """The target of one (group, seed); ``rows``: its results rows (any scheme).

    Order: ``[report] targets[task]``, the ``target_accuracy`` column (accuracy
    metric only), ``[report] target``, DGD's metric at ``target_at`` of its rounds.
    """
    metric = rep["metric"]
    targets = rep.get("targets") or {}
    task = task_label(rows[0])
    if task in targets:
        return float(targets[task])
    if higher_is_better(metric):
        col = [r.get("target_accuracy") for r in rows]
        col = [float(x) for x in col if isinstance(x, int | float) and np.isfinite(x)]
        if col:
            return col[0]
    if rep.get("target") is not None:
        return float(rep["target"])
    if base_curve is not None and len(base_curve["round"]):
        return target_of(base_curve, metric, float(rep["target_at"]))
    return None


def target_text(rep: dict, rows: list[dict]) -> str:
    """How the targets were set, for the report page."""
    metric, parts = rep["metric"], []
    if rep.get("targets"):
        parts.append("per task " + ", ".join(f"{k} {v}" for k, v in rep["targets"].items()))
    if higher_is_better(metric) and any(r.get("target_accuracy") is not None for r in rows):
        parts.append("each task's target_accuracy (results.csv)")
    if rep.get("target") is not None:
        parts.append(f"absolute target {rep['target']}")
    parts.append(f"the {metric} DGD reaches at {rep['target_at']:g} of its rounds (per seed)")
    return f"{metric}: " + ", else ".join(parts)


# ---------------------------------------------------------------- per-task headline


def seed_ratio(a: float, b: float) -> float:
    """``a / b`` when both reached (finite, ``b > 0``); ``inf`` when only ``b`` did."""
    if not (np.isfinite(b) and b > 0):
        return math.nan
    return a / b


def best_exact(runs: list[dict]) -> str:
    """The group's best exact code ("" if none present or none ever reached the target).

    Rank: most seeds reached, then smallest mean time to target over those seeds."""
    best, key = "", None
    for code in EXACT_CODES:
        ts = [p["time_to_target"] for p in runs if p["scheme"] == code]
        fin = [t for t in ts if np.isfinite(t)]
        if not fin:
            continue
        k = (-len(fin), float(np.mean(fin)))
        if key is None or k < key:
            best, key = code, k
    return best


#: Identity columns of a group, in table order.
GROUP_KEYS = ("task", "partitioning", "straggler", "s", "group")


def headline_by_task(per_run: list[dict]) -> list[dict]:
    """One row per (task, partitioning, straggler, s, scheme); see the module docstring.

    ``per_run``: :func:`gradcode.report.analysis.analyse`'s rows."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for p in per_run:
        groups[p["group"]].append(p)
    order = sorted(groups, key=lambda g: tuple(str(groups[g][0][k]) for k in GROUP_KEYS))
    out = []
    for g in order:
        runs = groups[g]
        best = best_exact(runs)
        t_best = {p["seed"]: p["time_to_target"] for p in runs if p["scheme"] == best}
        for scheme in scheme_order({p["scheme"] for p in runs}):
            ps = sorted((p for p in runs if p["scheme"] == scheme), key=lambda p: p["seed"])
            row = {k: ps[0][k] for k in GROUP_KEYS}
            row.update(
                scheme=scheme,
                runs=len(ps),
                reached=int(sum(np.isfinite(p["time_to_target"]) for p in ps)),
                target=mean([p["target"] for p in ps]),
            )
            put_ci(row, "time_to_target", [p["time_to_target"] for p in ps])
            put_geo_ci(row, "ratio_vs_dgd", [p["ratio_vs_dgd"] for p in ps])
            row["best_exact"] = best
            vs_best = [seed_ratio(p["time_to_target"], t_best.get(p["seed"], math.nan)) for p in ps]
            put_geo_ci(row, "ratio_vs_best_exact", vs_best)
            put_geo_ci(row, "rounds_ratio_vs_dgd", [p["rounds_ratio_vs_dgd"] for p in ps])
            row["accuracy_mean"] = mean([p["test_accuracy"] for p in ps])
            row["time_per_round_mean"] = mean([p["time_per_round"] for p in ps])
            row["tuned"] = any(p.get("tuned") for p in ps)
            row["retimed"] = sum(bool(p.get("retimed_from")) for p in ps)
            out.append(row)
    return out


TASK_COLUMNS = (
    "scheme",
    "reached/runs",
    "time to target (mean [95% CI])",
    "ratio vs DGD (geo. mean [95% CI], n)",
    "ratio vs best exact code (geo. mean [95% CI], n)",
    "rounds ratio vs DGD (geo. mean [95% CI], n)",
    "final test accuracy",
    "time/round",
)


def task_table_rows(rows: list[dict]) -> list[list[str]]:
    """The cells of one group's table (columns :data:`TASK_COLUMNS`)."""
    return [
        [
            r["scheme"],
            f"{r['reached']}/{r['runs']}",
            fmt_ci(r, "time_to_target", 2),
            _ratio(r, "ratio_vs_dgd"),
            _ratio(r, "ratio_vs_best_exact") + (f" ({r['best_exact']})" if r["best_exact"] else ""),
            _ratio(r, "rounds_ratio_vs_dgd"),
            fmt(r["accuracy_mean"]),
            fmt(r["time_per_round_mean"], 2),
        ]
        for r in rows
    ]


def _ratio(row: dict, name: str) -> str:
    """``"0.900 [0.652, 1.148], n=3"``: the geometric mean, interval, seeds averaged."""
    text = fmt_ci(row, name)
    return text if text == "–" else f"{text}, n={row[f'{name}_n']}"


def sections(rows: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """task -> subsection title -> that group's rows (in table order)."""
    out: dict[str, dict[str, list[dict]]] = defaultdict(dict)
    for r in rows:
        title = (
            f"stragglers '{r['straggler']}', s = {r['s']}, "
            f"{str(r['partitioning']).replace('_', '-')} partitions"
        )
        sub = out[r["task"]]
        if title in sub and sub[title][0]["group"] != r["group"]:
            title += f" ({r['group']})"
        sub.setdefault(title, []).append(r)
    return out


NOTE = (
    "Ratios are per seed (both runs saw the same seeded straggler schedule); their geometric "
    "mean is over the n seeds where both reached the target, and [low, high] is the 95% "
    "t-interval of the log ratios, exponentiated (– with one seed). Runs that never reached "
    "the target are counted in reached/runs, not averaged. Best exact code: the exact code "
    "(frc, crc, cyclic_mds, partial) with the smallest mean simulated time to target in the "
    "group."
)


def task_markdown(rows: list[dict]) -> str:
    """``headline_by_task.md``: one section per task, one table per straggler model / s."""
    lines = ["# Headline by task", "", NOTE, ""]
    for task, subs in sections(rows).items():
        lines += [f"## {task}", ""]
        for title, rs in subs.items():
            target = rs[0]["target"]
            lines += [f"### {title}", "", f"Target: {fmt(target, 4)}.", ""]
            lines += markdown_lines(TASK_COLUMNS, task_table_rows(rs))
            lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------- files and HTML


def pivot_markdown(rows: list[dict]) -> str:
    """The headline in one table per (task, partitioning, s): schemes down, straggler
    models across, each cell ``ratio vs DGD [95% CI] reached/runs`` (geometric mean and
    log-scale interval over the seeds where both reached).

    >>> r = {"task": "a/b", "partitioning": "iid", "s": 1, "straggler": "se", "scheme": "dgd",
    ...      "runs": 3, "reached": 3, "ratio_vs_dgd_gmean": 1.0, "ratio_vs_dgd_ci_low": 1.0,
    ...      "ratio_vs_dgd_ci_high": 1.0}
    >>> print(pivot_markdown([r]).splitlines()[4])
    | dgd | 1.00 [1.00, 1.00] 3/3 |
    """
    tables: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        tables[r["task"], r["partitioning"], r["s"]].append(r)
    lines = []
    for (task, part, s), rs in tables.items():
        strags = list(dict.fromkeys(r["straggler"] for r in rs))
        cell = {(r["scheme"], r["straggler"]): r for r in rs}
        lines += [f"#### {task}, {part}, s = {s}", ""]
        body = []
        for scheme in scheme_order({r["scheme"] for r in rs}):
            out = []
            for st in strags:
                r = cell.get((scheme, st))
                if r is None:
                    out.append("")
                    continue
                m, lo, hi = (r.get(f"ratio_vs_dgd_{k}") for k in ("gmean", "ci_low", "ci_high"))
                ci = f" [{fmt(lo, 2)}, {fmt(hi, 2)}]" if lo is not None and np.isfinite(lo) else ""
                out.append(f"{fmt(m, 2)}{ci} {r['reached']}/{r['runs']}")
            body.append([scheme, *out])
        lines += [*markdown_lines(["scheme", *strags], body), ""]
    return "\n".join(lines)


def html_sections(rows: list[dict], columns, cells, head: str) -> str:
    """One ``<head>`` heading per task, then a titled :func:`html_table` per group;
    ``cells(rows)`` gives a group's table cells in ``columns``."""
    parts = []
    for task, subs in sections(rows).items():
        parts.append(f"<{head}>{html.escape(task)}</{head}>")
        for title, rs in subs.items():
            target = fmt(rs[0]["target"], 4)
            parts.append(f"<p><b>{html.escape(title)}</b>; target {target}</p>")
            parts.append(html_table(columns, cells(rs)))
    return "".join(parts)


__all__ = [
    "EXACT_CODES",
    "best_exact",
    "headline_by_task",
    "html_sections",
    "pivot_markdown",
    "target_for",
    "task_markdown",
]
