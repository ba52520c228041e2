"""Results directory -> per-run times to target and the headline: the report's analysis.

:func:`analyse` reads ``results.csv`` and ``rounds.csv`` (written by
:func:`gradcode.grid.harness.run_experiment`; checked by :func:`read_checked_csv`) and
returns one row per run and the headline (one row per scheme).

Time to target.  For each (group, seed) the target of ``[report] metric``
(``train_loss``, ``test_loss`` or ``test_accuracy``) is, in this order,
``[report] targets[task]``, the ``target_accuracy`` column (accuracy only),
the absolute ``[report] target``, or the metric DGD reaches at ``target_at``
of its rounds (the last evaluation at or before that round; ``target_at = 1``
is DGD's final value); see :func:`gradcode.report.study.target_for`.
A run's time to target is the simulated time of its first evaluation that
reaches the target (accuracy ``>=``, loss ``<=``; ``inf`` if never); the
ratio vs DGD is taken per seed (both runs saw the same straggler schedule),
then averaged over the seeds where the scheme reached the target.  The
rounds-to-target ratio (rounds at that first evaluation, per seed, vs DGD's)
is reported next to it, to separate "fewer rounds" from "cheaper rounds".
Standard deviations (accuracy) are sample ones (``ddof = 1``; "–" for a single value).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from . import tables
from .study import target_for
from .tables import (
    BASELINE,
    fmt,
    fmt_ci,
    mean_std,
    put_geo_ci,
    rounds_to_target,
    scheme_order,
    time_to_target,
)

#: Columns the report needs in each input table.
_REQUIRED = {
    "results.csv": ("cell_id", "group", "scheme", "seed", "status"),
    "rounds.csv": ("cell_id", "round", "time"),
}


def read_checked_csv(path: Path) -> list[dict]:
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
    return tables.read_csv(path)


def report_settings(results_dir: Path, **override) -> dict:
    """The ``[report]`` settings of ``experiment.json``, defaults filled, ``override`` on top."""
    rep = {"metric": "train_loss", "target_at": 1.0, "target": None}
    exp = results_dir / "experiment.json"
    if exp.is_file():
        rep.update(json.loads(exp.read_text()).get("report", {}))
    rep.update({k: v for k, v in override.items() if v is not None})
    return rep


def round_curves(round_rows: list[dict]) -> dict[str, dict[int, dict[str, np.ndarray]]]:
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
    rep = report_settings(results_dir, **settings)
    rows = [r for r in read_checked_csv(results_dir / "results.csv") if r["status"] == "ok"]
    curves = round_curves(read_checked_csv(results_dir / "rounds.csv"))
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
    return {"settings": rep, "per_run": per_run, "headline": headline(per_run)}


def headline(per_run: list[dict], key: str | None = None) -> list[dict]:
    """One row per scheme (or per (key, scheme)): ratio vs DGD and final accuracy."""
    buckets: dict[tuple, list[dict]] = defaultdict(list)
    for p in per_run:
        buckets[(p[key] if key else "", p["scheme"])].append(p)
    out = []
    keys = sorted({k for k, _ in buckets})
    for k in keys:
        for scheme in scheme_order([s for kk, s in buckets if kk == k]):
            ps = buckets[k, scheme]
            ratios = [p["ratio_vs_dgd"] for p in ps]
            reached = sum(np.isfinite(p["time_to_target"]) for p in ps)
            a_mean, a_std = mean_std([p["test_accuracy"] for p in ps])
            t_mean, _ = mean_std([p["time_per_round"] for p in ps])
            row = {key: k} if key else {}
            row.update(scheme=scheme, runs=len(ps), reached=int(reached))
            put_geo_ci(row, "ratio", ratios)
            fin = [x for x in ratios if np.isfinite(x)]
            row["ratio_median"] = float(np.median(fin)) if fin else math.nan
            put_geo_ci(row, "rounds_ratio", [p["rounds_ratio_vs_dgd"] for p in ps])
            row.update(
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


def headline_cells(head: list[dict], key: str | None = None) -> tuple[list[str], list[list[str]]]:
    """Columns and cells of the headline table (:func:`headline`'s rows)."""
    cols = ([key] if key else []) + [
        "scheme",
        "lr",
        "time-to-target ratio vs DGD (geo. mean [95% CI], n)",
        "median ratio",
        "rounds-to-target ratio vs DGD (geo. mean [95% CI], n)",
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
                f"{fmt_ci(h, 'ratio')}, n={h['ratio_n']}",
                fmt(h["ratio_median"]),
                f"{fmt_ci(h, 'rounds_ratio')}, n={h['rounds_ratio_n']}",
                f"{h['reached']}/{h['runs']}",
                f"{fmt(h['accuracy_mean'])} ± {fmt(h['accuracy_std'])}",
                fmt(h["time_per_round"], 2),
            ]
        )
    return cols, body


__all__ = [
    "analyse",
    "headline",
    "headline_cells",
    "read_checked_csv",
    "report_settings",
    "round_curves",
]
