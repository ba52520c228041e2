"""Convergence factors: rounds to a target relative to DGD, per scheme and ``s``.

A scheme's time to a target is ``round_time x rounds``; the advisor times
rounds on the user's cluster (replay or model) and takes the *rounds* from a
convergence factor ``rounds_factor = rounds to target / DGD's rounds to target``:

* **exact, fresh schemes: 1, by definition.**  They decode DGD's gradient at
  DGD's weights every round, so they follow DGD's trajectory; the study's
  trajectory replays found exactly that for every exact code under every
  straggler model (docs/results.md, "Trajectory reuse").
* **approximate or stale schemes: measured.**  IS-SGD and SGC drop or mix
  gradients, PGC and SR-SGC apply stale ones; their factor is what the
  project's study measured (:data:`STUDY_FACTORS`, derived from
  :data:`STUDY_FILES` by :func:`derive_factors`; a test keeps the two equal).
* **a user file** (:func:`read_factors`) overrides either, e.g. factors
  measured by a short calibration run on the user's own task.

The summary rule for the study (:func:`derive_factors`): for each task and
``s``, the mean over its groups (straggler model x partitioning) of
``rounds_ratio_vs_dgd_mean``; then the **largest over tasks** (the advisor does
not know the user's task, so it assumes the least favourable one measured).  A
task where the scheme missed the target in any run counts as *not reached*:
the factor comes from the tasks that reached, and the candidate is flagged
(not recommended).  Between the measured ``s`` the factor is interpolated
linearly (``s = 0`` is DGD: factor 1); beyond the largest measured ``s`` the
last value is kept and marked as extrapolated.

>>> factor_for("frc", 3)
Factor(value=1.0, origin='exact: DGD trajectory', caveat='')
>>> factor_for("is_sgd", 3).value, factor_for("is_sgd", 2).origin, factor_for("is_sgd", 4).origin
(1.142857, 'study s=1..3', 'study s=3 (extrapolated)')
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import REGISTRY

#: Schemes that apply gradients of earlier weights (registry-exact or not): the
#: PGC family sums gradients computed over the last ``s + 1`` rounds, SR-SGC
#: decodes the exact gradient ``B`` rounds late.  They do not follow DGD.
STALE_SCHEMES = frozenset({"pgc", "pgc_reference", "pgc_memory", "is_latefold", "sr_sgc"})

#: Where :data:`STUDY_FACTORS` come from (paths in the repository).
STUDY_FILES = (
    "docs/results/pgc_study_headline_by_task.csv",
    "docs/results/pgc_study_cnn_headline_by_task.csv",
)

#: ``scheme -> {s: (factor, reached_tasks, tasks)}`` from :func:`derive_factors`
#: on :data:`STUDY_FILES` (rounded to 6 digits; ``tests/test_advise.py`` re-derives it).
STUDY_FACTORS: dict[str, dict[int, tuple[float | None, int, int]]] = {
    "crc": {1: (1.0, 2, 2), 3: (1.0, 3, 3)},
    "cyclic_mds": {1: (1.0, 2, 2), 3: (1.0, 3, 3)},
    "dgd": {1: (1.0, 2, 2), 3: (1.0, 3, 3)},
    "frc": {1: (1.0, 2, 2), 3: (1.0, 3, 3)},
    "is_sgd": {1: (1.306013, 2, 2), 3: (1.142857, 3, 3)},
    "partial": {1: (1.0, 2, 2), 3: (1.0, 3, 3)},
    "pgc": {1: (1.56131, 1, 2), 3: (3.008651, 1, 3)},
    "pgc_reference": {1: (1.552381, 1, 2), 3: (3.088611, 1, 3)},
    "sgc": {1: (1.146967, 2, 2), 3: (1.358008, 3, 3)},
    "sr_sgc": {1: (2.098214, 1, 2), 3: (2.168393, 1, 3)},
}


@dataclass(frozen=True)
class Factor:
    """One candidate's convergence factor and where it came from.

    Attributes:
        value: rounds to target relative to DGD (``None``: unknown).
        origin: ``"exact: DGD trajectory"``, ``"study s=1"``, ``"study s=1..3"``
            (interpolated), ``"study s=3 (extrapolated)"``, ``"user file"`` or
            ``"none"``.
        caveat: why the candidate should not be recommended on this factor
            (empty: none).
    """

    value: float | None
    origin: str
    caveat: str = ""


def is_fresh_exact(scheme: str) -> bool:
    """Exact in the registry and not stale: DGD's gradient at DGD's weights every round."""
    info = REGISTRY.get(scheme)
    return info is not None and info.exact and scheme not in STALE_SCHEMES


def derive_factors(paths) -> dict[str, dict[int, tuple[float | None, int, int]]]:
    """The study's factors from ``*_headline_by_task.csv`` files (rule in the module docstring)."""
    groups: dict[tuple[str, int, str], list[tuple[float, bool]]] = defaultdict(list)
    for path in paths:
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                # geometric mean (issue 26); tables before it have the arithmetic one
                ratio = float(
                    row.get("rounds_ratio_vs_dgd_gmean") or row["rounds_ratio_vs_dgd_mean"]
                )
                ok = int(row["reached"]) == int(row["runs"]) and np.isfinite(ratio)
                groups[row["scheme"], int(row["s"]), row["task"]].append((ratio, ok))
    per: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for (scheme, s, _task), vals in groups.items():
        reached = all(ok for _, ok in vals)
        mean = float(np.mean([v for v, _ in vals])) if reached else None
        per[scheme][s].append(mean)
    out: dict[str, dict[int, tuple[float | None, int, int]]] = {}
    for scheme, by_s in sorted(per.items()):
        out[scheme] = {}
        for s, means in sorted(by_s.items()):
            got = [m for m in means if m is not None]
            value = round(max(got), 6) if got else None
            out[scheme][s] = (value, len(got), len(means))
    return out


