"""Figures of the PGC study (issue 14): per-task ratio panels and Ray clock curves.

* :func:`task_figure` -- ``task_<task>.png``: a grid of panels, one row per
  ``s`` and one column per straggler model; in each, one bar per scheme: its
  time to target divided by DGD's (per seed, mean over the seeds where both
  reached: the geometric mean of the per-seed ratios), the error bar its 95%
  interval (a t-interval of the log ratios, exponentiated), a dashed line at 1
  (DGD; below is faster).  A scheme that never reached the target gets an
  ``×`` at 1 and "never"; one that reached it on some seeds only is annotated
  ``reached/runs``.
* :func:`wallclock_figure` -- ``wallclock_<group>.png``: test accuracy vs
  seconds for the Ray runs of one group, mean over seeds, solid on the measured
  wall clock, dashed on the simulated clock (cumulative predicted round time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plotting import plt, save, style
from .tables import BASELINE


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def task_title(task: str, rows: list[dict]) -> str:
    lr = (
        "optimizer settings tuned per scheme (tuning.csv)"
        if any(r.get("tuned") for r in rows)
        else "one fixed learning rate (not tuned)"
    )
    same = "every scheme sees the same seeded straggler schedule"
    return f"{task}: time to target / DGD's (geometric mean, 95% CI over seeds)\n{same}; {lr}"


def task_figure(task: str, rows: list[dict]):
    """The figure (not saved) for one task; ``rows``: its ``headline_by_task`` rows."""
    s_vals = sorted({r["s"] for r in rows}, key=lambda v: (str(type(v)), v))
    stragglers = sorted({str(r["straggler"]) for r in rows})
    fig, axes = plt.subplots(
        len(s_vals),
        len(stragglers),
        figsize=(4.2 * len(stragglers), 3.2 * len(s_vals)),
        squeeze=False,
    )
    fig.suptitle(task_title(task, rows), fontsize=9)
    for i, s in enumerate(s_vals):
        for j, st in enumerate(stragglers):
            ax = axes[i, j]
            rs = [r for r in rows if r["s"] == s and str(r["straggler"]) == st]
            _ratio_panel(ax, [r for r in rs if r["scheme"] != BASELINE])
            ax.set_title(f"s = {s}, stragglers '{st}'", fontsize=9)
            ax.set_ylabel("time to target / DGD's")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


def _ratio_panel(ax, rows: list[dict]) -> None:
    xs = np.arange(len(rows))
    for x, r in zip(xs, rows, strict=True):
        color = style(r["scheme"]).get("color", "gray")
        mu, lo, hi = r["ratio_vs_dgd_gmean"], r["ratio_vs_dgd_ci_low"], r["ratio_vs_dgd_ci_high"]
        if r["reached"] == 0 or not np.isfinite(mu):
            ax.plot([x], [1.0], marker="x", ms=10, mew=2, color=color, ls="none")
            ax.annotate("never", (x, 1.0), xytext=(0, 8), textcoords="offset points",
                        ha="center", fontsize=7)  # fmt: skip
            continue
        err = None if not np.isfinite(lo) else [[mu - lo], [hi - mu]]
        ax.bar([x], [mu], yerr=err, color=color, capsize=3)
        if r["reached"] < r["runs"]:
            ax.annotate(f"{r['reached']}/{r['runs']}", (x, mu), ha="center", va="bottom",
                        fontsize=7)  # fmt: skip
    ax.axhline(1.0, color="black", lw=1, ls="--")
    labels = [style(r["scheme"]).get("label", r["scheme"]) for r in rows]
    ax.set_xticks(xs, labels, rotation=45, ha="right", fontsize=7)
    ax.grid(alpha=0.3, axis="y")


def write_task_figures(rows: list[dict], out: Path) -> list[tuple[Path, str]]:
    """``task_<task>.png`` per task (``task_<task>_<partitioning>.png`` when a task has
    several partitionings); returns ``(path, title)`` pairs."""
    images = []
    for task in sorted({r["task"] for r in rows}):
        rs = [r for r in rows if r["task"] == task]
        parts = sorted({str(r["partitioning"]) for r in rs})
        for part in parts:
            sub = [r for r in rs if str(r["partitioning"]) == part]
            name = _safe(task) + ("" if len(parts) == 1 else f"_{_safe(part)}")
            path = save(task_figure(task, sub), out / f"task_{name}.png", tight=False)
            images.append((path, f"{task} ({part} partitions): time to target vs DGD"))
    return images


def wallclock_figure(group: str, title: str, runs: list[dict], curves: dict, target):
    """Test accuracy vs seconds, solid: wall clock, dashed: simulated clock (not saved)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for scheme in dict.fromkeys(p["scheme"] for p in runs):
        cs = [curves[p["cell_id"]] for p in runs if p["scheme"] == scheme]
        m = min(len(c["wall"]) for c in cs)
        if m == 0:
            continue
        st = style(scheme)
        acc = np.mean([c["test_accuracy"][:m] for c in cs], axis=0)
        wall = np.mean([c["wall"][:m] for c in cs], axis=0)
        sim = np.mean([c["sim"][:m] for c in cs], axis=0)
        color = st.get("color")
        ax.plot(wall, acc, color=color, marker=st.get("marker"), ls="-",
                label=st.get("label", scheme) + " (wall clock)")  # fmt: skip
        label = st.get("label", scheme) + " (simulated)"
        ax.plot(sim, acc, color=color, ls="--", lw=1, label=label)
    if target is not None and np.isfinite(target) and runs[0].get("metric") == "test_accuracy":
        ax.axhline(target, color="gray", lw=1, ls=":", label="target")
    ax.set_xlabel("seconds")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_title(f"{title}\nRay: wall clock (solid) vs simulated clock (dashed)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return fig


def write_wallclock_figures(ray_runs, curves, titles, out: Path) -> list[tuple[Path, str]]:
    """``wallclock_<group>.png`` per group with Ray runs; ``ray_runs``: per-run rows."""
    images = []
    for g in sorted({p["group"] for p in ray_runs}):
        runs = [p for p in ray_runs if p["group"] == g and p["cell_id"] in curves]
        if not runs:
            continue
        targets = [p["target"] for p in runs if p.get("target") is not None]
        target = float(np.mean(targets)) if targets else None
        fig = wallclock_figure(g, titles.get(g, g), runs, curves, target)
        path = save(fig, out / f"wallclock_{_safe(g)}.png")
        images.append((path, f"Ray wall clock: {titles.get(g, g)}"))
    return images


__all__ = ["task_figure", "wallclock_figure", "write_task_figures", "write_wallclock_figures"]
