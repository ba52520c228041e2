"""Wall clock vs simulated clock of Ray runs, per task (issue 14, part 5).

Ray runs (``backend == "ray"``).  Their ``rounds.csv`` ``time``/``duration`` are
measured real seconds divided by ``time_scale``, and ``predicted_duration`` is
the simulator's duration of the same round (same seeded schedule).  So the
wall clock is ``time * time_scale`` seconds and the simulated clock is the
cumulative ``predicted_duration * time_scale``; :func:`wallclock` reports the
time to target on both clocks for the same runs (same first evaluation that
reached the target), their ratios vs DGD (geometric means with log-scale
intervals, :func:`gradcode.report.tables.geo_ci95`), and the fidelity ``mean measured
round time / mean predicted round time`` (1: the simulator predicts the
cluster exactly).  Runs with ``time_scale <= 0`` (no delays injected) are left out.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from .study import GROUP_KEYS, headline_by_task, sections, seed_ratio
from .tables import BASELINE, fmt, fmt_ci, markdown_lines, put_ci, put_geo_ci, reached


def ray_curves(
    round_rows: list[dict], cells: set[str], metric: str, scales: dict | None = None
) -> dict[str, dict]:
    """cell_id -> the evaluation rounds of a Ray run on both clocks, in seconds.

    ``wall``: ``time * time_scale``; ``sim``: cumulative ``predicted_duration *
    time_scale``; ``measured`` / ``predicted``: every round's duration in seconds.
    ``time_scale`` is the rounds' own, else ``scales[cell_id]`` (results.csv).
    Runs without a positive ``time_scale`` or a prediction are left out."""
    by_cell: dict[str, list[dict]] = defaultdict(list)
    for r in round_rows:
        if r["cell_id"] in cells:
            by_cell[r["cell_id"]].append(r)
    out = {}
    for cid, rows in by_cell.items():
        rows.sort(key=lambda r: r["round"])
        scale = rows[0].get("time_scale")
        if scale is None:
            scale = (scales or {}).get(cid)
        preds = [r.get("predicted_duration") for r in rows]
        if not isinstance(scale, int | float) or scale <= 0 or None in preds:
            continue
        sim = np.cumsum(np.asarray(preds, dtype=float)) * scale
        ev = [i for i, r in enumerate(rows) if r.get(metric) is not None]
        out[cid] = {
            "wall": np.array([rows[i]["time"] * scale for i in ev], dtype=float),
            "sim": sim[ev],
            metric: np.array([rows[i][metric] for i in ev], dtype=float),
            "test_accuracy": np.array([rows[i].get("test_accuracy") for i in ev], dtype=float),
            "measured": np.array([r["duration"] for r in rows], dtype=float) * scale,
            "predicted": np.asarray(preds, dtype=float) * scale,
        }
    return out


def _first(curve: dict, clock: str, metric: str, target) -> float:
    if target is None:
        return math.nan
    hit = np.flatnonzero(reached(curve[metric], metric, target))
    return float(curve[clock][hit[0]]) if hit.size else math.inf


def wallclock(per_run: list[dict], round_rows: list[dict], metric: str) -> tuple[list, dict]:
    """One row per (task, partitioning, straggler, s, scheme) of the Ray runs."""
    ray = [p for p in per_run if p.get("backend") == "ray"]
    scales = {p["cell_id"]: p.get("time_scale") for p in ray}
    curves = ray_curves(round_rows, set(scales), metric, scales)
    runs = []
    for p in ray:
        c = curves.get(p["cell_id"])
        if c is not None:
            t = p["target"]
            runs.append({**p, "wall_ttt": _first(c, "wall", metric, t),
                         "sim_ttt": _first(c, "sim", metric, t), "curve": c})  # fmt: skip
    base = {(p["group"], p["seed"]): p for p in runs if p["scheme"] == BASELINE}
    out = []
    for row in headline_by_task(runs):
        ps = [p for p in runs if p["group"] == row["group"] and p["scheme"] == row["scheme"]]
        new = {k: row[k] for k in (*GROUP_KEYS, "scheme", "runs", "reached", "target")}
        for clock in ("wall", "sim"):
            put_ci(new, f"{clock}_time_to_target_s", [p[f"{clock}_ttt"] for p in ps])
        for clock in ("wall", "sim"):
            ratios = [
                seed_ratio(p[f"{clock}_ttt"], base[p["group"], p["seed"]][f"{clock}_ttt"])
                if (p["group"], p["seed"]) in base
                else math.nan
                for p in ps
            ]
            put_geo_ci(new, f"{clock}_ratio_vs_dgd", ratios)
        meas = np.concatenate([p["curve"]["measured"] for p in ps])
        pred = np.concatenate([p["curve"]["predicted"] for p in ps])
        new["measured_round_s"] = float(meas.mean())
        new["predicted_round_s"] = float(pred.mean())
        new["fidelity"] = seed_ratio(float(meas.mean()), float(pred.mean()))
        out.append(new)
    return out, {p["cell_id"]: p["curve"] for p in runs}


WALL_COLUMNS = (
    "scheme",
    "reached/runs",
    "wall-clock time to target, s (mean [95% CI])",
    "simulated time to target, s (mean [95% CI])",
    "wall-clock ratio vs DGD (geo. mean [95% CI])",
    "simulated ratio vs DGD (geo. mean [95% CI])",
    "fidelity (measured / predicted round time)",
)


def wall_table_rows(rows: list[dict]) -> list[list[str]]:
    return [
        [
            r["scheme"],
            f"{r['reached']}/{r['runs']}",
            fmt_ci(r, "wall_time_to_target_s", 3),
            fmt_ci(r, "sim_time_to_target_s", 3),
            fmt_ci(r, "wall_ratio_vs_dgd"),
            fmt_ci(r, "sim_ratio_vs_dgd"),
            fmt(r["fidelity"]),
        ]
        for r in rows
    ]


def wall_markdown(rows: list[dict]) -> str:
    lines = [
        "# Ray: wall clock vs simulated clock",
        "",
        "Wall clock = measured `time * time_scale`; simulated = cumulative "
        "`predicted_duration * time_scale`, at the same first evaluation reaching the target.",
        "",
    ]
    for task, subs in sections(rows).items():
        lines += [f"## {task}", ""]
        for title, rs in subs.items():
            lines += [f"### {title}", ""]
            lines += markdown_lines(WALL_COLUMNS, wall_table_rows(rs))
            lines.append("")
    return "\n".join(lines)


__all__ = ["WALL_COLUMNS", "ray_curves", "wall_markdown", "wall_table_rows", "wallclock"]
