"""The study's answer at a glance: time to target / DGD's, per scheme, per grid.

Each grid's ``<grid>_results.csv`` (written by ``gradcode report``) carries a
per-cell ``ratio_vs_dgd``: the cell's time to target over DGD's on the same seed
and straggler schedule.  :func:`summary` pools a grid's cells per scheme into a
geometric mean with a 95 % interval on the log scale
(:func:`~gradcode.report.tables.geo_ci95`) and counts the runs that reached the
target; :func:`figure` draws one row per scheme and one marker per grid (a
forest plot on a log axis, 1 = as fast as DGD), runs that never reached shown
as their count.  docs/results.md's verdict figure::

    python -m gradcode.report.verdict --out docs/results/decisive_verdict.png \\
        "MLPs, SGD=docs/results/decisive_results.csv" \\
        "CNN, SGD=docs/results/decisive_cnn_results.csv" ...

>>> rows = [{"scheme": "p", "reached": "True", "ratio_vs_dgd": r} for r in (0.5, 2.0)]
>>> rows += [{"scheme": "p", "reached": "False", "ratio_vs_dgd": ""}]
>>> s = summary(rows, ["p"])[0]
>>> round(s["ratio_gmean"], 6), s["ratio_n"], s["reached"], s["runs"]
(1.0, 2, 2, 3)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from .tables import put_geo_ci, read_csv

#: The schemes of the verdict, in the order drawn (top to bottom).
SCHEMES = ("is_sgd", "partial", "pgc_memory", "frc", "pgc", "pgc+none")
LABELS = {"is_sgd": "IS-SGD", "partial": "partial-straggler GC", "frc": "FRC",
          "pgc_memory": "pgc_memory + correction", "pgc": "PGC + correction",
          "pgc+none": "PGC, no correction"}  # fmt: skip


def scheme_of(name: str) -> str:
    """A grid's scheme name as the verdict counts it: a stale scheme with a fixed
    correction (``pgc_memory+auto``, a grid that runs the tuned choice) is that
    scheme "with its correction"; ``pgc+none`` stays itself.

    >>> scheme_of("pgc_memory+auto"), scheme_of("pgc+none"), scheme_of("frc")
    ('pgc_memory', 'pgc+none', 'frc')
    """
    base, sep, correction = str(name).partition("+")
    return base if sep and correction != "none" else str(name)


def summary(rows: list[dict], schemes=SCHEMES) -> list[dict]:
    """Per scheme present in ``rows`` (named by :func:`scheme_of`): ``ratio_gmean``,
    ``ratio_ci_low/high``, ``ratio_n`` (cells averaged), ``reached`` and ``runs``."""
    out = []
    for scheme in schemes:
        mine = [r for r in rows if scheme_of(r["scheme"]) == scheme]
        if not mine:
            continue
        done = [r for r in mine if str(r["reached"]) == "True"]
        ratios = [float(r["ratio_vs_dgd"]) for r in done if r["ratio_vs_dgd"] not in ("", None)]
        row = {"scheme": scheme}
        put_geo_ci(row, "ratio", ratios)
        row["reached"] = len(done)
        row["runs"] = len(mine)
        out.append(row)
    return out


def figure(evidence: list[tuple[str, list[dict]]], path: Path, schemes=SCHEMES) -> Path:
    """The forest plot of :func:`summary` for each ``(label, rows)`` grid, saved to ``path``."""
    from .plotting import plt, save

    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.42 * len(schemes) * (1 + len(evidence) / 4)))
    step = 0.8 / max(len(evidence), 1)
    markers = "osD^vP"
    edge = 4.0  # where never-reached rows are written
    for k, (label, rows) in enumerate(evidence):
        colour = plt.get_cmap("tab10")(k)
        for s in summary(rows, schemes):
            y = schemes.index(s["scheme"]) + (k - (len(evidence) - 1) / 2) * step
            g, lo, hi = s["ratio_gmean"], s["ratio_ci_low"], s["ratio_ci_high"]
            if not (isinstance(g, float) and math.isfinite(g)):
                ax.text(edge, y, f"never {s['reached']}/{s['runs']}", color=colour,
                        va="center", ha="right", fontsize=8)  # fmt: skip
                continue
            err = None
            if math.isfinite(lo):
                err = [[g - lo], [hi - g]]
            ax.errorbar(g, y, xerr=err, fmt=markers[k % len(markers)], color=colour, capsize=3,
                        label=label)  # fmt: skip
            if s["reached"] < s["runs"]:
                ax.text(hi if math.isfinite(hi) else g, y, f" {s['reached']}/{s['runs']}",
                        color=colour, va="center", fontsize=8)  # fmt: skip
    ax.axvline(1.0, color="black", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(0.3, edge * 1.05)
    ax.set_xticks([0.3, 0.5, 0.7, 1, 1.5, 2, 3])
    ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
    ax.set_yticks(np.arange(len(schemes)), [LABELS.get(s, s) for s in schemes])
    ax.invert_yaxis()
    ax.set_xlabel("time to target / DGD's on the same seed (log scale; < 1 is faster)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))  # fmt: skip
    ax.set_title(
        "Does pipelined GC beat GC and IS-SGD? Geometric mean, 95 % CI over seeds and groups\n"
        "every scheme sees the same seeded straggler schedule; optimizer tuned per scheme",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    return save(fig, Path(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gradcode.report.verdict",
        description="The verdict figure from <grid>_results.csv files.",
    )
    parser.add_argument("grids", nargs="+", help='"LABEL=path/to/<grid>_results.csv"')
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = parser.parse_args(argv)
    evidence = []
    for spec in args.grids:
        label, sep, path = spec.rpartition("=")
        if not sep or not label or not Path(path).is_file():
            print(f"verdict: error: expected LABEL=RESULTS.csv (an existing file), got {spec!r}",
                  file=sys.stderr)  # fmt: skip
            return 2
        evidence.append((label, read_csv(path)))
        for s in summary(evidence[-1][1]):
            ci = f"[{s['ratio_ci_low']:.2f}, {s['ratio_ci_high']:.2f}]"
            print(
                f"{label}\t{s['scheme']}\t{s['ratio_gmean']:.2f} {ci}\t{s['reached']}/{s['runs']}"
            )
    print(figure(evidence, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
