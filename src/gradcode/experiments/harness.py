"""Declarative experiment grids: TOML in, one training run per cell, tidy CSV out.

An experiment is a grid of schemes x straggler models x seeds x
dataset/model pairs x ``s`` values x partitionings, with shared settings
(workers, rounds, optimizer, ...).  Every cell becomes one
:class:`~gradcode.runtime.config.RunConfig` and one :func:`~gradcode.runtime.run.run`
into ``OUT/runs/<cell-id>/``.

TOML schema (all shared keys at the top, before any table)::

    name = "pgc_study"          # optional, default: the file's stem
    workers = 24                # n
    rounds = 60
    lr = 0.5
    optimizer = "sgd"           # or "adam"
    momentum = 0.0
    eval_every = 5
    deadline = 30.0             # optional
    backend = "local"           # or "ray"
    on_undecodable = "fallback" # or "stop"
    jobs = 2                    # cells run in parallel (processes)

    [stragglers.shifted_exp]    # named straggler models, each a DelaySpec
    base = "shifted-exp:a=1,mu=1"
    [stragglers.persistent]
    base = "shifted-exp:a=1,mu=1"
    persistent = "k=2,kappa=5"

    [grid]                      # the axes (every key required except stragglers)
    schemes = ["dgd", "frc", "pgc"]
    stragglers = ["shifted_exp", "persistent"]   # default: every named model
    seeds = [0, 1, 2]
    tasks = ["breast_cancer/logreg", {dataset = "digits", model = "mlp", lr = 0.1}]
    s = [1, 2, 3]
    partitionings = ["iid", "label_sorted"]

    [[grids]]                   # optional extra sub-grids: each overrides some
    tasks = ["wine/logreg"]     # axes of [grid]; the experiment is the union
    s = [3]                     # of [grid] (unless skip_base = true) and these

    [report]                    # optional, read by gradcode.experiments.report
    metric = "train_loss"       # the metric for time-to-target
    target_at = 1.0             # target = the metric DGD reaches at this fraction of its rounds
    target = 0.1                # or an absolute target (overrides target_at)

Validation is up front: every mistake (unknown key, scheme, dataset, model,
partitioning or straggler name, a bad straggler spec, bad numbers) raises one
:class:`ValueError` naming it.  A (scheme, s) pair that the scheme cannot be
built for at ``n = workers`` (e.g. FRC when ``s + 1`` does not divide ``n``,
cyclic MDS when ``n + s`` is even) is *skipped with a note*, not an error: the
grid is a product and such holes are expected.  The notes are in
:meth:`ExperimentConfig.skipped`, ``OUT/skipped.csv`` and the CLI output.

Same schedule for every scheme: the straggler schedule of a run is drawn by
:class:`~gradcode.runtime.cluster.Schedule` from ``(delay model, seed, rounds,
workers)`` only, with draws that do not depend on the load, so all schemes of
one (straggler model, seed) cell see the same times (scaled by their load).
``results.csv`` carries a ``schedule_digest`` column (hash of the unit-load
schedule) that makes this checkable.

Resumable: a cell whose ``summary.json`` exists (and whose ``config.json`` matches
the cell's current :class:`RunConfig`; otherwise it is run again) is skipped.  A failing cell
writes ``error.txt`` (traceback) in its run directory and the grid goes on.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import os
import shutil
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..runtime.config import DelaySpec, RunConfig

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

SHARED_KEYS = {
    "name": str,
    "workers": int,
    "rounds": int,
    "lr": float,
    "optimizer": str,
    "momentum": float,
    "weight_decay": float,
    "eval_every": int,
    "deadline": float,
    "backend": str,
    "on_undecodable": str,
    "jobs": int,
    "data_dir": str,
}
TABLES = ("stragglers", "grid", "grids", "report")
GRID_KEYS = ("schemes", "stragglers", "seeds", "tasks", "s", "partitionings")
REPORT_KEYS = ("metric", "target_at", "target")
DELAY_KEYS = ("base", "persistent", "bursty", "crash")

#: Cell columns, in the order they appear in ``results.csv`` / ``rounds.csv``.
CELL_COLUMNS = ("cell_id", "group", "scheme", "straggler", "seed", "dataset", "model", "s",
                "partitioning")  # fmt: skip
SUMMARY_COLUMNS = (
    "rounds",
    "wall_clock",
    "time_per_round",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "exact_fraction",
    "mean_staleness",
    "fallback_rounds",
)
ROUND_COLUMNS = (
    "round",
    "time",
    "duration",
    "n_arrived",
    "n_late",
    "decoder",
    "exact",
    "covered",
    "residual",
    "staleness_max",
    "staleness_mean",
    "n_notes",
    "train_loss",
    "test_loss",
    "test_accuracy",
)


@dataclass(frozen=True)
class TaskSpec:
    """A dataset/model pair, optionally with its own learning rate."""

    dataset: str
    model: str
    lr: float | None = None

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.model}"


@dataclass(frozen=True)
class Grid:
    schemes: tuple[str, ...]
    stragglers: tuple[str, ...]
    seeds: tuple[int, ...]
    tasks: tuple[TaskSpec, ...]
    s: tuple[int, ...]
    partitionings: tuple[str, ...]


@dataclass(frozen=True)
class Cell:
    """One point of the grid = one training run."""

    scheme: str
    straggler: str
    seed: int
    dataset: str
    model: str
    s: int
    partitioning: str

    @property
    def group(self) -> str:
        """The comparison group: everything but scheme and seed."""
        return f"{self.dataset}-{self.model}_{self.partitioning}_{self.straggler}_s{self.s}"

    @property
    def cell_id(self) -> str:
        return f"{self.group}_{self.scheme}_seed{self.seed}"

    def row(self) -> dict:
        return {"cell_id": self.cell_id, "group": self.group, **asdict(self)}


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment: shared settings, named straggler models, grids."""

    name: str
    grids: tuple[Grid, ...]
    stragglers: tuple[tuple[str, DelaySpec], ...]
    workers: int = 24
    rounds: int = 60
    lr: float = 0.5
    optimizer: str = "sgd"
    momentum: float = 0.0
    weight_decay: float = 0.0
    eval_every: int = 5
    deadline: float | None = None
    backend: str = "local"
    on_undecodable: str = "fallback"
    jobs: int = 1
    data_dir: str | None = None
    report: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def delay_specs(self) -> dict[str, DelaySpec]:
        return dict(self.stragglers)

    @cached_property
    def _cell_tasks(self) -> dict[Cell, TaskSpec]:
        seen: dict[Cell, TaskSpec] = {}
        for g in self.grids:
            for task, part, strag, s, seed, scheme in itertools.product(
                g.tasks, g.partitionings, g.stragglers, g.s, g.seeds, g.schemes
            ):
                cell = Cell(scheme, strag, seed, task.dataset, task.model, s, part)
                seen.setdefault(cell, task)
        return seen

    @cached_property
    def _invalid(self) -> dict[tuple[str, int], str]:
        return _invalid_pairs(self)

    def cells(self) -> list[Cell]:
        """The cells that will run (invalid (scheme, s) pairs left out)."""
        bad = self._invalid
        return [c for c in self._cell_tasks if (c.scheme, c.s) not in bad]

    def skipped(self) -> list[tuple[Cell, str]]:
        """Cells left out, with the reason (the scheme cannot be built)."""
        bad = self._invalid
        return [(c, bad[c.scheme, c.s]) for c in self._cell_tasks if (c.scheme, c.s) in bad]

    def run_config(self, cell: Cell) -> RunConfig:
        task = self._cell_tasks[cell]
        return RunConfig(
            scheme=cell.scheme,
            workers=self.workers,
            stragglers=cell.s,
            dataset=cell.dataset,
            model=cell.model,
            partitioning=cell.partitioning,
            delay=self.delay_specs[cell.straggler],
            rounds=self.rounds,
            optimizer=self.optimizer,
            lr=task.lr if task.lr is not None else self.lr,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            deadline=self.deadline,
            seed=cell.seed,
            backend=self.backend,
            eval_every=self.eval_every,
            on_undecodable=self.on_undecodable,
            data_dir=self.data_dir,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stragglers"] = {k: asdict(v) for k, v in self.stragglers}
        d["report"] = dict(self.report)
        return d


# ---------------------------------------------------------------- parsing


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Parse and validate an experiment TOML file (see the module docstring)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"experiment file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    return parse_experiment(raw, default_name=path.stem)


def parse_experiment(raw: dict, default_name: str = "experiment") -> ExperimentConfig:
    """Build an :class:`ExperimentConfig` from an already-parsed TOML mapping."""
    unknown = sorted(set(raw) - set(SHARED_KEYS) - set(TABLES))
    if unknown:
        raise ValueError(
            f"unknown key(s) {unknown}; shared settings are {sorted(SHARED_KEYS)}, "
            f"tables are {list(TABLES)}"
        )
    shared = {}
    for key, typ in SHARED_KEYS.items():
        if key in raw:
            shared[key] = _typed(raw[key], typ, key)
    shared.setdefault("name", default_name)

    strag_raw = raw.get("stragglers")
    if not isinstance(strag_raw, dict) or not strag_raw:
        raise ValueError("define at least one straggler model: [stragglers.NAME] base = '...'")
    stragglers = []
    for name, spec in strag_raw.items():
        if not isinstance(spec, dict):
            raise ValueError(f"[stragglers.{name}] must be a table with base = '...'")
        bad = sorted(set(spec) - set(DELAY_KEYS))
        if bad:
            raise ValueError(f"[stragglers.{name}]: unknown key(s) {bad}; allowed {DELAY_KEYS}")
        if "base" not in spec:
            raise ValueError(f"[stragglers.{name}]: missing base = '...'")
        ds = DelaySpec(**{k: str(v) for k, v in spec.items()})
        try:
            ds.build()
        except (ValueError, TypeError, OSError) as exc:
            raise ValueError(f"[stragglers.{name}]: {exc}") from None
        stragglers.append((str(name), ds))

    base = raw.get("grid")
    if not isinstance(base, dict):
        raise ValueError("missing [grid] table with the axes " + ", ".join(GRID_KEYS))
    base = dict(base)
    skip_base = bool(base.pop("skip_base", False))
    base.setdefault("stragglers", [n for n, _ in stragglers])
    grids = [] if skip_base else [_grid(base, "[grid]")]
    extra = raw.get("grids", [])
    if not isinstance(extra, list):
        raise ValueError("grids must be an array of tables: [[grids]]")
    for i, over in enumerate(extra):
        bad = sorted(set(over) - set(GRID_KEYS))
        if bad:
            raise ValueError(f"[[grids]] #{i + 1}: unknown key(s) {bad}; allowed {GRID_KEYS}")
        grids.append(_grid({**base, **over}, f"[[grids]] #{i + 1}"))
    if not grids:
        raise ValueError("no grid: [grid] has skip_base = true and there are no [[grids]]")

    report = raw.get("report", {})
    bad = sorted(set(report) - set(REPORT_KEYS))
    if bad:
        raise ValueError(f"[report]: unknown key(s) {bad}; allowed {REPORT_KEYS}")
    return ExperimentConfig(
        grids=tuple(grids),
        stragglers=tuple(stragglers),
        report=tuple(sorted(report.items())),
        **shared,
    )


def _typed(value, typ, key: str):
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, typ) or isinstance(value, bool):
        raise ValueError(f"{key} must be {typ.__name__}, got {value!r}")
    return value


