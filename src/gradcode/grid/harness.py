"""Run experiment grids: one training run per cell, resumable, tidy CSV out.

The grid itself -- TOML schema, cells -- is :mod:`gradcode.grid.schema`, read by
:mod:`gradcode.grid.parse`.  Every cell becomes one
:class:`~gradcode.runtime.config.RunConfig` and one :func:`~gradcode.runtime.run.run`
into ``OUT/runs/<cell-id>/``; ``OUT/results.csv`` has one row per run and
``OUT/rounds.csv`` one row per round (:mod:`gradcode.grid.results`).

Same schedule for every scheme: the straggler schedule of a run is drawn by
:class:`~gradcode.runtime.cluster.Schedule` from ``(delay model, seed, rounds,
workers)`` only, with draws that do not depend on the load, so all schemes of
one (straggler model, seed) cell see the same times (scaled by their load).
``results.csv`` carries a ``schedule_digest`` column (hash of the unit-load
schedule) that makes this checkable.

Per-scheme tuning: with a ``[tune]`` table the tuning runs
(:meth:`~gradcode.grid.schema.ExperimentConfig.tuning_cells`) go first, into
``OUT/tune/<cell-id>/``; :func:`gradcode.grid.tuning.choose` scores them once and
writes ``OUT/tuning.csv``, one row per candidate with the scheme's choice marked;
every reported cell then runs with its scheme's chosen ``lr`` / ``momentum``
(``results.csv``: ``lr``, ``momentum``, ``tuned``, ``tune_seed``).  The tuning
seed never appears in ``results.csv``.

Resumable: a cell whose ``summary.json`` exists (and whose ``config.json`` matches
the cell's current :class:`RunConfig`; otherwise it is run again) is skipped.  A failing cell
writes ``error.txt`` (traceback) in its run directory and the grid goes on; a
torn ``summary.json`` (killed mid-write) makes its cell run again.  With
``jobs > 1`` the pool's workers exit when the grid's process dies (even by
``kill -9``), so no cell keeps running as an orphan (:mod:`gradcode.grid.pool`).

Reuse (``reuse = true``, the default): each phase (tuning runs, then reported
cells) first replays every cell without gradients, trains one cell per distinct
weight trajectory and re-times the others (:mod:`gradcode.grid.reuse`).  Each
phase computes every cell's :class:`RunConfig` once and reads every stored
sketch once, and hands them on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import reuse, tuning
from .checks import check_cells
from .pool import Progress, execute
from .results import collect_results, is_finished, read_json, schedule_digest, write_skipped
from .schema import Cell, ExperimentConfig


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` did: cell ids run, reused, failed, re-timed; the choices."""

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
    write_skipped(out_dir / "skipped.csv", result.skipped)
    t0 = time.perf_counter()
    jobs = cfg.jobs if jobs is None else jobs
    with Progress(progress, len(tune_cells) + len(cells), 0) as report:
        plan = [(tc, cfg.run_config(tc)) for tc in tune_cells]
        todo = _pending(plan, tune_dir, report)
        for cell, (status, _err, _secs) in _run_phase(
            plan, todo, tune_dir, jobs, progress, cfg.reuse
        ):
            result.tuning_ran.append(cell.cell_id)
            if status != "ok":
                result.tuning_failed.append(cell.cell_id)
            report(cell, status, len(result.tuning_failed))
        result.chosen = tuning.choose(cfg, out_dir)  # once: writes tuning.csv
        plan = [(c, cfg.tuned_run_config(c, result.chosen)) for c in cells]
        todo = _pending(plan, runs, report)
        pending = {c.cell_id for c, _ in todo}
        result.reused = [c.cell_id for c in cells if c.cell_id not in pending]
        for cell, (status, _err, _secs) in _run_phase(plan, todo, runs, jobs, progress, cfg.reuse):
            result.ran.append(cell.cell_id)
            if status != "ok":
                result.failed.append(cell.cell_id)
            report(cell, status, len(result.failed))
    result.seconds = time.perf_counter() - t0
    result.retimed = [cid for cid in result.ran if _retimed(runs / cid)]
    collect_results(cfg, out_dir, result.chosen)
    return result


def _pending(plan: list[tuple], runs: Path, report) -> list[tuple]:
    """The ``(cell, RunConfig)`` pairs not finished yet (finished ones are reported ``"done"``)."""
    todo = []
    for c, rc in plan:
        if is_finished(rc, runs / c.cell_id):
            report(c, "done", 0)
        else:
            todo.append((c, rc))
    return todo


def _run_phase(
    plan: list[tuple], todo: list[tuple], runs: Path, jobs: int, progress, reuse_runs: bool
) -> Iterable:
    """Run the ``todo`` pairs of one phase (``plan``: all its ``(cell, RunConfig)`` pairs,
    tuning runs or reported cells); with ``reuse_runs``, train each distinct trajectory
    once and re-time the rest (:mod:`gradcode.grid.reuse`)."""
    if not reuse_runs or not todo:
        yield from execute(todo, runs, jobs)
        return
    sketch_dir = runs.parent / "sketch" / runs.name
    local = [(c, rc) for c, rc in plan if rc.backend == "local"]
    path = {c.cell_id: reuse.sketch_path(sketch_dir, c.cell_id) for c, _ in local}
    sketches = {c.cell_id: reuse.read_sketch(rc, path[c.cell_id]) for c, rc in local}
    need = [(c, rc) for c, rc in local if sketches[c.cell_id] is None]
    with Progress(progress is True, len(need), 0, "replays") as tick:
        for c, _out in execute(need, sketch_dir, jobs, kind="sketch"):
            tick(c, "ok", 0)
    for c, rc in need:  # each stored sketch is read once
        sketches[c.cell_id] = reuse.read_sketch(rc, path[c.cell_id])
    pending = {c.cell_id for c, _ in todo}
    trained = {
        c.cell_id for c, _ in plan if c.cell_id not in pending and not _retimed(runs / c.cell_id)
    }
    rep = reuse.classes(plan, sketches, first=trained)
    yield from execute([(c, rc) for c, rc in todo if rep[c.cell_id] is c], runs, jobs)
    config = dict(plan)
    fallback = []
    for c, rc in todo:
        ref = rep[c.cell_id]
        if ref is c:
            continue
        ref_dir, sk = runs / ref.cell_id, sketches.get(c.cell_id)
        if sk is None or not is_finished(config[ref], ref_dir) or _retimed(ref_dir):
            fallback.append((c, rc))  # its class's run failed: train this one itself
            continue
        t0 = time.perf_counter()
        try:
            reuse.retime(rc, runs / c.cell_id, ref_dir, ref.cell_id, sk)
        except (OSError, ValueError):
            fallback.append((c, rc))
            continue
        secs = time.perf_counter() - t0
        meta = {"seconds": secs, "schedule_digest": schedule_digest(rc),
                "retimed_from": ref.cell_id}  # fmt: skip
        (runs / c.cell_id / "cell.json").write_text(json.dumps(meta, allow_nan=False))
        yield c, ("ok", "", secs)
    yield from execute(fallback, runs, jobs)


def _retimed(run_dir: Path) -> bool:
    return bool((read_json(run_dir / "summary.json") or {}).get("retimed_from"))


__all__ = ["ExperimentResult", "run_experiment"]
