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
``kill -9``), so no cell keeps running as an orphan.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.config import RunConfig
from . import reuse, tuning
from .grid import (
    CELL_COLUMNS,
    ROUND_COLUMNS,
    SUMMARY_COLUMNS,
    Cell,
    ExperimentConfig,
    Grid,
    TaskSpec,
    TuneCell,
    check_cells,
    load_experiment,
    parse_experiment,
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

    @property
    def results_csv(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def rounds_csv(self) -> Path:
        return self.out_dir / "rounds.csv"


def schedule_digest(rc: RunConfig) -> str:
    """Short hash of the run's unit-load straggler schedule (rounds x workers)."""
    from ..runtime.cluster import Schedule

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


def run_cell(rc: RunConfig, run_dir: Path) -> tuple[str, str, float]:
    """Run one cell into ``run_dir``; never raises.  Returns (status, error, seconds)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    err_file = run_dir / "error.txt"
    t0 = time.perf_counter()
    try:
        from ..runtime import run as run_module

        run_module.run(rc, run_dir)
    except Exception as exc:  # one failing cell must not stop the grid
        err_file.write_text(traceback.format_exc())
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    if err_file.exists():
        err_file.unlink()
    (run_dir / "cell.json").write_text(
        json.dumps({"seconds": seconds, "schedule_digest": schedule_digest(rc)}, allow_nan=False)
    )
    return "ok", "", seconds


def _pool_init(parent: int) -> None:  # pragma: no cover - runs in worker processes
    import torch

    torch.set_num_threads(1)
    _exit_with_parent(parent)


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Make this worker process die when the grid's process ``parent`` dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` kills it at once.  Everywhere: a
    daemon thread polls ``os.getppid()`` and exits when the worker has been
    re-parented (so even ``kill -9`` of the grid leaves no orphan running cells).
    """
    import signal
    import sys
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _pool_run(rc: RunConfig, run_dir: str) -> tuple[str, str, float]:  # pragma: no cover
    return run_cell(rc, Path(run_dir))


def _pool_sketch(rc: RunConfig, path: str) -> tuple[str, str, float]:  # pragma: no cover
    return reuse.write_sketch(rc, Path(path + ".npz"))


_JOBS = {"run": _pool_run, "sketch": _pool_sketch}


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
    with _Progress(progress, len(tune_cells) + len(cells), 0) as report:
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
        cand = {"scheme": tc.scheme, "lr": tc.lr, "momentum": tc.momentum, "curve": curve}
        by_group.setdefault(tc.group, []).append((tc, cand))
    rows, chosen = [], {}
    for group, items in by_group.items():
        scored = tuning.select([c for _, c in items], rep["metric"], float(rep["target_at"]),
                               targets[group])  # fmt: skip
        for (tc, _), row in zip(items, scored, strict=True):
            rows.append({"group": group, "cell_id": tc.cell_id, "seed": cfg.tune.seed, **row})
            if row["chosen"]:
                chosen[group, tc.scheme] = (tc.lr, tc.momentum)
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


TUNING_COLUMNS = ["group", "scheme", "lr", "momentum", "seed", "cell_id", "status", "target",
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
        yield from _execute(cfg, todo, runs, jobs)
        return
    sketch_dir = runs.parent / "sketch" / runs.name
    need = [
        c
        for c in cells
        if cfg.run_config(c).backend == "local"
        and reuse.read_sketch(cfg.run_config(c), reuse.sketch_path(sketch_dir, c.cell_id)) is None
    ]
    with _Progress(progress is True, len(need), 0, "replays") as tick:
        for c, _out in _execute(cfg, need, sketch_dir, jobs, kind="sketch"):
            tick(c, "ok", 0)
    pending = {c.cell_id for c in todo}
    trained = {
        c.cell_id
        for c in cells
        if c.cell_id not in pending and not _retimed(runs / c.cell_id)
    }
    rep = reuse.classes(cfg, cells, sketch_dir, first=trained)
    real = [c for c in todo if rep[c.cell_id] is c]
    yield from _execute(cfg, real, runs, jobs)
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
        meta = {"seconds": secs, "schedule_digest": schedule_digest(rc), "retimed_from": ref.cell_id}
        (runs / c.cell_id / "cell.json").write_text(json.dumps(meta, allow_nan=False))
        yield c, ("ok", "", secs)
    yield from _execute(cfg, fallback, runs, jobs)


def _retimed(run_dir: Path) -> bool:
    return bool((_read_json(run_dir / "summary.json") or {}).get("retimed_from"))


def _execute(cfg, todo: list, runs: Path, jobs: int, kind: str = "run") -> Iterable:
    """Run (``kind="run"``) or replay (``"sketch"``) cells, in ``jobs`` processes."""
    if jobs <= 1 or len(todo) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: intra-op threads only add contention
        try:
            for c in todo:
                yield c, _JOBS[kind](cfg.run_config(c), str(runs / c.cell_id))
        finally:
            torch.set_num_threads(threads)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # no fork after torch threads exist
    pool = ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_pool_init, initargs=(os.getpid(),)
    )
    try:
        fn = _JOBS[kind]
        futs = {pool.submit(fn, cfg.run_config(c), str(runs / c.cell_id)): c for c in todo}
        for fut in as_completed(futs):
            c = futs[fut]
            try:
                out = fut.result()
            except Exception as exc:  # e.g. a worker process died
                (runs / c.cell_id).mkdir(parents=True, exist_ok=True)
                (runs / c.cell_id / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
                out = ("error", f"{type(exc).__name__}: {exc}", 0.0)
            yield c, out
    except BaseException:  # Ctrl-C, or the caller stopped early: stop the cells now
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        raise
    pool.shutdown(wait=True)


class _Progress:
    """A rich progress bar over the grid, or a callable hook, or nothing."""

    def __init__(self, progress, total: int, done: int, label: str = "cells") -> None:
        self.progress, self.total, self.done = progress, total, done
        self.label = label
        self.bar = None

    def __enter__(self):
        if self.progress is True:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn(self.label),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("grid", total=self.total, completed=self.done, info="")
        return self._report

    def _report(self, cell: Cell, status: str, failed: int) -> None:
        if self.bar is not None:
            info = f"{cell.cell_id} {status}" + (f" ({failed} failed)" if failed else "")
            self.bar.update(self.task, advance=1, info=info)
        elif callable(self.progress):
            self.progress(cell, status)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


# ---------------------------------------------------------------- gathering


def _write_skipped(path: Path, skipped: list[tuple[Cell, str]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*CELL_COLUMNS, "reason"])
        for c, reason in skipped:
            w.writerow([*c.row().values(), reason])


def _config_columns(rc: RunConfig) -> dict:
    return {
        "workers": rc.workers,
        "delay": rc.delay.label(),
        "lr": rc.lr,
        "momentum": rc.momentum,
        "optimizer": rc.optimizer,
        "eval_every": rc.eval_every,
        "deadline": "" if rc.deadline is None else rc.deadline,
        "backend": rc.backend,
        "batch_size": "" if rc.batch_size is None else rc.batch_size,
        "target_accuracy": "" if rc.target_accuracy is None else rc.target_accuracy,
        "time_scale": "" if rc.time_scale is None else rc.time_scale,
    }


def collect_results(cfg: ExperimentConfig, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (one row per cell) and ``rounds.csv`` (one row per round)."""
    out_dir = Path(out_dir)
    rows, round_rows = [], []
    tuned = tuned_config(cfg, out_dir)
    for cell in cfg.cells():
        rc = tuned.run_config(cell)
        d = out_dir / "runs" / cell.cell_id
        row = {**cell.row(), **_config_columns(rc), "status": "missing", "error": ""}
        row["tuned"] = cfg.tune_key(cell) in tuned.chosen
        row["tune_seed"] = "" if cfg.tune is None else cfg.tune.seed
        row.update({k: "" for k in SUMMARY_COLUMNS})
        row.update(runtime_seconds="", schedule_digest="")
        summ = _read_json(d / "summary.json") if is_finished(rc, d) else None
        if summ is not None:
            row["status"] = "ok"
            for k in SUMMARY_COLUMNS:
                if k in summ:
                    row[k] = summ[k]
            if summ.get("rounds"):
                row["time_per_round"] = summ["wall_clock"] / summ["rounds"]
            meta = _read_json(d / "cell.json") or {}
            row.update(
                runtime_seconds=meta.get("seconds", ""),
                schedule_digest=meta.get("schedule_digest", ""),
            )
            scale = _time_scale(rc)
            for rec in _read_jsonl(d / "rounds.jsonl"):
                round_rows.append({**cell.row(), **_round_row(rec, scale)})
        elif (d / "error.txt").is_file():
            row["status"] = "error"
            lines = (d / "error.txt").read_text().strip().splitlines()
            row["error"] = lines[-1] if lines else "error"
        rows.append(row)
    res, rnd = out_dir / "results.csv", out_dir / "rounds.csv"
    _write_csv(res, rows)
    # Ray runs also log the simulator's prediction (absent: rounds.csv as before).
    extra = list(PREDICTED_COLUMNS) if any("predicted_duration" in r for r in round_rows) else []
    _write_csv(rnd, round_rows, columns=[*CELL_COLUMNS, *ROUND_COLUMNS, *extra])
    return res, rnd


#: rounds.csv columns of Ray rounds: the virtual clock's ``predicted_duration``
#: for the same seeded schedule, and the run's ``time_scale`` (real seconds per
#: schedule unit; ``duration`` and ``predicted_duration`` are both in schedule units).
PREDICTED_COLUMNS = ("predicted_duration", "time_scale")


def _time_scale(rc: RunConfig) -> float:
    from ..runtime.ray_cluster import DEFAULT_TIME_SCALE

    return DEFAULT_TIME_SCALE if rc.time_scale is None else float(rc.time_scale)


def _read_json(path: Path) -> dict | None:
    """A JSON object from ``path``; ``None`` when missing or torn."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_jsonl(path: Path) -> list[dict]:
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


def _round_row(rec: dict, time_scale: float | None = None) -> dict:
    """One rounds.csv row from a rounds.jsonl record (``time_scale``: the run's,
    written next to ``predicted_duration`` where the record has one)."""
    out = {k: rec.get(k, "") for k in ROUND_COLUMNS}
    if "predicted_duration" in rec:
        out["predicted_duration"] = rec["predicted_duration"]
        out["time_scale"] = "" if time_scale is None else time_scale
    out["n_arrived"] = len(rec.get("arrived", []))
    out["n_late"] = len(rec.get("late", []))
    out["n_notes"] = len(rec.get("notes", []))
    return out


def _write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> None:
    columns = columns or (list(rows[0]) if rows else list(CELL_COLUMNS))
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV written here, numbers converted back (empty -> None)."""
    with Path(path).open(newline="") as f:
        return [{k: _num(v) for k, v in r.items()} for r in csv.DictReader(f)]


def _num(v: str):
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


def clean_cell(out_dir: str | Path, cell: Cell) -> None:
    """Remove one cell's run directory (it will run again)."""
    shutil.rmtree(Path(out_dir) / "runs" / cell.cell_id, ignore_errors=True)


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