def _grid(d: dict, where: str) -> Grid:
    bad = sorted(set(d) - set(GRID_KEYS))
    if bad:
        raise ValueError(f"{where}: unknown key(s) {bad}; allowed {GRID_KEYS}")
    missing = [k for k in GRID_KEYS if k not in d]
    if missing:
        raise ValueError(f"{where}: missing axis/axes {missing}")
    axes = {}
    for key in GRID_KEYS:
        v = d[key]
        if not isinstance(v, list) or not v:
            raise ValueError(f"{where}: {key} must be a non-empty list, got {v!r}")
        axes[key] = v
    for key in ("seeds", "s"):
        for v in axes[key]:
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"{where}: {key} must be integers, got {v!r}")
    return Grid(
        schemes=tuple(str(x) for x in axes["schemes"]),
        stragglers=tuple(str(x) for x in axes["stragglers"]),
        seeds=tuple(axes["seeds"]),
        tasks=tuple(_task(t, where) for t in axes["tasks"]),
        s=tuple(axes["s"]),
        partitionings=tuple(str(x).replace("-", "_") for x in axes["partitionings"]),
    )


def _task(t, where: str) -> TaskSpec:
    if isinstance(t, str):
        if t.count("/") != 1:
            raise ValueError(f"{where}: task must be 'dataset/model', got {t!r}")
        ds, model = t.split("/")
        return TaskSpec(ds.strip(), model.strip())
    if isinstance(t, dict):
        bad = sorted(set(t) - {"dataset", "model", "lr"})
        if bad or "dataset" not in t or "model" not in t:
            raise ValueError(
                f"{where}: task table needs dataset and model (and optional lr), got {t!r}"
            )
        lr = t.get("lr")
        return TaskSpec(str(t["dataset"]), str(t["model"]), None if lr is None else float(lr))
    raise ValueError(f"{where}: task must be 'dataset/model' or a table, got {t!r}")