def factor_for(scheme: str, s: int, user: dict | None = None) -> Factor:
    """The convergence factor of ``scheme`` at ``s`` (user file, then definition, then study)."""
    if user is not None:
        got = user.get((scheme, s), user.get((scheme, None)))
        if got is not None:
            return Factor(got, "user file")
    if is_fresh_exact(scheme) or s == 0:
        return Factor(1.0, "exact: DGD trajectory" if s else "s = 0: DGD")
    table = STUDY_FACTORS.get(scheme)
    if not table:
        return Factor(None, "none", "no measured convergence factor (give one with --factors)")
    measured = sorted(table)
    caveat = ""
    missed = [k for k in measured if table[k][1] < table[k][2]]
    if missed:
        k = missed[0]
        caveat = (
            f"missed the target on {table[k][2] - table[k][1]} of {table[k][2]} study tasks at "
            f"s={k}"
        )
    points = [(0, 1.0)] + [(k, table[k][0]) for k in measured if table[k][0] is not None]
    if len(points) == 1:
        return Factor(None, "none", caveat or "no measured convergence factor")
    xs, ys = zip(*points, strict=True)
    value = round(float(np.interp(s, xs, ys)), 6)
    if s in xs:
        origin = f"study s={s}"
    elif s > xs[-1]:
        origin = f"study s={xs[-1]} (extrapolated)"
    else:
        hi = next(x for x in xs if x > s)
        lo = max(x for x in xs if x < s)
        origin = f"study s={lo}..{hi}" if lo else f"study s={hi} (interpolated from s=0)"
    return Factor(value, origin, caveat)


def read_factors(path: str | Path) -> dict:
    """A user's factors: CSV ``scheme,s,rounds_factor`` (``s`` empty = every ``s``) or JSON
    ``{"scheme": factor}`` / ``{"scheme": {"s": factor}}``.  Refused with one line naming
    the file and the row."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"factors file not found: {path}")
    out: dict = {}
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected an object {{scheme: factor}}")
        for scheme, val in data.items():
            items = val.items() if isinstance(val, dict) else [(None, val)]
            for s, f in items:
                out[_key(scheme, s, f"{path}: {scheme!r}")] = _positive(f, f"{path}: {scheme!r}")
        return out
    rows = list(csv.reader(text.splitlines()))
    header = [c.strip().lower() for c in (rows[0] if rows else [])]
    if not {"scheme", "rounds_factor"} <= set(header):
        raise ValueError(f"{path} line 1: header needs scheme,rounds_factor (and optional s)")
    col = {c: header.index(c) for c in header}
    for line, row in enumerate(rows[1:], start=2):
        if not any(x.strip() for x in row):
            continue
        where = f"{path} line {line}"
        if len(row) < len(header):
            raise ValueError(f"{where}: expected {len(header)} fields, got {len(row)}")
        s = row[col["s"]].strip() if "s" in col else ""
        key = _key(row[col["scheme"]].strip(), s or None, where)
        out[key] = _positive(row[col["rounds_factor"]], where)
    return out


def _key(scheme: str, s, where: str) -> tuple[str, int | None]:
    if scheme not in REGISTRY:
        raise ValueError(f"{where}: unknown scheme {scheme!r}")
    if s is None:
        return scheme, None
    try:
        value = int(str(s))
    except ValueError:
        raise ValueError(f"{where}: s must be an integer >= 0, got {s!r}") from None
    if value < 0:
        raise ValueError(f"{where}: s must be an integer >= 0, got {s!r}")
    return scheme, value


def _positive(text, where: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: rounds_factor {text!r} is not a number") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{where}: rounds_factor must be a positive number, got {text!r}")
    return value
