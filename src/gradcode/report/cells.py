"""``<grid>_results.csv``: one row per reported cell, with its time to target and its command.

The study's tables are aggregates; this file is what each number is made of.
Every row is one cell of the grid (``results.csv``, one row per cell, failed or
missing cells included with their ``status``), joined with the report's
analysis of that run (:func:`gradcode.report.analysis.analyse`):

* ``task, partitioning, scheme, s, straggler, seed`` -- which cell;
* ``optimizer, lr, momentum, stale_correction`` -- what it ran with (the tuned
  choice where the grid has ``[tune]``; the tuning seed never appears);
* ``target`` (in ``metric``'s units), ``reached`` (bool), ``time_to_target``
  (simulated clock; empty when the run never reached the target: such runs are
  rows here, counted in the tables' ``reached/runs``), ``rounds_to_target``,
  ``ratio_vs_dgd`` (per seed; empty unless both reached);
* ``final_test_accuracy``, ``rounds``, ``wall_clock``;
* ``retimed_from`` -- the cell whose trained weights this cell's log reuses
  (:mod:`gradcode.grid.reuse`), empty for a cell trained itself;
* ``command`` -- the ``gradcode train ...`` line that trains the cell on the local
  backend (:mod:`gradcode.grid.command`); for a re-timed cell it trains the cell
  for real, and ``tests/grid/test_command.py`` checks that it reproduces the
  final test accuracy exactly.
"""

from __future__ import annotations

import math

#: Columns of ``<grid>_results.csv``, in order.
CELL_RESULT_COLUMNS = (
    "task", "partitioning", "scheme", "s", "straggler", "seed",
    "optimizer", "lr", "momentum", "stale_correction",
    "metric", "target", "reached", "time_to_target", "rounds_to_target", "ratio_vs_dgd",
    "final_test_accuracy", "rounds", "wall_clock", "status", "retimed_from",
    "group", "cell_id", "command",
)  # fmt: skip


def _finite(x):
    return x if isinstance(x, int | float) and math.isfinite(x) else None


def cell_rows(results: list[dict], per_run: list[dict]) -> list[dict]:
    """One row per ``results.csv`` row (:data:`CELL_RESULT_COLUMNS`).

    >>> res = [{"cell_id": "c", "dataset": "adult", "model": "mlp", "status": "ok",
    ...         "test_accuracy": 0.84, "command": "gradcode train ..."}]
    >>> run = [{"cell_id": "c", "time_to_target": math.inf, "target": 0.85,
    ...         "metric": "test_accuracy", "ratio_vs_dgd": math.inf}]
    >>> r = cell_rows(res, run)[0]
    >>> r["task"], r["reached"], r["time_to_target"], r["final_test_accuracy"]
    ('adult/mlp', False, None, 0.84)
    """
    runs = {p["cell_id"]: p for p in per_run}
    out = []
    for r in results:
        p = runs.get(r["cell_id"], {})
        ttt = p.get("time_to_target")
        out.append(
            {
                **{k: r.get(k) for k in CELL_RESULT_COLUMNS},
                "task": f"{r['dataset']}/{r['model']}",
                "metric": p.get("metric"),
                "target": p.get("target"),
                "reached": bool(p) and _finite(ttt) is not None,
                "time_to_target": _finite(ttt),
                "rounds_to_target": _finite(p.get("rounds_to_target")),
                "ratio_vs_dgd": _finite(p.get("ratio_vs_dgd")),
                "final_test_accuracy": r.get("test_accuracy"),
            }
        )
    return out


__all__ = ["CELL_RESULT_COLUMNS", "cell_rows"]
