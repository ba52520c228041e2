"""Reading and writing a results directory: finished cells, tidy CSVs, round rows.

``OUT/results.csv`` has one row per cell (its :class:`~gradcode.grid.schema.Cell`
columns, the run's settings, :data:`~gradcode.grid.schema.SUMMARY_COLUMNS` and
``command``, the ``gradcode train`` line that reproduces the cell:
:mod:`gradcode.grid.command`),
``OUT/rounds.csv`` one row per round of every cell.  A cell is finished when its
``summary.json`` exists and its ``config.json`` matches its current
:class:`~gradcode.runtime.config.RunConfig` (:func:`is_finished`).  Every file is
written atomically; a torn JSON file reads as missing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..report.tables import read_csv, write_csv
from ..runtime.cluster import Schedule
from ..runtime.config import RunConfig
from ..runtime.ray import DEFAULT_TIME_SCALE
from .command import train_command
from .schema import CELL_COLUMNS, ROUND_COLUMNS, SUMMARY_COLUMNS, Cell, ExperimentConfig


def schedule_digest(rc: RunConfig) -> str:
    """Short hash of the run's unit-load straggler schedule (rounds x workers)."""
    sched = Schedule(rc.delay.build(), rc.seed, rc.rounds, rc.workers)
    m = np.stack([sched.times(t, 1.0) for t in range(rc.rounds)])
    return hashlib.sha1(np.ascontiguousarray(m).tobytes()).hexdigest()[:12]


def is_finished(rc: RunConfig, run_dir: Path) -> bool:
    """A cell is finished when its ``summary.json`` exists and its ``config.json``
    matches ``rc`` (a cell run under a different configuration is run again)."""
    run_dir = Path(run_dir)
    try:  # a torn summary.json (killed mid-write) means: run the cell again
        summary = json.loads((run_dir / "summary.json").read_text())
        old = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict) or not isinstance(old, dict):
        return False
    new = json.loads(json.dumps(asdict(rc), default=str))
    # A field added to RunConfig since the cell ran counts as unchanged at its default.
    defaults = json.loads(json.dumps(asdict(RunConfig()), default=str))
    for key in set(new) - set(old):
        if new[key] == defaults[key]:
            old[key] = new[key]
    return old == new


def write_skipped(path: Path, skipped: list[tuple[Cell, str]]) -> None:
    """``skipped.csv``: the cells left out, with the reason."""
    rows = [{**c.row(), "reason": reason} for c, reason in skipped]
    write_csv(path, rows, columns=[*CELL_COLUMNS, "reason"])


def _config_columns(rc: RunConfig) -> dict:
    return {
        "workers": rc.workers,
        "delay": rc.delay.label(),
        "lr": rc.lr,
        "momentum": rc.momentum,
        "stale_correction": rc.stale_correction,
        "optimizer": rc.optimizer,
        "eval_every": rc.eval_every,
        "deadline": "" if rc.deadline is None else rc.deadline,
        "backend": rc.backend,
        "batch_size": "" if rc.batch_size is None else rc.batch_size,
        "target_accuracy": "" if rc.target_accuracy is None else rc.target_accuracy,
        "time_scale": "" if rc.time_scale is None else rc.time_scale,
    }


