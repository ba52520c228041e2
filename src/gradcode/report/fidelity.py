"""Measured vs predicted round times of Ray runs, for the report (issues 12.5 and 23.3).

Every round of a Ray run logs ``duration`` -- the real elapsed seconds of the
round divided by ``time_scale`` -- and ``predicted_duration`` -- the *calibrated*
prediction of the same round: the seeded straggler schedule plus the overheads
the run measured in its warm-up (launching each call, computing, sending each
message back; :mod:`gradcode.runtime.ray.calibrate`), through the scheme's stop
rule.  Runs of this version also log ``simulated_duration``, the local
backend's virtual-clock duration of the round (the schedule alone, no
overheads: what the simulator predicts).  All are in schedule units;
``time_scale`` (real seconds per schedule unit, ``--time-scale``, written next
to them in ``rounds.csv``) turns them into seconds.

Per (group, scheme), :func:`fidelity` gives the median measured and the median
predicted round time in seconds, and the median of the per-round ratios
measured / predicted: robust to a few rounds slowed by a busy machine; 1 means
the calibrated clock predicts the cluster's round times exactly.  Where the
rows have ``simulated_duration`` it also gives the median ratio measured /
simulated (above 1: the real overheads the simulator leaves out).  Tiny example:
rounds predicted at 2 and 4 units, measured 2.2 and 4.4, ``time_scale`` 0.01:
medians 0.033 s and 0.030 s, ratio 1.1.

Rounds without a prediction (local backend), with ``time_scale = 0`` (no delays
injected: nothing to compare) or with a zero prediction are left out; a results
directory with no round left gets no such table.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from .tables import html_table, scheme_order


def fidelity(round_rows: list[dict]) -> tuple[list[dict], dict[tuple[str, str], np.ndarray]]:
    """Table rows (one per (group, scheme)) and the per-round points behind them.

    ``points[group, scheme]`` is an array of shape (rounds, 2): predicted and
    measured round time in seconds.
    """
    pts: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    sim: dict[tuple[str, str], list[float]] = defaultdict(list)
    cells: dict[tuple[str, str], set] = defaultdict(set)
    for r in round_rows:
        pred, dur, scale = r.get("predicted_duration"), r.get("duration"), r.get("time_scale")
        if None in (pred, dur, scale) or not (scale > 0 and np.isfinite(pred) and pred > 0):
            continue
        key = (str(r["group"]), str(r["scheme"]))
        pts[key].append((pred * scale, dur * scale))
        cells[key].add(r["cell_id"])
        s = r.get("simulated_duration")
        if isinstance(s, int | float) and np.isfinite(s) and s > 0:
            sim[key].append(dur / s)
    rows, points = [], {}
    for group in sorted({g for g, _ in pts}):
        for scheme in scheme_order([s for g, s in pts if g == group]):
            p = points[group, scheme] = np.asarray(pts[group, scheme], dtype=float)
            rows.append(
                {
                    "group": group,
                    "scheme": scheme,
                    "runs": len(cells[group, scheme]),
                    "rounds": len(p),
                    "measured_median_s": float(np.median(p[:, 1])),
                    "predicted_median_s": float(np.median(p[:, 0])),
                    "ratio_median": float(np.median(p[:, 1] / p[:, 0])),
                    "ratio_simulated_median": (
                        float(np.median(sim[group, scheme])) if sim[group, scheme] else None
                    ),
                }
            )
    return rows, points


COLUMNS = (
    "group",
    "scheme",
    "runs",
    "rounds",
    "median measured round time (s)",
    "median predicted round time (s)",
    "median ratio measured / predicted",
    "median ratio measured / simulated",
)


def fidelity_html(rows: list[dict]) -> str:
    """The report's section: what is compared, then the table."""
    cells = [
        [
            r["group"],
            r["scheme"],
            str(r["runs"]),
            str(r["rounds"]),
            f"{r['measured_median_s']:.4g}",
            f"{r['predicted_median_s']:.4g}",
            f"{r['ratio_median']:.3f}",
            "" if r.get("ratio_simulated_median") is None else f"{r['ratio_simulated_median']:.3f}",
        ]
        for r in rows
    ]
    return (
        "<h2>Measured vs predicted round time (Ray)</h2><p>Per round: the Ray cluster's "
        "measured duration and its calibrated prediction (the seeded straggler schedule plus "
        "the overheads the run measured in its warm-up, through the scheme's stop rule), both "
        "converted to seconds with the run's time scale; ratio = median over rounds of "
        "measured / predicted (1: the calibrated clock is exact). The last column compares "
        "with the simulator's virtual clock alone (no overheads; above 1: what the "
        "simulator leaves out).</p>" + html_table(COLUMNS, cells)
    )


__all__ = ["COLUMNS", "fidelity", "fidelity_html"]