def _validate(cfg: ExperimentConfig) -> None:
    from ..codes import REGISTRY
    from ..data import PARTITIONINGS, available_datasets
    from ..models import available_models

    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    if cfg.rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {cfg.rounds}")
    if not cfg.lr > 0:
        raise ValueError(f"lr must be positive, got {cfg.lr}")
    if cfg.optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {cfg.optimizer!r}")
    if cfg.backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {cfg.backend!r}")
    if cfg.on_undecodable not in ("fallback", "stop"):
        raise ValueError(f"on_undecodable must be 'fallback' or 'stop', got {cfg.on_undecodable!r}")
    if cfg.eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {cfg.eval_every}")
    if cfg.jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {cfg.jobs}")
    if cfg.deadline is not None and not cfg.deadline > 0:
        raise ValueError(f"deadline must be positive, got {cfg.deadline}")
    names = {n for n, _ in cfg.stragglers}
    datasets, models = available_datasets(), available_models()
    for g in cfg.grids:
        for sch in g.schemes:
            if sch not in REGISTRY:
                raise ValueError(f"unknown scheme {sch!r}; known schemes: {', '.join(REGISTRY)}")
        for st in g.stragglers:
            if st not in names:
                raise ValueError(f"unknown straggler model {st!r}; defined: {sorted(names)}")
        for t in g.tasks:
            if t.dataset not in datasets:
                raise ValueError(f"unknown dataset {t.dataset!r}; choose from {datasets}")
            if t.model not in models:
                raise ValueError(f"unknown model {t.model!r}; choose from {models}")
            if t.lr is not None and not t.lr > 0:
                raise ValueError(f"task {t.label}: lr must be positive, got {t.lr}")
        for p in g.partitionings:
            if p not in PARTITIONINGS:
                raise ValueError(f"unknown partitioning {p!r}; choose from {list(PARTITIONINGS)}")
        for s in g.s:
            if not 0 <= s < cfg.workers:
                raise ValueError(f"s must be in 0..{cfg.workers - 1} (workers - 1), got {s}")
    rep = dict(cfg.report)
    if "target_at" in rep and not (
        isinstance(rep["target_at"], int | float) and 0 < rep["target_at"] <= 1
    ):
        raise ValueError(f"[report] target_at must be in (0, 1], got {rep['target_at']!r}")
    if "metric" in rep and rep["metric"] not in ("train_loss", "test_loss"):
        raise ValueError(f"[report] metric must be train_loss or test_loss, got {rep['metric']!r}")


