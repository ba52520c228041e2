"""Paired time-to-target ratios between two results tables: ``gradcode compare``.

A grid's own tables compare schemes *within* it (every ratio against its DGD).
A follow-up grid that changes one thing (the optimizer, say:
``experiments/decisive_nesterov.toml``) is compared *across* tables, cell by
cell: scheme ``a`` of table ``A`` against scheme ``b`` of table ``B`` on the same
task, partitioning, s, regime and seed (so the same seeded straggler schedule),
``ratio = time_to_target(a) / time_to_target(b)``.

Per group (task, partitioning, s, regime) and over all groups the ratios are
summarised as in the grids' tables: geometric mean with a 95 % t-interval of the
log ratios (:func:`~gradcode.report.tables.geo_ci95`), over the ``n`` seeds where
both runs reached the target; runs that never reached are counted, not dropped.

>>> a = [{"task": "t", "partitioning": "iid", "s": 3, "straggler": "x", "seed": k,
...       "scheme": "p", "reached": True, "time_to_target": 2.0 * (k + 1)} for k in range(2)]
>>> b = [{**r, "scheme": "q", "time_to_target": 4.0 * (r["seed"] + 1)} for r in a]
>>> [row["ratio_gmean"] for row in paired(a, "p", b, "q")]   # the group, then all
[0.5, 0.5]
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .tables import fmt_ci, markdown_table, put_geo_ci, read_csv

#: What makes two rows the same cell: same task, data split, tolerance, regime and seed.
KEYS = ("task", "partitioning", "s", "straggler", "seed")
#: A group of cells (the seeds of one setting).
GROUP = KEYS[:-1]
COLUMNS = ("task", "partitioning", "s", "straggler", "ratio_gmean", "ratio_ci_low",
           "ratio_ci_high", "ratio_n", "reached_a", "reached_b", "runs")  # fmt: skip


def side(text: str) -> tuple[Path, str]:
    """``"PATH:SCHEME"`` -> ``(PATH, SCHEME)``; the scheme may contain ``+`` (``pgc+none``).

    >>> side("docs/results/decisive_results.csv:pgc+none")
    (PosixPath('docs/results/decisive_results.csv'), 'pgc+none')
    """
    path, sep, scheme = str(text).rpartition(":")
    if not sep or not path or not scheme:
        raise ValueError(f"expected RESULTS.csv:SCHEME, got {text!r}")
    return Path(path), scheme


def load(path: Path, scheme: str) -> list[dict]:
    """The rows of ``scheme`` in a ``<grid>_results.csv`` (one line on a user mistake)."""
    if not Path(path).is_file():
        raise ValueError(
            f"{path}: no such results file (gradcode report writes <grid>_results.csv)"
        )
    rows = read_csv(path)
    missing = [
        k for k in (*KEYS, "scheme", "reached", "time_to_target") if rows and k not in rows[0]
    ]
    if not rows or missing:
        raise ValueError(f"{path}: not a results table (missing {', '.join(missing) or 'rows'})")
    mine = [r for r in rows if str(r["scheme"]) == scheme]
    if not mine:
        have = ", ".join(sorted({str(r["scheme"]) for r in rows}))
        raise ValueError(f"{path}: no rows of scheme {scheme!r} (it has {have})")
    return mine


def _reached(row: dict) -> bool:
    return str(row.get("reached")) == "True" and row.get("time_to_target") not in ("", None)


def _key(row: dict, keys=KEYS) -> tuple:
    return tuple(str(row[k]) for k in keys)


def paired(rows_a: list[dict], scheme_a: str, rows_b: list[dict], scheme_b: str) -> list[dict]:
    """One row per group, then pooled rows (``task = "all"``: per s where there are
    several, then over everything): the geometric mean of ``a``'s time to target over
    ``b``'s on the same cell, its interval and ``n``, and how many runs of each side
    reached the target."""
    b = {_key(r): r for r in rows_b if str(r["scheme"]) == scheme_b}
    pairs = [(r, b[_key(r)]) for r in rows_a if str(r["scheme"]) == scheme_a and _key(r) in b]
    if not pairs:
        raise ValueError(f"no cell of {scheme_a} matches one of {scheme_b} on {', '.join(KEYS)}")
    groups, by_s = defaultdict(list), defaultdict(list)
    for ra, rb in pairs:
        groups[_key(ra, GROUP)].append((ra, rb))
        by_s[str(ra["s"])].append((ra, rb))
    pooled = [(("all", "", s, ""), members) for s, members in sorted(by_s.items())]
    pooled = pooled if len(pooled) > 1 else []
    out = []
    for key, members in [*sorted(groups.items()), *pooled, (("all", "", "", ""), pairs)]:
        row = dict(zip(GROUP, key, strict=True))
        ratios = [float(ra["time_to_target"]) / float(rb["time_to_target"])
                  for ra, rb in members if _reached(ra) and _reached(rb)]  # fmt: skip
        put_geo_ci(row, "ratio", ratios)
        row["reached_a"] = sum(_reached(ra) for ra, _ in members)
        row["reached_b"] = sum(_reached(rb) for _, rb in members)
        row["runs"] = len(members)
        out.append(row)
    return out


def markdown(rows: list[dict], name_a: str, name_b: str) -> str:
    """The table of :func:`paired` as Markdown: ratio [95 % CI] (n) and reached counts."""
    head = ["task", "partitioning", "s", "regime", f"{name_a} / {name_b} [95 % CI] (n)",
            f"reached {name_a}", f"reached {name_b}"]  # fmt: skip
    body = [[r["task"], r["partitioning"], str(r["s"]), r["straggler"],
             f"{fmt_ci(r, 'ratio', 2)} ({r['ratio_n']})", f"{r['reached_a']}/{r['runs']}",
             f"{r['reached_b']}/{r['runs']}"] for r in rows]  # fmt: skip
    return markdown_table(head, body)