def collect_results(
    cfg: ExperimentConfig, out_dir: str | Path, chosen: dict | None = None
) -> tuple[Path, Path]:
    """Write ``results.csv`` (one row per cell) and ``rounds.csv`` (one row per round).

    ``chosen``: the tuning choices, ``(group, scheme) -> (lr, momentum)``
    (:func:`gradcode.grid.tuning.choose`); required when ``cfg`` has ``[tune]``."""
    if chosen is None and cfg.tune is not None:
        raise ValueError("collect_results: pass the tuning choices (gradcode.grid.tuning.choose)")
    chosen = chosen or {}
    out_dir = Path(out_dir)
    rows, round_rows = [], []
    for cell in cfg.cells():
        rc = cfg.tuned_run_config(cell, chosen)
        d = out_dir / "runs" / cell.cell_id
        row = {**cell.row(), **_config_columns(rc), "status": "missing", "error": ""}
        row["tuned"] = cfg.tune_key(cell) in chosen
        row["tune_seed"] = "" if cfg.tune is None else cfg.tune.seed
        row.update({k: "" for k in SUMMARY_COLUMNS})
        row.update(runtime_seconds="", schedule_digest="")
        row["command"] = cell_command(cfg, cell, rc)
        summ = read_json(d / "summary.json") if is_finished(rc, d) else None
        if summ is not None:
            row["status"] = "ok"
            for k in SUMMARY_COLUMNS:
                if k in summ:
                    row[k] = summ[k]
            if summ.get("rounds"):
                row["time_per_round"] = summ["wall_clock"] / summ["rounds"]
            meta = read_json(d / "cell.json") or {}
            row.update(
                runtime_seconds=meta.get("seconds", ""),
                schedule_digest=meta.get("schedule_digest", ""),
            )
            scale = _time_scale(rc)
            for rec in read_jsonl(d / "rounds.jsonl"):
                round_rows.append({**cell.row(), **round_row(rec, scale)})
        elif (d / "error.txt").is_file():
            row["status"] = "error"
            lines = (d / "error.txt").read_text().strip().splitlines()
            row["error"] = lines[-1] if lines else "error"
        rows.append(row)
    res, rnd = out_dir / "results.csv", out_dir / "rounds.csv"
    write_csv(res, rows, columns=list(rows[0]) if rows else list(CELL_COLUMNS))
    # Ray runs also log the simulator's prediction (absent: rounds.csv as before).
    extra = list(PREDICTED_COLUMNS) if any("predicted_duration" in r for r in round_rows) else []
    write_csv(rnd, round_rows, columns=[*CELL_COLUMNS, *ROUND_COLUMNS, *extra])
    return res, rnd


#: rounds.csv columns of Ray rounds: the calibrated ``predicted_duration`` and the
#: virtual clock's ``simulated_duration`` for the same seeded schedule, and the run's
#: ``time_scale`` (real seconds per schedule unit; the durations are in schedule units).
PREDICTED_COLUMNS = ("predicted_duration", "simulated_duration", "time_scale")


def cell_command(cfg: ExperimentConfig, cell: Cell, rc: RunConfig) -> str:
    """The ``gradcode train`` line that reproduces the cell locally, into
    ``out/<grid>/<cell-id>`` (:mod:`gradcode.grid.command`)."""
    return train_command(rc, f"out/{cfg.name}/{cell.cell_id}")


def _time_scale(rc: RunConfig) -> float:
    return DEFAULT_TIME_SCALE if rc.time_scale is None else float(rc.time_scale)


def read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; ``None`` when missing or torn."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines log; a torn line (killed mid-write) is skipped."""
    if not path.is_file():
        return []
    out = []
    for ln in path.read_text().splitlines():
        try:
            rec = json.loads(ln) if ln.strip() else None
        except ValueError:
            rec = None
        if isinstance(rec, dict):
            out.append(rec)
    return out


def round_row(rec: dict, time_scale: float | None = None) -> dict:
    """One rounds.csv row from a rounds.jsonl record (``time_scale``: the run's,
    written next to ``predicted_duration`` where the record has one)."""
    out = {k: rec.get(k, "") for k in ROUND_COLUMNS}
    if "predicted_duration" in rec:
        out["predicted_duration"] = rec["predicted_duration"]
        out["simulated_duration"] = rec.get("simulated_duration", "")  # Ray: no overheads
        out["time_scale"] = "" if time_scale is None else time_scale
    out["n_arrived"] = len(rec.get("arrived", []))
    out["n_late"] = len(rec.get("late", []))
    out["n_notes"] = len(rec.get("notes", []))
    return out


def clean_cell(out_dir: str | Path, cell: Cell) -> None:
    """Remove one cell's run directory (it will run again)."""
    shutil.rmtree(Path(out_dir) / "runs" / cell.cell_id, ignore_errors=True)


__all__ = [
    "PREDICTED_COLUMNS",
    "cell_command",
    "clean_cell",
    "collect_results",
    "is_finished",
    "read_csv",
    "read_json",
    "read_jsonl",
    "round_row",
    "schedule_digest",
    "write_skipped",
]
