"""Reading an experiment TOML file into an :class:`~gradcode.experiments.grid.ExperimentConfig`,
and validating it (the schema is in :mod:`gradcode.experiments.grid`).

Validation is up front: every mistake raises one :class:`ValueError` naming it,
before anything runs or is written; :func:`check_cells` then checks every cell.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..runtime.stale import check as check_stale_correction
from ..runtime.stale import parse as parse_stale_correction
from .grid import (
    DELAY_KEYS,
    GRID_KEYS,
    REPORT_KEYS,
    SHARED_KEYS,
    TABLES,
    TASK_KEYS,
    TUNE_KEYS,
    DelaySpec,
    ExperimentConfig,
    Grid,
    TaskSpec,
    TuneSpec,
)

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]


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
        if not isinstance(over, dict):
            raise ValueError(f"[[grids]] #{i + 1} must be a table of axes, got {over!r}")
        bad = sorted(set(over) - set(GRID_KEYS))
        if bad:
            raise ValueError(f"[[grids]] #{i + 1}: unknown key(s) {bad}; allowed {GRID_KEYS}")
        grids.append(_grid({**base, **over}, f"[[grids]] #{i + 1}"))
    if not grids:
        raise ValueError("no grid: [grid] has skip_base = true and there are no [[grids]]")

    report = raw.get("report", {})
    if not isinstance(report, dict):
        raise ValueError(f"report must be a table: [report] metric = ..., got {report!r}")
    bad = sorted(set(report) - set(REPORT_KEYS))
    if bad:
        raise ValueError(f"[report]: unknown key(s) {bad}; allowed {REPORT_KEYS}")
    return ExperimentConfig(
        grids=tuple(grids),
        stragglers=tuple(stragglers),
        report=tuple(sorted(report.items())),
        tune=_tune(raw.get("tune")),
        **shared,
    )


def _tune(raw) -> TuneSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ValueError("[tune] must be a table, e.g. [tune] lr = [0.1, 0.3, 1.0]")
    bad = sorted(set(raw) - set(TUNE_KEYS))
    if bad:
        raise ValueError(f"[tune]: unknown key(s) {bad}; allowed {TUNE_KEYS}")
    if "lr" not in raw:
        raise ValueError("[tune]: missing lr = [...] (the candidate learning rates)")

    def floats(key):
        v = raw.get(key, [])
        if not isinstance(v, list) or (key == "lr" and not v):
            raise ValueError(f"[tune] {key} must be a non-empty list of numbers, got {v!r}")
        return tuple(_typed(x, float, f"[tune] {key}") for x in v)

    seed = raw.get("seed", 1000)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"[tune] seed must be an integer, got {seed!r}")
    strag = raw.get("straggler")
    if strag is not None and not isinstance(strag, str):
        raise ValueError(f"[tune] straggler must be a straggler model's name, got {strag!r}")
    scs = raw.get("stale_correction", [])
    if not isinstance(scs, list) or not all(isinstance(x, str) for x in scs):
        raise ValueError(f"[tune] stale_correction must be a list of names, got {scs!r}")
    for x in scs:
        parse_stale_correction(x)  # one-line ValueError naming the bad one
    return TuneSpec(lr=floats("lr"), momentum=floats("momentum"), seed=seed, straggler=strag,
                    stale_correction=tuple(scs))  # fmt: skip


def _typed(value, typ, key: str):
    if typ is bool and isinstance(value, bool):
        return value
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
        bad = sorted(set(t) - set(TASK_KEYS))
        if bad or "dataset" not in t or "model" not in t:
            raise ValueError(
                f"{where}: task table needs dataset and model (optional: "
                f"{', '.join(TASK_KEYS[2:])}), got {t!r}"
            )
        typed = {
            k: _typed(t[k], int if k in _INT_TASK_KEYS else float, f"task {k}")
            for k in TASK_KEYS[2:]
            if k in t
        }
        return TaskSpec(str(t["dataset"]), str(t["model"]), **typed)
    raise ValueError(f"{where}: task must be 'dataset/model' or a table, got {t!r}")


_INT_TASK_KEYS = ("batch_size", "rounds", "eval_every")


def _validate(cfg: ExperimentConfig) -> None:
    from ..codes import REGISTRY
    from ..data import PARTITIONINGS, available_datasets
    from ..models import available_models
    from ..runtime.config import MAX_SCHEDULE, MAX_WORKERS

    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    if cfg.rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {cfg.rounds}")
    if cfg.workers > MAX_WORKERS or cfg.rounds * cfg.workers > MAX_SCHEDULE:
        raise ValueError(
            f"need workers <= {MAX_WORKERS} and rounds * workers <= {MAX_SCHEDULE:.0e}, "
            f"got workers={cfg.workers}, rounds={cfg.rounds}"
        )
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
    if cfg.deadline is not None and not (math.isfinite(cfg.deadline) and cfg.deadline > 0):
        raise ValueError(f"deadline must be a positive finite number, got {cfg.deadline}")
    if not (math.isfinite(cfg.lr) and 0 <= cfg.momentum < 1 and cfg.weight_decay >= 0):
        raise ValueError(
            f"need a finite lr, momentum in [0, 1) and weight_decay >= 0, got lr={cfg.lr}, "
            f"momentum={cfg.momentum}, weight_decay={cfg.weight_decay}"
        )
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise ValueError(f"data_dir {cfg.data_dir!r} is not a folder")
    names = {n for n, _ in cfg.stragglers}
    datasets, models = available_datasets(), available_models()
    for g in cfg.grids:
        for sch in g.schemes:
            base, _, corr = sch.partition("+")  # pgc+auto: pgc with stale correction auto
            if base not in REGISTRY:
                raise ValueError(f"unknown scheme {sch!r}; known schemes: {', '.join(REGISTRY)}")
            if corr:
                check_stale_correction(corr, base)
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
            for key in _INT_TASK_KEYS:
                if getattr(t, key) is not None and getattr(t, key) < 1:
                    raise ValueError(f"task {t.label}: {key} must be >= 1, got {getattr(t, key)}")
            if t.target_accuracy is not None and not 0 < t.target_accuracy <= 1:
                raise ValueError(
                    f"task {t.label}: target_accuracy must be in (0, 1], got {t.target_accuracy}"
                )
        for p in g.partitionings:
            if p not in PARTITIONINGS:
                raise ValueError(f"unknown partitioning {p!r}; choose from {list(PARTITIONINGS)}")
        for s in g.s:
            if not 0 <= s < cfg.workers:
                raise ValueError(f"s must be in 0..{cfg.workers - 1} (workers - 1), got {s}")
        for seed in g.seeds:
            if seed < 0:
                raise ValueError(f"seeds must be >= 0, got {seed}")
    rep = dict(cfg.report)
    if "target_at" in rep and not (
        isinstance(rep["target_at"], int | float) and 0 < rep["target_at"] <= 1
    ):
        raise ValueError(f"[report] target_at must be in (0, 1], got {rep['target_at']!r}")
    metrics = ("train_loss", "test_loss", "test_accuracy")
    if "metric" in rep and rep["metric"] not in metrics:
        raise ValueError(f"[report] metric must be one of {metrics}, got {rep['metric']!r}")
    if "targets" in rep and not (
        isinstance(rep["targets"], dict)
        and all(isinstance(v, int | float) for v in rep["targets"].values())
    ):
        raise ValueError(
            "[report] targets must be a table of task -> number, e.g. "
            f"targets = {{ 'adult/mlp' = 0.84 }}, got {rep['targets']!r}"
        )


def _validate_tune(cfg: ExperimentConfig) -> None:
    t = cfg.tune
    if t is None:
        return
    if len(set(t.lr)) != len(t.lr) or not all(x > 0 and np.isfinite(x) for x in t.lr):
        raise ValueError(f"[tune] lr must be distinct positive numbers, got {list(t.lr)}")
    if len(set(t.momentum)) != len(t.momentum) or not all(0 <= m < 1 for m in t.momentum):
        got = list(t.momentum)
        raise ValueError(f"[tune] momentum must be distinct numbers in [0, 1), got {got}")
    if t.seed < 0:
        raise ValueError(f"[tune] seed must be >= 0, got {t.seed}")
    names = [n for n, _ in cfg.stragglers]
    if t.straggler is not None and t.straggler not in names:
        raise ValueError(f"[tune] straggler {t.straggler!r} is not defined; defined: {names}")
    reported = sorted({s for g in cfg.grids for s in g.seeds})
    if t.seed in reported:
        raise ValueError(
            f"[tune] seed {t.seed} is one of the reported seeds {reported}; "
            "tune on a seed the report never sees"
        )


def check_cells(cfg: ExperimentConfig) -> None:
    """Validate every cell before any runs (one ``ValueError`` naming the first bad one).

    Builds each cell's :class:`RunConfig` (value ranges), draws one round of each
    straggler model used at ``n = workers`` (e.g. ``persistent k`` > n, crash
    workers out of range) and loads each dataset once (missing data files).
    """
    from ..data import load_dataset

    cells = cfg.cells()
    for cell in cells:
        try:
            cfg.run_config(cell)
        except ValueError as exc:
            raise ValueError(f"cell {cell.cell_id}: {exc}") from None
    for name in sorted({c.straggler for c in cells}):
        try:
            cfg.delay_specs[name].build().sample(np.random.default_rng(0), 1, cfg.workers)
        except ValueError as exc:
            raise ValueError(f"[stragglers.{name}] at workers={cfg.workers}: {exc}") from None
    for dataset in sorted({c.dataset for c in cells}):
        load_dataset(dataset, np.random.default_rng(0), data_dir=cfg.data_dir, verify=cfg.verify)


def _invalid_pairs(cfg: ExperimentConfig) -> dict[tuple[str, int], str]:
    """(scheme, s) pairs the scheme cannot be built for at n = workers, with the reason."""
    from ..codes import make_scheme

    out = {}
    pairs = {(sch, s) for g in cfg.grids for sch in g.schemes for s in g.s}
    for sch, s in sorted(pairs):
        try:
            base = sch.partition("+")[0]
            make_scheme(base, cfg.workers, 0 if base == "dgd" else s, rng=np.random.default_rng(0))
        except ValueError as exc:
            out[sch, s] = str(exc)
    return out