def _invalid_pairs(cfg: ExperimentConfig) -> dict[tuple[str, int], str]:
    """(scheme, s) pairs the scheme cannot be built for at n = workers, with the reason."""
    from ..codes import make_scheme

    out = {}
    pairs = {(sch, s) for g in cfg.grids for sch in g.schemes for s in g.s}
    for sch, s in sorted(pairs):
        try:
            make_scheme(sch, cfg.workers, 0 if sch == "dgd" else s, rng=np.random.default_rng(0))
        except ValueError as exc:
            out[sch, s] = str(exc)
    return out


# ---------------------------------------------------------------- running


@dataclass
class ExperimentResult:
    out_dir: Path
    cells: list[Cell]
    ran: list[str] = field(default_factory=list)  # cell ids run now
    reused: list[str] = field(default_factory=list)  # finished before (resume)
    failed: list[str] = field(default_factory=list)
    skipped: list[tuple[Cell, str]] = field(default_factory=list)
    seconds: float = 0.0

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
    if not (run_dir / "summary.json").is_file():
        return False
    try:
        old = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return old == json.loads(json.dumps(asdict(rc), default=str))


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
        json.dumps({"seconds": seconds, "schedule_digest": schedule_digest(rc)})
    )
    return "ok", "", seconds


def _pool_init() -> None:  # pragma: no cover - runs in worker processes
    import torch

    torch.set_num_threads(1)


