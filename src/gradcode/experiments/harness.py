"""Run experiment grids: one training run per cell, resumable, tidy CSV out.

The grid itself -- TOML schema, validation, cells -- is :mod:`gradcode.experiments.grid`
(re-exported here).  Every cell becomes one
:class:`~gradcode.runtime.config.RunConfig` and one :func:`~gradcode.runtime.run.run`
into ``OUT/runs/<cell-id>/``; ``OUT/results.csv`` has one row per run and
``OUT/rounds.csv`` one row per round.

Same schedule for every scheme: the straggler schedule of a run is drawn by
:class:`~gradcode.runtime.cluster.Schedule` from ``(delay model, seed, rounds,
workers)`` only, with draws that do not depend on the load, so all schemes of
one (straggler model, seed) cell see the same times (scaled by their load).
``results.csv`` carries a ``schedule_digest`` column (hash of the unit-load
schedule) that makes this checkable.

Per-scheme tuning: with a ``[tune]`` table the tuning runs
(:meth:`~gradcode.experiments.grid.ExperimentConfig.tuning_cells`) go first, into
``OUT/tune/<cell-id>/``; :func:`choose` scores them
(:mod:`gradcode.experiments.tuning`) and writes ``OUT/tuning.csv``, one row per
candidate with the scheme's choice marked; every reported cell then runs with its
scheme's chosen ``lr`` / ``momentum`` (``results.csv``: ``lr``, ``momentum``,
``tuned``, ``tune_seed``).  The tuning seed never appears in ``results.csv``.

Resumable: a cell whose ``summary.json`` exists (and whose ``config.json`` matches
the cell's current :class:`RunConfig`; otherwise it is run again) is skipped.  A failing cell
writes ``error.txt`` (traceback) in its run directory and the grid goes on; a
torn ``summary.json`` (killed mid-write) makes its cell run again.  With
``jobs > 1`` the pool's workers exit when the grid's process dies (even by
``kill -9``), so no cell keeps running as an orphan (:mod:`gradcode.experiments.pool`).

Reuse (``reuse = true``, the default): each phase (tuning runs, then reported
cells) first replays every cell without gradients, trains one cell per distinct
weight trajectory and re-times the others (:mod:`gradcode.experiments.reuse`).
Reading and writing the results directory is :mod:`gradcode.experiments.results_io`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.config import RunConfig
from . import reuse, tuning
from .grid import (
    Cell,
    ExperimentConfig,
    Grid,
    TaskSpec,
    TuneCell,
    check_cells,
    load_experiment,
    parse_experiment,
)
from .pool import _JOBS, Progress, execute, run_cell  # noqa: F401 - _JOBS: tests patch it
from .results_io import (  # noqa: F401 - re-exported: the harness's public API
    PREDICTED_COLUMNS,
    _read_json,
    _round_row,
    _write_csv,
    _write_skipped,
    clean_cell,
    collect_results,
    is_finished,
    read_csv,
    schedule_digest,
)


@dataclass
class ExperimentResult:
    out_dir: Path
    cells: list[Cell]
    ran: list[str] = field(default_factory=list)  # cell ids run now
    reused: list[str] = field(default_factory=list)  # finished before (resume)
    failed: list[str] = field(default_factory=list)
    skipped: list[tuple[Cell, str]] = field(default_factory=list)
    seconds: float = 0.0
    tuning_ran: list[str] = field(default_factory=list)  # tuning runs run now
    tuning_failed: list[str] = field(default_factory=list)
    chosen: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    retimed: list[str] = field(default_factory=list)  # run now by re-timing (reuse)

    @property
    def results_csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def rounds_csv(self) -> Path:
        return self.out_dir / "rounds.csv"


def run_experiment(
    cfg: ExperimentConfig,
    out_dir: str | Path,
    progress: bool | Callable[[Cell, str], None] = True,
    jobs: int | None = None,
) -> ExperimentResult:
    """Run every cell not yet finished into ``out_dir/runs/<cell-id>/``; gather CSVs.

    ``progress``: ``True`` shows a rich progress bar over the grid (stderr),
    ``False`` nothing, a callable gets ``(cell, status)`` after each cell
    (status ``"ok"``, ``"error"`` or ``"done"`` for cells finished earlier).
    ``jobs`` (default ``cfg.jobs``) runs cells in that many processes.
    """
    check_cells(cfg)  # every cell valid before any runs (or anything is written)
    out_dir = Path(out_dir)
    runs, tune_dir = out_dir / "runs", out_dir / "tune"
    runs.mkdir(parents=True, exist_ok=True)
    (out_dir / "experiment.json").write_text(
        json.dumps(cfg.to_dict(), indent=2, default=str, allow_nan=False)
    )
    cells, tune_cells = cfg.cells(), cfg.tuning_cells()
    result = ExperimentResult(out_dir, cells, skipped=cfg.skipped())
    _write_skipped(out_dir / "skipped.csv", result.skipped)
    t0 = time.perf_counter()
    jobs = cfg.jobs if jobs is None else jobs
    with Progress(progress, len(tune_cells) + len(cells), 0) as report:
        todo_tune = _pending(cfg, tune_cells, tune_dir, report)
        for cell, (status, _err, _secs) in _run_phase(
            cfg, tune_cells, todo_tune, tune_dir, jobs, progress
        ):
            result.tuning_ran.append(cell.cell_id)
            if status != "ok":
                result.tuning_failed.append(cell.cell_id)
            report(cell, status, len(result.tuning_failed))
        tuned = tuned_config(cfg, out_dir)
        result.chosen = tuned.chosen
        todo = _pending(tuned, cells, runs, report)
        result.reused = [c.cell_id for c in cells if c not in todo]
        for cell, (status, _err, _secs) in _run_phase(tuned, cells, todo, runs, jobs, progress):
            result.ran.append(cell.cell_id)
            if status != "ok":
                result.failed.append(cell.cell_id)
            report(cell, status, len(result.failed))
    result.seconds = time.perf_counter() - t0
    result.retimed = [cid for cid in result.ran if _retimed(runs / cid)]
    collect_results(cfg, out_dir)
    return result


def _pending(cfg, cells: list, runs: Path, report) -> list:
    """The cells not finished yet (finished ones are reported as ``"done"``)."""
    todo = []
    for c in cells:
        if is_finished(cfg.run_config(c), runs / c.cell_id):
            report(c, "done", 0)
        else:
            todo.append(c)
    return todo


class TunedConfig:
    """An experiment whose cells run with each scheme's chosen ``(lr, momentum)``."""

    def __init__(self, cfg: ExperimentConfig, chosen: dict) -> None:
        self.cfg, self.chosen = cfg, chosen

    def run_config(self, cell: Cell) -> RunConfig:
        return self.cfg.run_config(cell, *self.chosen.get(self.cfg.tune_key(cell), (None, None)))

    def __getattr__(self, name):
        return getattr(self.cfg, name)


