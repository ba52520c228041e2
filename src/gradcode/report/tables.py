"""The numbers behind every table: baseline, scheme order, targets, statistics, writers.

A leaf: imports no other gradcode module and no plotting library, so the grid's
tuner (:mod:`gradcode.grid.tuning`), the report's tables and the reproductions
all share these definitions, and ``import gradcode.report.tables`` stays light.

* :data:`BASELINE` -- the scheme every ratio is taken against (uncoded DGD);
  :data:`SCHEME_ORDER` -- the order schemes appear in tables and legends.
* Targets: a run *reaches* a target at its first evaluation that is ``>=`` it
  (accuracies) or ``<=`` it (losses); :func:`time_to_target` /
  :func:`rounds_to_target` read that evaluation's clock or round, ``inf`` if
  never; :func:`target_of` is the metric a run reaches at a fraction of its rounds.
* Statistics: :func:`mean_std` (sample standard deviation, ``ddof = 1``:
  undefined, so ``nan``, for a single value), :func:`ci95` (Student-t interval),
  :func:`geo_ci95` (geometric mean and a t-interval on the log scale: the
  statistic of every time-to-target *ratio*).
* Writers: :func:`fmt` / :func:`fmt_ci` for cells, :func:`markdown_table`,
  :func:`html_table`, :func:`csv_text` / :func:`write_csv` (atomic) and
  :func:`read_csv` (numbers converted back).

Example::

    >>> c = {"round": np.array([5., 10.]), "time": np.array([4., 8.]),
    ...      "train_loss": np.array([0.5, 0.2]), "rounds": 10}
    >>> time_to_target(c, "train_loss", 0.3), rounds_to_target(c, "train_loss", 0.3)
    (8.0, 10.0)
    >>> print(markdown_table(["scheme", "ratio"], [["pgc", fmt(0.81234)]]), end="")
    | scheme | ratio |
    |---|---|
    | pgc | 0.812 |
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

#: The scheme every ratio is taken against (and the one the tuning target comes from).
BASELINE = "dgd"

#: Schemes in table and legend order (others follow, sorted by name).
SCHEME_ORDER = ("dgd", "is_sgd", "frc", "crc", "cyclic_mds", "pgc", "pgc_reference", "pgc_memory",
                "is_latefold", "erasurehead", "sgc", "partial", "sr_sgc", "lstsq")  # fmt: skip


def scheme_order(names: Iterable[str]) -> list[str]:
    """``names`` in :data:`SCHEME_ORDER`, unknown ones last, sorted.

    >>> scheme_order({"zeta", "pgc", "dgd"})
    ['dgd', 'pgc', 'zeta']
    """
    names = set(names)
    known = [s for s in SCHEME_ORDER if s in names]
    return known + sorted(names - set(known))


# ---------------------------------------------------------------- targets


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
    """Clock (``curve["time"]``) of the first evaluation that reaches ``target`` (inf if never)."""
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


# ---------------------------------------------------------------- statistics


def _finite(xs) -> np.ndarray:
    return np.asarray([x for x in xs if x is not None and np.isfinite(x)], dtype=float)


def mean_std(xs) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof = 1``) of the finite values of ``xs``.

    The sample deviation of one value is undefined: ``nan`` (tables print "–").

    >>> mean_std([1.0, 3.0, None, float("inf")])
    (2.0, 1.4142135623730951)
    >>> mean_std([2.0]), mean_std([])
    ((2.0, nan), (nan, nan))
    """
    v = _finite(xs)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def mean(xs) -> float:
    """Mean of the finite values of ``xs`` (``nan`` when there are none)."""
    return mean_std(xs)[0]


def ci95(xs) -> tuple[float, float, float]:
    """Mean and 95% t-interval ``(mean, low, high)`` of the finite values of ``xs``.

    ``mean ± t_{0.975, n-1} * sd / sqrt(n)`` with ``sd`` the sample standard
    deviation; ``nan`` bounds with fewer than two values, ``(nan, nan, nan)`` with none.

    >>> m, lo, hi = ci95([0.8, 0.9, 1.0])
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (0.9, 0.652, 1.148)
    >>> ci95([2.0])
    (2.0, nan, nan)
    """
    v = _finite(xs)
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size == 1:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return m, m - half, m + half


