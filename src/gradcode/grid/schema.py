"""Experiment grids: the TOML schema, the configuration it becomes and the cells it expands to.

Reading the TOML file is :mod:`gradcode.grid.parse`, the checks
:mod:`gradcode.grid.checks`, running the cells :mod:`gradcode.grid.harness`.

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
    optimizer = "sgd"           # or "nesterov", "adam"
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
    tasks = ["breast_cancer/logreg", {dataset = "digits", model = "mlp", lr = 0.1,
             momentum = 0.5}]
    s = [1, 2, 3]
    partitionings = ["iid", "label_sorted"]

    [[grids]]                   # optional extra sub-grids: each overrides some
    tasks = ["wine/logreg"]     # axes of [grid]; the experiment is the union
    s = [3]                     # of [grid] (unless skip_base = true) and these

    [tune]                      # optional: per-scheme learning-rate search
    lr = [0.1, 0.3, 1.0]        # candidates (required in [tune])
    momentum = [0.0, 0.9]       # optional candidates (default: the shared momentum)
    seed = 1000                 # the tuning seed (default 1000); never a reported seed

    [report]                    # optional, read by gradcode.report and the tuner
    metric = "train_loss"       # the metric for time-to-target
    target_at = 1.0             # target = the metric DGD reaches at this fraction of its rounds
    target = 0.1                # or an absolute target (overrides target_at)

Validation is up front: every mistake (unknown key, scheme, dataset, model,
partitioning or straggler name, a bad straggler spec, bad numbers, negative
seeds) raises one :class:`ValueError` naming it (:mod:`gradcode.grid.checks`,
called when an :class:`ExperimentConfig` is built); :func:`~gradcode.grid.checks.check_cells`
then checks every cell before any runs (its :class:`RunConfig`, straggler models at
``n = workers``, e.g. ``persistent k`` > n, and that each dataset loads).
A (scheme, s) pair that the scheme cannot be built for at ``n = workers``
(e.g. FRC when ``s + 1`` does not divide ``n``, cyclic MDS when ``n + s`` is
even) is *skipped with a note*, not an error: the grid is a product and such
holes are expected.  The notes are in
:meth:`ExperimentConfig.skipped`, ``OUT/skipped.csv`` and the CLI output.

With ``[tune]``, every (comparison group, scheme) first runs each candidate
``(lr, momentum)`` on the tuning seed (:meth:`ExperimentConfig.tuning_cells`);
each scheme's reported cells then use its best candidate (protocol and metric:
:mod:`gradcode.grid.tuning`).  A task's own ``lr`` is then ignored.

Size: :meth:`ExperimentConfig.size` counts cells, skipped cells and tuning runs
arithmetically (inclusion-exclusion over the grids' axes), without expanding a
single cell, so a grid of a million cells is refused at once
(``gradcode experiment run`` asks for ``--yes`` above a cap).

Shared schedules and resuming are described in :mod:`gradcode.grid.harness`.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, replace
from functools import cached_property

from ..runtime.config import DelaySpec, RunConfig
from ..runtime.stale import stale_schemes
from .checks import invalid_pairs, validate_experiment, validate_tune
from .size import GridSize, grid_size

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
    "verify": bool,
    "batch_size": int,
    "lr_schedule": str,
    "time_scale": float,
    "target_accuracy": float,
    "reuse": bool,
}
TABLES = ("stragglers", "grid", "grids", "report", "tune")
TUNE_KEYS = ("lr", "momentum", "seed", "straggler", "stale_correction")
TASK_KEYS = ("dataset", "model", "lr", "batch_size", "target_accuracy", "rounds", "eval_every",
             "momentum")  # fmt: skip
GRID_KEYS = ("schemes", "stragglers", "seeds", "tasks", "s", "partitionings")
REPORT_KEYS = ("metric", "target_at", "target", "targets")
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
    "reached_target",
    "retimed_from",
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
    """A dataset/model pair, optionally with its own learning rate, momentum, minibatch
    size, test-accuracy target (runs stop on reaching it) and round cap (``None``: the
    experiment's shared value; with ``[tune]``, lr and momentum are the tuning's)."""

    dataset: str
    model: str
    lr: float | None = None
    batch_size: int | None = None
    target_accuracy: float | None = None
    rounds: int | None = None
    eval_every: int | None = None
    momentum: float | None = None

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
class TuneSpec:
    """The ``[tune]`` table: candidate learning rates (and momenta) and the tuning seed."""

    lr: tuple[float, ...]
    momentum: tuple[float, ...] = ()
    seed: int = 1000
    #: Tune on this straggler model only and use the choice for every straggler model
    #: of the same (task, partitioning, s) (None: tune each group on its own model).
    straggler: str | None = None
    #: Candidate stale-gradient corrections for stale schemes (docs/stale.md; () = none).
    stale_correction: tuple[str, ...] = ()


@dataclass(frozen=True)
class TuneCell:
    """One tuning run: a cell on the tuning seed with one candidate ``(lr, momentum)``."""

    cell: Cell
    lr: float
    momentum: float
    stale_correction: str | None = None  # None: the cell's own (``pgc+auto``) or none

    @property
    def group(self) -> str:
        return self.cell.group

    @property
    def scheme(self) -> str:
        return self.cell.scheme

    @property
    def cell_id(self) -> str:
        sc = (
            ""
            if self.stale_correction is None
            else "_sc-" + re.sub(r"[:=,]", "-", self.stale_correction)
        )
        return f"{self.cell.cell_id}_lr{self.lr:g}_m{self.momentum:g}{sc}"


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
    verify: bool = True  # false: use unpinned data files (like --no-verify)
    batch_size: int | None = None  # per partition per round (None: whole partitions)
    lr_schedule: str = "constant"
    time_scale: float | None = None  # Ray: real seconds per schedule unit
    target_accuracy: float | None = None  # stop at this test accuracy (tasks may override)
    reuse: bool = True  # train each distinct trajectory once (gradcode.grid.reuse)
    report: tuple[tuple[str, object], ...] = ()
    tune: TuneSpec | None = None

    def __post_init__(self) -> None:
        validate_experiment(self)
        validate_tune(self)

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
    def _group_tasks(self) -> dict[tuple, TaskSpec]:
        """(task, partitioning, s, scheme) -> task spec: what a tuning cell (another seed,
        perhaps another straggler model) runs."""
        out: dict[tuple, TaskSpec] = {}
        for c, task in self._cell_tasks.items():
            out.setdefault(_task_key(c), task)
        return out

    def tune_key(self, cell: Cell) -> tuple[str, str]:
        """(group, scheme) of the tuning runs whose choice ``cell`` uses."""
        if self.tune is not None and self.tune.straggler is not None:
            cell = replace(cell, straggler=self.tune.straggler)
        return cell.group, cell.scheme

    @cached_property
    def _invalid(self) -> dict[tuple[str, int], str]:
        return invalid_pairs(self)

    def size(self) -> GridSize:
        """How many cells run, are skipped, and how many tuning runs come first, counted
        without expanding the grid (:func:`gradcode.grid.size.grid_size`).

        >>> from gradcode.grid.parse import parse_experiment
        >>> cfg = parse_experiment({"workers": 4, "stragglers": {"se": {"base": "shifted-exp"}},
        ...     "grid": {"schemes": ["dgd", "frc"], "seeds": [0, 1], "s": [1, 2],
        ...              "tasks": ["breast_cancer/logreg"], "partitionings": ["iid"]},
        ...     "grids": [{"seeds": [1, 2]}]})
        >>> cfg.size(), len(cfg.cells()), len(cfg.skipped())
        (GridSize(cells=9, skipped=3, tuning_runs=0, exact=True), 9, 3)
        """
        return grid_size(self, self._invalid)

    def cells(self) -> list[Cell]:
        """The cells that will run (invalid (scheme, s) pairs left out)."""
        bad = self._invalid
        return [c for c in self._cell_tasks if (c.scheme, c.s) not in bad]

    def skipped(self) -> list[tuple[Cell, str]]:
        """Cells left out, with the reason (the scheme cannot be built)."""
        bad = self._invalid
        return [(c, bad[c.scheme, c.s]) for c in self._cell_tasks if (c.scheme, c.s) in bad]

    def tuning_cells(self) -> list[TuneCell]:
        """Every (group, scheme) of :meth:`cells` on the tuning seed x every candidate."""
        if self.tune is None:
            return []
        strag = {} if self.tune.straggler is None else {"straggler": self.tune.straggler}
        bases = dict.fromkeys(replace(c, seed=self.tune.seed, **strag) for c in self.cells())
        moms = self.tune.momentum or (self.momentum,)
        stale, sc = stale_schemes(), self.tune.stale_correction or (None,)
        return [TuneCell(c, lr, m, x) for c in bases for lr in self.tune.lr for m in moms
                for x in (sc if c.scheme in stale else (None,))]  # fmt: skip

    def tuned_run_config(self, cell: Cell, chosen: dict) -> RunConfig:
        """The cell's run with its scheme's chosen ``(lr, momentum[, stale_correction])``
        (``chosen``: :func:`gradcode.grid.tuning.choose`'s ``(group, scheme) -> choice``)."""
        return self.run_config(cell, *chosen.get(self.tune_key(cell), (None, None)))

    def run_config(
        self, cell: Cell | TuneCell, lr=None, momentum=None, stale_correction=None
    ) -> RunConfig:
        """The cell's run; ``lr`` / ``momentum`` / ``stale_correction`` override (a
        :class:`TuneCell` brings its own); scheme ``pgc+auto`` = pgc with correction auto."""
        if isinstance(cell, TuneCell):
            cell, lr, momentum, stale_correction = (
                cell.cell, cell.lr, cell.momentum, cell.stale_correction
            )  # fmt: skip
        scheme, _, fixed = cell.scheme.partition("+")
        task = self._cell_tasks.get(cell) or self._group_tasks[_task_key(cell)]
        if lr is None:
            lr = task.lr if task.lr is not None else self.lr
        pick = lambda own, shared: shared if own is None else own  # noqa: E731
        return RunConfig(
            scheme=scheme,
            stale_correction=fixed or stale_correction or "none",
            workers=self.workers,
            stragglers=cell.s,
            dataset=cell.dataset,
            model=cell.model,
            partitioning=cell.partitioning,
            delay=self.delay_specs[cell.straggler],
            rounds=pick(task.rounds, self.rounds),
            optimizer=self.optimizer,
            lr=float(lr),
            momentum=pick(task.momentum, self.momentum) if momentum is None else float(momentum),
            weight_decay=self.weight_decay,
            deadline=self.deadline,
            seed=cell.seed,
            backend=self.backend,
            eval_every=pick(task.eval_every, self.eval_every),
            on_undecodable=self.on_undecodable,
            data_dir=self.data_dir,
            verify=self.verify,
            batch_size=pick(task.batch_size, self.batch_size),
            lr_schedule=self.lr_schedule,
            time_scale=self.time_scale,
            target_accuracy=pick(task.target_accuracy, self.target_accuracy),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stragglers"] = {k: asdict(v) for k, v in self.stragglers}
        d["report"] = dict(self.report)
        return d


def _task_key(c: Cell) -> tuple:
    return (c.dataset, c.model, c.partitioning, c.s, c.scheme)


__all__ = [
    "CELL_COLUMNS",
    "ROUND_COLUMNS",
    "SUMMARY_COLUMNS",
    "Cell",
    "ExperimentConfig",
    "Grid",
    "TaskSpec",
    "TuneCell",
    "TuneSpec",
]