def choose(cfg: ExperimentConfig, out_dir: str | Path) -> dict[tuple[str, str], tuple]:
    """Score the finished tuning runs, write ``tuning.csv``; ``(group, scheme) -> (lr, m)``."""
    if cfg.tune is None:
        return {}
    out_dir = Path(out_dir)
    rep = {"metric": "train_loss", "target_at": 1.0, "target": None, **dict(cfg.report)}
    by_group: dict[str, list[tuple[TuneCell, dict]]] = {}
    targets: dict[str, float | None] = {}
    for tc in cfg.tuning_cells():
        targets.setdefault(tc.group, group_target(cfg, cfg.run_config(tc), rep))
        d = out_dir / "tune" / tc.cell_id
        ok = is_finished(cfg.run_config(tc), d)
        curve = tuning.curve_from_log(d / "rounds.jsonl") if ok else None
        cand = {"scheme": tc.scheme, "lr": tc.lr, "momentum": tc.momentum, "curve": curve,
                "stale_correction": tc.stale_correction}  # fmt: skip
        by_group.setdefault(tc.group, []).append((tc, cand))
    rows, chosen = [], {}
    for group, items in by_group.items():
        scored = tuning.select([c for _, c in items], rep["metric"], float(rep["target_at"]),
                               targets[group])  # fmt: skip
        for (tc, _), row in zip(items, scored, strict=True):
            rows.append({"group": group, "cell_id": tc.cell_id, "seed": cfg.tune.seed, **row,
                         "stale_correction": tc.stale_correction or ""})  # fmt: skip
            if row["chosen"]:
                sc = () if tc.stale_correction is None else (tc.stale_correction,)
                chosen[group, tc.scheme] = (tc.lr, tc.momentum, *sc)
    _write_csv(out_dir / "tuning.csv", rows, columns=TUNING_COLUMNS)
    return chosen