def geo_ci95(xs) -> tuple[float, float, float, int]:
    """Geometric mean and 95% interval of the finite positive ratios in ``xs``, and their count.

    Ratios multiply, and a heavy-tailed clock (Pareto stragglers) makes them
    skewed: an arithmetic t-interval of ratios can run below zero.  So the
    interval is taken on the log scale and mapped back: with ``y_i = ln x_i``,
    ``exp(mean(y) ± t_{0.975, n-1} * sd(y) / sqrt(n))`` (``sd``: ``ddof = 1``),
    which is always positive and symmetric in the ratio's direction
    (``x`` and ``1/x`` give reciprocal intervals).  ``nan`` bounds with fewer than
    two values.  Values that are ``inf``, ``nan``, ``None`` or ``<= 0`` (a run
    that never reached the target) are not averaged; the count says how many were.

    >>> g, lo, hi, n = geo_ci95([0.5, 1.0, 2.0, math.inf])  # ln: -0.693, 0, 0.693; sd 0.693
    >>> round(g, 6), round(lo, 3), round(hi, 3), n
    (1.0, 0.179, 5.595, 3)
    >>> geo_ci95([4.0])[:2], geo_ci95([])[3]
    ((4.0, nan), 0)
    """
    v = _finite(xs)
    v = v[v > 0]
    if v.size == 0:
        return math.nan, math.nan, math.nan, 0
    m, lo, hi = ci95(np.log(v))
    return math.exp(m), math.exp(lo), math.exp(hi), int(v.size)


def put_geo_ci(row: dict, name: str, xs) -> None:
    """Set ``row[name_gmean]``, ``row[name_ci_low]``, ``row[name_ci_high]`` and
    ``row[name_n]`` (how many ratios were averaged) from :func:`geo_ci95`."""
    g, lo, hi, n = geo_ci95(xs)
    row[f"{name}_gmean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = g, lo, hi
    row[f"{name}_n"] = n


def put_ci(row: dict, name: str, xs) -> None:
    """Set ``row[name_mean]``, ``row[name_ci_low]``, ``row[name_ci_high]`` from :func:`ci95`."""
    row[f"{name}_mean"], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci95(xs)


# ---------------------------------------------------------------- cells


def fmt(x, digits: int = 3) -> str:
    """A number with ``digits`` decimals; "–" for missing or non-finite.

    >>> fmt(0.5), fmt(None), fmt(float("nan"), 1)
    ('0.500', '–', '–')
    """
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    return f"{x:.{digits}f}"


def fmt_ci(row: dict, name: str, digits: int = 3) -> str:
    """``"0.900 [0.652, 1.148]"``; ``"0.900 [–]"`` without an interval; "–" without a mean.
    The centre is ``name_gmean`` where the row has one (:func:`put_geo_ci`), else ``name_mean``."""
    lo, hi = row[f"{name}_ci_low"], row[f"{name}_ci_high"]
    centre = row[f"{name}_gmean"] if f"{name}_gmean" in row else row[f"{name}_mean"]
    if centre is None or not np.isfinite(centre):
        return "–"
    ci = "–" if lo is None or not np.isfinite(lo) else f"{fmt(lo, digits)}, {fmt(hi, digits)}"
    return f"{fmt(centre, digits)} [{ci}]"


# ---------------------------------------------------------------- writers


def markdown_lines(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a markdown table: header, separator, one line per row."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table (cells are strings), ending with a newline."""
    return "\n".join(markdown_lines(columns, rows)) + "\n"


def html_table(columns: Sequence[str], rows: Iterable[Sequence]) -> str:
    """An HTML table; every cell is ``str()``-ed and escaped.

    >>> html_table(["a"], [["<b>"]])
    '<table><thead><tr><th>a</th></tr></thead><tbody><tr><td>&lt;b&gt;</td></tr></tbody></table>'
    """
    th = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    trs = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def csv_text(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """CSV of ``rows`` (columns: ``columns``, else the first row's keys; keys
    outside the columns are left out, missing ones are empty); "" with neither."""
    columns = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    buf = io.StringIO()
    if columns:
        w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | Path, rows: list[dict], columns: Sequence[str] | None = None) -> Path:
    """Write :func:`csv_text` to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        f.write(csv_text(rows, columns))
    os.replace(tmp, path)
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written here, numbers converted back (empty -> ``None``).

    >>> _number("3"), _number("0.5"), _number(""), _number("True"), _number("pgc")
    (3, 0.5, None, True, 'pgc')
    """
    with Path(path).open(newline="") as f:
        return [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _number(v: str):
    if v == "":
        return None
    if v in ("True", "False"):
        return v == "True"
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


__all__ = [
    "BASELINE",
    "SCHEME_ORDER",
    "ci95",
    "csv_text",
    "fmt",
    "fmt_ci",
    "geo_ci95",
    "higher_is_better",
    "html_table",
    "markdown_lines",
    "markdown_table",
    "mean",
    "mean_std",
    "put_ci",
    "put_geo_ci",
    "reached",
    "read_csv",
    "rounds_to_target",
    "scheme_order",
    "target_of",
    "time_to_target",
    "write_csv",
]
