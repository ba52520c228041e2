"""Targets, time and rounds to target, and per-scheme learning-rate selection.

Why tune per scheme.  A stale-gradient scheme (PGC and its variants, SR-SGC)
applies a mix of gradients from the last few weights; on a path where the
gradient shrinks that mix is larger than the current gradient, so at one fixed
learning rate it takes effectively larger steps (PGC: 1.04-1.36x on
breast_cancer/logreg) and can look faster *per round* for a reason that has
nothing to do with stragglers.  Giving every scheme its own best learning rate
removes that advantage from the comparison.

Protocol (``[tune]`` in a grid, see :mod:`gradcode.experiments.grid`).  For each
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

This is the report's own metric (:mod:`gradcode.experiments.report`) on a seed
the report never sees.

Example::

    >>> import numpy as np
    >>> c = {"round": np.array([5., 10.]), "time": np.array([4., 8.]),
    ...      "train_loss": np.array([0.5, 0.2]), "rounds": 10}
    >>> time_to_target(c, "train_loss", 0.3), rounds_to_target(c, "train_loss", 0.3)
    (8.0, 10.0)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

BASELINE = "dgd"


def higher_is_better(metric: str) -> bool:
    """Accuracy-like metrics (``test_accuracy``) improve upwards; losses downwards.

    >>> higher_is_better("test_accuracy"), higher_is_better("train_loss")
    (True, False)
    """
    return metric.endswith("accuracy")


def reached(values: np.ndarray, metric: str, target: float) -> np.ndarray:
    """Which evaluations meet ``target``: ``>=`` for accuracies, ``<=`` for losses
    (a relative tolerance of 1e-12 absorbs float noise at an exact target)."""
    values = np.asarray(values, dtype=float)
    if higher_is_better(metric):
        return values >= target * (1 - 1e-12)
    return values <= target * (1 + 1e-12)


def time_to_target(curve: dict, metric: str, target: float) -> float:
    """Simulated time of the first evaluation that reaches ``target`` (inf if never)."""
    hit = np.flatnonzero(reached(curve[metric], metric, target))
    return float(curve["time"][hit[0]]) if hit.size else math.inf


def rounds_to_target(curve: dict, metric: str, target: float) -> float:
    """Rounds done at the first evaluation that reaches ``target`` (inf if never)."""
    hit = np.flatnonzero(reached(curve[metric], metric, target))
    return float(curve["round"][hit[0]]) if hit.size else math.inf


def target_of(curve: dict, metric: str, target_at: float) -> float:
    """The metric at the last evaluation at or before ``target_at`` of the run's rounds."""
    last_round = target_at * curve["rounds"]
    idx = np.flatnonzero(curve["round"] <= last_round + 1e-9)
    i = idx[-1] if idx.size else 0
    return float(curve[metric][i])


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
    v = float(curve[key][-1])
    return v if np.isfinite(v) else worst


def select(candidates: list[dict], metric: str, target_at: float, target=None) -> list[dict]:
    """Score one group's tuning runs and mark each scheme's choice.

    ``candidates``: dicts with ``scheme``, ``lr``, ``momentum`` and ``curve``
    (``None`` for a run that failed).  Returns one row per candidate with
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


__all__ = [
    "curve_from_log",
    "higher_is_better",
    "reached",
    "rounds_to_target",
    "select",
    "target_of",
    "time_to_target",
]