def group_target(cfg: ExperimentConfig, rc: RunConfig, rep: dict) -> float | None:
    """The absolute target of a run's comparison: ``[report] targets`` for its task,
    else (accuracy metric) the run's ``target_accuracy``, else ``[report] target``."""
    per_task = dict(rep.get("targets") or {})
    label = f"{rc.dataset}/{rc.model}"
    if label in per_task:
        return float(per_task[label])
    if tuning.higher_is_better(rep["metric"]) and rc.target_accuracy is not None:
        return float(rc.target_accuracy)
    return None if rep.get("target") is None else float(rep["target"])


TUNING_COLUMNS = ["group", "scheme", "lr", "momentum", "stale_correction", "seed", "cell_id",
                  "status", "target",
                  "time_to_target", "rounds_to_target", "final_metric", "final_accuracy",
                  "chosen"]  # fmt: skip


def tuned_config(cfg: ExperimentConfig, out_dir: str | Path) -> TunedConfig:
    """``cfg`` with the choices of the finished tuning runs in ``out_dir`` (if ``[tune]``)."""
    return TunedConfig(cfg, choose(cfg, out_dir))


def _run_phase(cfg, cells: list, todo: list, runs: Path, jobs: int, progress) -> Iterable:
    """Run the ``todo`` cells of one phase (tuning runs or reported cells); with
    ``cfg.reuse``, train each distinct trajectory once and re-time the rest
    (:mod:`gradcode.experiments.reuse`)."""
    if not getattr(cfg, "reuse", False) or not todo:
        yield from execute(cfg, todo, runs, jobs)
        return
    sketch_dir = runs.parent / "sketch" / runs.name
    need = [
        c
        for c in cells
        if cfg.run_config(c).backend == "local"
        and reuse.read_sketch(cfg.run_config(c), reuse.sketch_path(sketch_dir, c.cell_id)) is None
    ]
    with Progress(progress is True, len(need), 0, "replays") as tick:
        for c, _out in execute(cfg, need, sketch_dir, jobs, kind="sketch"):
            tick(c, "ok", 0)
    pending = {c.cell_id for c in todo}
    trained = {
        c.cell_id for c in cells if c.cell_id not in pending and not _retimed(runs / c.cell_id)
    }
    rep = reuse.classes(cfg, cells, sketch_dir, first=trained)
    real = [c for c in todo if rep[c.cell_id] is c]
    yield from execute(cfg, real, runs, jobs)
    fallback = []
    for c in todo:
        ref = rep[c.cell_id]
        if ref is c:
            continue
        rc, ref_dir = cfg.run_config(c), runs / ref.cell_id
        sk = reuse.read_sketch(rc, reuse.sketch_path(sketch_dir, c.cell_id))
        if sk is None or not is_finished(cfg.run_config(ref), ref_dir) or _retimed(ref_dir):
            fallback.append(c)  # its class's run failed: train this one itself
            continue
        t0 = time.perf_counter()
        try:
            reuse.retime(rc, runs / c.cell_id, ref_dir, ref.cell_id, sk)
        except (OSError, ValueError):
            fallback.append(c)
            continue
        secs = time.perf_counter() - t0
        meta = {"seconds": secs, "schedule_digest": schedule_digest(rc),
                "retimed_from": ref.cell_id}  # fmt: skip
        (runs / c.cell_id / "cell.json").write_text(json.dumps(meta, allow_nan=False))
        yield c, ("ok", "", secs)
    yield from execute(cfg, fallback, runs, jobs)


def _retimed(run_dir: Path) -> bool:
    return bool((_read_json(run_dir / "summary.json") or {}).get("retimed_from"))


__all__ = [
    "Cell",
    "ExperimentConfig",
    "ExperimentResult",
    "Grid",
    "TunedConfig",
    "choose",
    "TaskSpec",
    "collect_results",
    "load_experiment",
    "parse_experiment",
    "read_csv",
    "is_finished",
    "run_cell",
    "run_experiment",
    "schedule_digest",
    "tuned_config",
]
