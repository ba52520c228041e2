"""Reading an experiment TOML file into an :class:`~gradcode.grid.schema.ExperimentConfig`.

The schema is in :mod:`gradcode.grid.schema`.  Parsing checks the file's shape
(known keys and tables, types); the values are checked when the configuration
is built (:mod:`gradcode.grid.checks`).  Every mistake is one :class:`ValueError`.
"""

from __future__ import annotations

from pathlib import Path

from ..runtime.config import DelaySpec
from ..runtime.stale import parse as parse_stale_correction
from .checks import INT_TASK_KEYS
from .schema import (
    DELAY_KEYS,
    GRID_KEYS,
    REPORT_KEYS,
    SHARED_KEYS,
    TABLES,
    TASK_KEYS,
    TUNE_KEYS,
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
            k: _typed(t[k], int if k in INT_TASK_KEYS else float, f"task {k}")
            for k in TASK_KEYS[2:]
            if k in t
        }
        return TaskSpec(str(t["dataset"]), str(t["model"]), **typed)
    raise ValueError(f"{where}: task must be 'dataset/model' or a table, got {t!r}")


__all__ = ["load_experiment", "parse_experiment"]
