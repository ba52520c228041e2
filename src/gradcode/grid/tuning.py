"""Per-scheme learning-rate selection: tuning runs in, ``tuning.csv`` and the choices out.

Why tune per scheme.  A stale-gradient scheme (PGC and its variants, SR-SGC)
applies a mix of gradients from the last few weights; on a path where the
gradient shrinks that mix is larger than the current gradient, so at one fixed
learning rate it takes effectively larger steps (PGC: 1.04-1.36x on
breast_cancer/logreg) and can look faster *per round* for a reason that has
nothing to do with stragglers.  Giving every scheme its own best learning rate
removes that advantage from the comparison.

Protocol (``[tune]`` in a grid, see :mod:`gradcode.grid.schema`).  For each
comparison group (dataset/model, partitioning, straggler model, ``s``) and each
scheme, every candidate ``(lr, momentum)`` runs once on the *tuning seed*, which
is not one of the reported seeds.  Then:

1. the target: the absolute ``[report] target`` if set; otherwise the metric
   DGD reaches at ``target_at`` of its rounds in DGD's best candidate (lowest
   final metric); without DGD in the group, candidates are ranked by final
   metric alone;
2. every scheme (DGD included) takes the candidate with the smallest simulated
   time to that target; ties (e.g. nobody reached it) go to the higher final
   test accuracy, then the lower final metric, then the smaller ``lr``.

This is the report's own metric (targets and times to target are
:mod:`gradcode.report.tables`') on a seed the report never sees.
:func:`choose` scores a grid's finished tuning runs once and writes ``tuning.csv``;
:func:`select` is the scoring of one group, usable on its own (e.g.
:mod:`gradcode.reproduce.pgc_study` tunes with it).

Example: two candidates of one scheme against an absolute target; the faster wins::

    >>> import numpy as np
    >>> curve = lambda t: {"round": np.array([5., 10.]), "time": np.array([t, 2 * t]),
    ...     "train_loss": np.array([0.5, 0.2]), "test_accuracy": np.array([0.8, 0.9])}
    >>> rows = select([{"scheme": "pgc", "lr": 0.1, "momentum": 0.0, "curve": curve(4.0)},
    ...                {"scheme": "pgc", "lr": 1.0, "momentum": 0.0, "curve": curve(3.0)}],
    ...               "train_loss", 1.0, target=0.3)
    >>> [(r["lr"], r["time_to_target"], r["chosen"]) for r in rows]
    [(0.1, 8.0, False), (1.0, 6.0, True)]
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..report.tables import (
    BASELINE,
    higher_is_better,
    rounds_to_target,
    target_of,
    time_to_target,
    write_csv,
)
from ..runtime.config import RunConfig
from .results import is_finished
from .schema import ExperimentConfig, TuneCell


def curve_from_log(path: Path) -> dict | None:
    """Evaluation-round arrays of one run's ``rounds.jsonl`` (``None`` if unreadable)."""
    try:
        recs = [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
    except (OSError, ValueError):
        return None
    ev = [r for r in recs if r.get("train_loss") is not None or r.get("test_accuracy") is not None]
    if not ev:
        return None
    arr = lambda k: np.array([np.nan if r.get(k) is None else r[k] for r in ev], float)  # noqa: E731
    return {
        "round": np.array([r["round"] + 1 for r in ev], dtype=float),
        "time": arr("time"),
        "train_loss": arr("train_loss"),
        "test_loss": arr("test_loss"),
        "test_accuracy": arr("test_accuracy"),
        "rounds": len(recs),
    }


def _final(curve: dict, key: str, worst: float) -> float:
    """The last value of ``curve[key]``; ``worst`` when it is not finite or not measured."""
    if key not in curve:
        return worst
    v = float(curve[key][-1])
    return v if np.isfinite(v) else worst


def select(candidates: list[dict], metric: str, target_at: float, target=None) -> list[dict]:
    """Score one group's tuning runs and mark each scheme's choice.

    ``candidates``: dicts with ``scheme``, ``lr``, ``momentum`` and ``curve``
    (``None`` for a run that failed; arrays ``round``, ``time``, the ``metric`` and,
    optionally, ``test_accuracy``).  Returns one row per candidate with
    ``target``, ``time_to_target``, ``rounds_to_target``, ``final_metric``,
    ``final_accuracy`` and ``chosen`` (exactly one per scheme with a finished run).
    """
    done = [c for c in candidates if c["curve"] is not None]
    sign = -1.0 if higher_is_better(metric) else 1.0  # sort keys: smaller is better
    worst = -math.inf if sign < 0 else math.inf
    if target is None:
        base = [c for c in done if c["scheme"] == BASELINE]
        if base:
            best = min(base, key=lambda c: (sign * _final(c["curve"], metric, worst), c["lr"]))
            target = target_of(best["curve"], metric, target_at)
    rows = []
    for c in candidates:
        cv = c["curve"]
        scored = cv is not None and target is not None
        ttt = time_to_target(cv, metric, target) if scored else None
        rtt = rounds_to_target(cv, metric, target) if scored else None
        rows.append(
            {
                "scheme": c["scheme"],
                "lr": c["lr"],
                "momentum": c["momentum"],
                "status": "ok" if cv is not None else "failed",
                "target": target,
                "time_to_target": ttt,
                "rounds_to_target": rtt,
                "final_metric": None if cv is None else _final(cv, metric, worst),
                "final_accuracy": None if cv is None else _final(cv, "test_accuracy", -math.inf),
                "chosen": False,
            }
        )

    def key(r):
        ttt = r["time_to_target"] if r["time_to_target"] is not None else math.inf
        return (ttt, -r["final_accuracy"], sign * r["final_metric"], r["lr"], r["momentum"])

    for scheme in dict.fromkeys(r["scheme"] for r in rows):
        ok = [r for r in rows if r["scheme"] == scheme and r["status"] == "ok"]
        if ok:
            min(ok, key=key)["chosen"] = True
    return rows


def choose(cfg: ExperimentConfig, out_dir: str | Path) -> dict[tuple[str, str], tuple]:
    """Score the finished tuning runs in ``out_dir/tune``, write ``tuning.csv`` (one row
    per candidate, each scheme's choice marked); ``(group, scheme) -> (lr, momentum)``.

    :func:`gradcode.grid.harness.run_experiment` calls it once, between the
    tuning runs and the reported cells ({} without ``[tune]``)."""
    if cfg.tune is None:
        return {}
    out_dir = Path(out_dir)
    rep = {"metric": "train_loss", "target_at": 1.0, "target": None, **dict(cfg.report)}
    by_group: dict[str, list[tuple[TuneCell, dict]]] = {}
    targets: dict[str, float | None] = {}
    for tc in cfg.tuning_cells():
        rc = cfg.run_config(tc)
        targets.setdefault(tc.group, group_target(rc, rep))
        d = out_dir / "tune" / tc.cell_id
        curve = curve_from_log(d / "rounds.jsonl") if is_finished(rc, d) else None
        cand = {"scheme": tc.scheme, "lr": tc.lr, "momentum": tc.momentum, "curve": curve,
                "stale_correction": tc.stale_correction}  # fmt: skip
        by_group.setdefault(tc.group, []).append((tc, cand))
    rows, chosen = [], {}
    for group, items in by_group.items():
        scored = select([c for _, c in items], rep["metric"], float(rep["target_at"]),
                        targets[group])  # fmt: skip
        for (tc, _), row in zip(items, scored, strict=True):
            rows.append({"group": group, "cell_id": tc.cell_id, "seed": cfg.tune.seed, **row,
                         "stale_correction": tc.stale_correction or ""})  # fmt: skip
            if row["chosen"]:
                sc = () if tc.stale_correction is None else (tc.stale_correction,)
                chosen[group, tc.scheme] = (tc.lr, tc.momentum, *sc)
    write_csv(out_dir / "tuning.csv", rows, columns=TUNING_COLUMNS)
    return chosen


def group_target(rc: RunConfig, rep: dict) -> float | None:
    """The absolute target of a run's comparison: ``[report] targets`` for its task,
    else (accuracy metric) the run's ``target_accuracy``, else ``[report] target``."""
    per_task = dict(rep.get("targets") or {})
    label = f"{rc.dataset}/{rc.model}"
    if label in per_task:
        return float(per_task[label])
    if higher_is_better(rep["metric"]) and rc.target_accuracy is not None:
        return float(rc.target_accuracy)
    return None if rep.get("target") is None else float(rep["target"])


TUNING_COLUMNS = ["group", "scheme", "lr", "momentum", "stale_correction", "seed", "cell_id",
                  "status", "target",
                  "time_to_target", "rounds_to_target", "final_metric", "final_accuracy",
                  "chosen"]  # fmt: skip


__all__ = ["TUNING_COLUMNS", "choose", "curve_from_log", "group_target", "select"]
