"""Figures of the report: one per comparison group, and the headline bars.

Conventions (issue 13.8): every panel has a y label with units; one legend per
figure, shared by all panels, with a distinct line style per scheme
(:data:`gradcode.report.plotting.SCHEME_STYLE`), so curves that coincide
stay visible; bands and error bars are sample standard deviations over seeds
(``ddof = 1``), except time to target: a 95% t-interval over the seeds that
reached it (:func:`gradcode.report.tables.ci95`); the report's
target is a dashed line on its metric's panels; titles say what the group is and
how learning rates were chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .plotting import plt, save, style
from .tables import BASELINE, ci95, mean_std, scheme_order

PGC_FAMILY = ("pgc", "pgc_reference", "pgc_memory", "is_latefold", "sr_sgc")  # stale gradients


def _lr_line(rows: list[dict], schemes: list[str]) -> str:
    """Which learning rates the group's runs used (tuned per scheme, or one fixed value)."""
    by = {s: sorted({float(r["lr"]) for r in rows if r["scheme"] == s}) for s in schemes}
    if any(r.get("tuned") for r in rows):
        seed = next((r.get("tune_seed") for r in rows if r.get("tuned")), "?")
        vals = ", ".join(f"{s} {'/'.join(f'{x:g}' for x in v)}" for s, v in by.items())
        return f"learning rate tuned per scheme on seed {seed}: {vals}"
    lrs = sorted({x for v in by.values() for x in v})
    return "learning rate " + "/".join(f"{x:g}" for x in lrs) + " for every scheme (not tuned)"


# ---------------------------------------------------------------- plotting

TIME_UNITS = "simulated time units"


def group_title(rows: list[dict]) -> str:
    """A readable title for a comparison group from its results rows."""
    r = rows[0]
    delay = r.get("delay") or r["straggler"]
    return (
        f"{r['dataset']}/{r['model']}, {str(r['partitioning']).replace('_', '-')} partitions, "
        f"s = {r['s']}; stragglers '{r['straggler']}': {delay}"
    )


def save_group_figure(group: str, rows: list[dict], curves: dict, per_run: list[dict], out: Path):
    return save(group_figure(group, rows, curves, per_run), out, tight=False)