def _pool_run(rc: RunConfig, run_dir: str) -> tuple[str, str, float]:  # pragma: no cover
    return run_cell(rc, Path(run_dir))


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
    out_dir = Path(out_dir)
    runs = out_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (out_dir / "experiment.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))
    cells = cfg.cells()
    result = ExperimentResult(out_dir, cells, skipped=cfg.skipped())
    _write_skipped(out_dir / "skipped.csv", result.skipped)
    todo = []
    for c in cells:
        if is_finished(cfg.run_config(c), runs / c.cell_id):
            result.reused.append(c.cell_id)
        else:
            todo.append(c)
    t0 = time.perf_counter()
    jobs = cfg.jobs if jobs is None else jobs
    with _Progress(progress, len(cells), len(result.reused)) as report:
        for c in cells:
            if c.cell_id in result.reused and callable(progress):
                progress(c, "done")
        for cell, (status, _err, _secs) in _execute(cfg, todo, runs, jobs):
            result.ran.append(cell.cell_id)
            if status != "ok":
                result.failed.append(cell.cell_id)
            report(cell, status, len(result.failed))
    result.seconds = time.perf_counter() - t0
    collect_results(cfg, out_dir)
    return result


def _execute(cfg: ExperimentConfig, todo: list[Cell], runs: Path, jobs: int) -> Iterable:
    if jobs <= 1 or len(todo) <= 1:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: intra-op threads only add contention
        try:
            for c in todo:
                yield c, run_cell(cfg.run_config(c), runs / c.cell_id)
        finally:
            torch.set_num_threads(threads)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # no fork after torch threads exist
    with ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_pool_init) as pool:
        futs = {pool.submit(_pool_run, cfg.run_config(c), str(runs / c.cell_id)): c for c in todo}
        for fut in as_completed(futs):
            c = futs[fut]
            try:
                out = fut.result()
            except Exception as exc:  # e.g. a worker process died
                (runs / c.cell_id).mkdir(parents=True, exist_ok=True)
                (runs / c.cell_id / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
                out = ("error", f"{type(exc).__name__}: {exc}", 0.0)
            yield c, out


class _Progress:
    """A rich progress bar over the grid, or a callable hook, or nothing."""

    def __init__(self, progress, total: int, done: int) -> None:
        self.progress, self.total, self.done = progress, total, done
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
                TextColumn("cells"),
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
        "optimizer": rc.optimizer,
        "eval_every": rc.eval_every,
        "deadline": "" if rc.deadline is None else rc.deadline,
        "backend": rc.backend,
    }


def collect_results(cfg: ExperimentConfig, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.csv`` (one row per cell) and ``rounds.csv`` (one row per round)."""
    out_dir = Path(out_dir)
    rows, round_rows = [], []
    for cell in cfg.cells():
        rc = cfg.run_config(cell)
        d = out_dir / "runs" / cell.cell_id
        row = {**cell.row(), **_config_columns(rc), "status": "missing", "error": ""}
        row.update({k: "" for k in SUMMARY_COLUMNS})
        row.update(runtime_seconds="", schedule_digest="")
        if is_finished(rc, d):
            summ = json.loads((d / "summary.json").read_text())
            row["status"] = "ok"
            for k in SUMMARY_COLUMNS:
                if k in summ:
                    row[k] = summ[k]
            if summ.get("rounds"):
                row["time_per_round"] = summ["wall_clock"] / summ["rounds"]
            if (d / "cell.json").is_file():
                meta = json.loads((d / "cell.json").read_text())
                row.update(runtime_seconds=meta["seconds"], schedule_digest=meta["schedule_digest"])
            for rec in _read_jsonl(d / "rounds.jsonl"):
                round_rows.append({**cell.row(), **_round_row(rec)})
        elif (d / "error.txt").is_file():
            row["status"] = "error"
            lines = (d / "error.txt").read_text().strip().splitlines()
            row["error"] = lines[-1] if lines else "error"
        rows.append(row)
    res, rnd = out_dir / "results.csv", out_dir / "rounds.csv"
    _write_csv(res, rows)
    _write_csv(rnd, round_rows, columns=[*CELL_COLUMNS, *ROUND_COLUMNS])
    return res, rnd


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def _round_row(rec: dict) -> dict:
    out = {k: rec.get(k, "") for k in ROUND_COLUMNS}
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
    "TaskSpec",
    "collect_results",
    "load_experiment",
    "parse_experiment",
    "read_csv",
    "is_finished",
    "run_cell",
    "run_experiment",
    "schedule_digest",
]
