"""Checks of an experiment grid: values and names up front, every cell before it runs.

Every mistake raises one :class:`ValueError` naming it, before anything runs or
is written.  :class:`~gradcode.grid.schema.ExperimentConfig` calls
:func:`validate_experiment` and :func:`validate_tune` when it is built (so a
grid built in Python is checked like one read from TOML); the harness calls
:func:`check_cells` before the first run; :func:`invalid_pairs` names the
(scheme, ``s``) pairs a scheme cannot be built for (skipped with a note).
The functions take the configuration by duck type: this module sits below
:mod:`gradcode.grid.schema`, which imports it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..codes import REGISTRY, effective_stragglers, make_scheme
from ..datasets import PARTITIONINGS, available_datasets, load_dataset
from ..models import available_models
from ..runtime.config import MAX_SCHEDULE, MAX_WORKERS, OPTIMIZERS
from ..runtime.stale import check as check_stale_correction

#: Task-table keys whose values are integers (the others are floats).
INT_TASK_KEYS = ("batch_size", "rounds", "eval_every")


def validate_experiment(cfg) -> None:
    """Check an :class:`~gradcode.grid.schema.ExperimentConfig`'s values and names."""
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
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {cfg.optimizer!r}")
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
            if t.momentum is not None and not 0 <= t.momentum < 1:
                raise ValueError(f"task {t.label}: momentum must be in [0, 1), got {t.momentum}")
            for key in INT_TASK_KEYS:
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


def validate_tune(cfg) -> None:
    """Check the ``[tune]`` table against the grid (its seed is never a reported one)."""
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


def check_cells(cfg) -> None:
    """Validate every cell before any runs (one ``ValueError`` naming the first bad one).

    Builds each cell's :class:`RunConfig` (value ranges), draws one round of each
    straggler model used at ``n = workers`` (e.g. ``persistent k`` > n, crash
    workers out of range) and loads each dataset once (missing data files).
    """
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


def invalid_pairs(cfg) -> dict[tuple[str, int], str]:
    """(scheme, s) pairs the scheme cannot be built for at n = workers, with the reason."""
    out = {}
    pairs = {(sch, s) for g in cfg.grids for sch in g.schemes for s in g.s}
    for sch, s in sorted(pairs):
        try:
            base = sch.partition("+")[0]
            make_scheme(
                base, cfg.workers, effective_stragglers(base, s), rng=np.random.default_rng(0)
            )
        except ValueError as exc:
            out[sch, s] = str(exc)
    return out


__all__ = ["check_cells", "invalid_pairs", "validate_experiment", "validate_tune"]