def group_figure(group: str, rows: list[dict], curves: dict, per_run: list[dict]):
    """The group's figure (not saved): curves, bars, staleness; one legend for all panels."""
    schemes = scheme_order({r["scheme"] for r in rows})
    fig, axes = plt.subplots(2, 4, figsize=(15, 7))
    fig.suptitle(group_title(rows) + "\n" + _lr_line(rows, schemes), fontsize=10)
    panels = [
        (axes[0, 0], "time", "train_loss"),
        (axes[0, 1], "round", "train_loss"),
        (axes[1, 0], "time", "test_accuracy"),
        (axes[1, 1], "round", "test_accuracy"),
    ]
    handles = {}
    for scheme in schemes:
        cs = [curves[r["cell_id"]] for r in rows if r["scheme"] == scheme]
        m = min(len(c["round"]) for c in cs)
        if m == 0:
            continue
        st = style(scheme)
        for ax, xk, yk in panels:
            x = np.mean([c[xk][:m] for c in cs], axis=0)
            ys = np.array([c[yk][:m] for c in cs])
            mu = ys.mean(axis=0)
            sd = ys.std(axis=0, ddof=1) if len(ys) > 1 else np.zeros_like(mu)
            (line,) = ax.plot(x, mu, markevery=max(1, m // 6), markersize=5, **st)
            ax.fill_between(x, mu - sd, mu + sd, color=st.get("color"), alpha=0.12, lw=0)
            handles[scheme] = line
    runs = [p for p in per_run if p["group"] == group]
    _target_lines(panels, runs)
    for ax, xk, yk in panels:
        ax.set_xlabel(TIME_UNITS if xk == "time" else "round")
        ax.set_ylabel(yk.replace("_", " ") + (" (fraction)" if yk.endswith("accuracy") else ""))
        if yk.endswith("loss"):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    _bars(
        axes[0, 2], schemes, runs, "time_per_round", "time per iteration", f"{TIME_UNITS} per round"
    )
    _bars(axes[0, 3], schemes, runs, "time_to_target", "time to target", TIME_UNITS)
    _bars(
        axes[1, 3],
        schemes,
        runs,
        "test_accuracy",
        "final test accuracy",
        "test accuracy (fraction)",
    )
    _staleness(axes[1, 2], schemes, rows, curves)
    fig.legend(
        list(handles.values()),
        [style(s).get("label", s) for s in handles],
        loc="lower center",
        ncol=min(len(handles), 7),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return fig


def _target_lines(panels, runs) -> None:
    """The target as a dashed line on the panels of the report's metric (mean over seeds)."""
    metric = next((p.get("metric") for p in runs if p.get("metric")), None)
    targets = [p["target"] for p in runs if p.get("target") is not None]
    if not targets:
        return
    for ax, _, yk in panels:
        if yk == metric:
            ax.axhline(float(np.mean(targets)), color="gray", lw=1, ls="--", zorder=0)


def _ci_half(xs) -> tuple[float, float]:
    """Mean and 95% t-interval half-width over seeds (nan half-width for one value)."""
    mu, lo, _ = ci95(xs)
    return mu, mu - lo


def _bars(ax, schemes, runs, key, title, ylabel):
    """Bars of ``key`` per scheme: mean over seeds; error bar: sample std, or for time to
    target the 95% t-interval over the seeds that reached it."""
    xs, mus, sds, colors, notes = [], [], [], [], []
    spread = _ci_half if key == "time_to_target" else mean_std
    for i, s in enumerate(schemes):
        vals = [p[key] for p in runs if p["scheme"] == s]
        mu, sd = spread(vals)
        xs.append(i)
        mus.append(0.0 if not np.isfinite(mu) else mu)
        sds.append(0.0 if not np.isfinite(sd) else sd)
        colors.append(style(s).get("color", "gray"))
        finite = sum(v is not None and np.isfinite(v) for v in vals)
        notes.append("" if finite == len(vals) else f"{finite}/{len(vals)}")
    ax.bar(xs, mus, yerr=sds, color=colors, capsize=3)
    for x, mu, note in zip(xs, mus, notes, strict=True):
        if note:
            ax.annotate(note, (x, mu), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(xs, [style(s).get("label", s) for s in schemes], rotation=45, ha="right",
                  fontsize=7)  # fmt: skip
    ax.set_title(title + (" (95% CI; reached/runs)" if key == "time_to_target" else ""),
                 fontsize=9)  # fmt: skip
    ax.set_ylabel(ylabel)


def _staleness(ax, schemes, rows, curves):
    fam = [s for s in schemes if s in PGC_FAMILY]
    ax.set_title("max staleness per round (stale schemes)", fontsize=9)
    ax.set_ylabel("fraction of rounds")
    if not fam:
        ax.text(0.5, 0.5, "no scheme with stale gradients", ha="center", va="center")
        return
    vals = {s: np.concatenate([curves[r["cell_id"]]["staleness_max"] for r in rows
                               if r["scheme"] == s]) for s in fam}  # fmt: skip
    top = max(int(v.max()) if v.size else 0 for v in vals.values())
    width = 0.8 / len(fam)
    for i, s in enumerate(fam):
        counts = np.bincount(vals[s], minlength=top + 1) / max(len(vals[s]), 1)
        ax.bar(np.arange(top + 1) + i * width, counts, width=width,
               color=style(s).get("color"), label=style(s).get("label", s))  # fmt: skip
    ax.set_xlabel("staleness (rounds)")
    ax.set_ylabel("fraction of rounds")


def headline_figure(head: list[dict], out: Path) -> Path:
    """One bar per scheme: time to target / DGD's over every group and seed; a scheme
    whose runs did not all reach the target says how many did (the rest are in no ratio)."""
    rows = [h for h in head if h["scheme"] != BASELINE]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = np.arange(len(rows))
    g = [h["ratio_gmean"] if np.isfinite(h["ratio_gmean"]) else 0.0 for h in rows]
    err = [[gi - h["ratio_ci_low"] if np.isfinite(h["ratio_ci_low"]) else 0.0
            for gi, h in zip(g, rows, strict=True)],
           [h["ratio_ci_high"] - gi if np.isfinite(h["ratio_ci_high"]) else 0.0
            for gi, h in zip(g, rows, strict=True)]]  # fmt: skip
    ax.bar(xs, g, yerr=err, color=[style(h["scheme"]).get("color", "gray") for h in rows],
           capsize=3)  # fmt: skip
    ax.axhline(1.0, color="black", lw=1, ls="--")
    for x, gi, h in zip(xs, g, rows, strict=True):  # runs that never reached are not in a ratio
        if h.get("reached", 0) < h.get("runs", 0):
            ax.annotate(f"{h['reached']}/{h['runs']}\nreached", (x, gi), xytext=(0, 12),
                        textcoords="offset points", ha="center", fontsize=7)  # fmt: skip
    ax.set_xticks(xs, [style(h["scheme"]).get("label", h["scheme"]) for h in rows], rotation=30,
                  ha="right")  # fmt: skip
    ax.set_ylabel("time to target / DGD's")
    ax.set_title("time-to-target ratio vs DGD (geometric mean, 95% log-scale CI over groups and "
                 "seeds; < 1 is faster)")  # fmt: skip
    ax.title.set_fontsize(9)
    return save(fig, out)


def fidelity_figure(points: dict, out: Path) -> Path:
    """Measured vs predicted round time (seconds), one point per Ray round, with y = x.

    Log-log axes: a slow first round (actor start-up) stays on the page, and a
    constant ratio is a constant offset from the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 4.5))
    vals = np.concatenate([p.ravel() for p in points.values()])
    vals = vals[vals > 0]
    lo, top = float(vals.min()) / 1.3, float(vals.max()) * 1.3
    ax.plot([lo, top], [lo, top], color="black", lw=1, ls="--", label="y = x")
    for (group, scheme), p in points.items():
        st = style(scheme)
        label = st.get("label", scheme) + (f" ({group})" if len({g for g, _ in points}) > 1 else "")
        ax.scatter(p[:, 0], p[:, 1], s=10, alpha=0.6, color=st.get("color"), label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, top)
    ax.set_ylim(lo, top)
    ax.set_xlabel("predicted round time (s, simulator)")
    ax.set_ylabel("measured round time (s, Ray)")
    ax.set_title("Ray rounds: measured vs predicted", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.grid(alpha=0.3)
    return save(fig, out)


__all__ = [
    "PGC_FAMILY",
    "fidelity_figure",
    "group_figure",
    "group_title",
    "headline_figure",
    "save_group_figure",
]
