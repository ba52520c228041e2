"""How long a grid will take: trained vs re-timed runs, and hours from measured per-round costs.

:meth:`~gradcode.grid.schema.ExperimentConfig.size` counts runs; this module
estimates what they cost before any of them runs, so a study can be cut to its
budget first.  The harness trains one run per distinct weight trajectory and
re-times the rest (:mod:`gradcode.grid.reuse`), which it only knows after
replaying every cell; here the classes are *predicted* from the rule the
replays confirm for the schemes of this package:

* a **fresh exact** scheme (exact in the registry and without stale gradients:
  dgd, frc, crc, cyclic_mds, partial) applies the full minibatch gradient every
  round, under any straggler model and any ``s`` (no deadline): its trajectory is
  fixed by the task, partitioning, seed and optimizer settings alone;
* every other scheme (is_sgd, sgc, the stale ones) is assumed to have a
  trajectory of its own per (scheme, ``s``, straggler model) -- an upper bound
  (is_sgd, for one, often shares across straggler models).

Tuning runs use known candidates, so fresh exact schemes with the same
candidate share one run (a lower bound on sharing; the harness finds at least
this).  Reported cells use each scheme's *chosen* candidate, unknown before the
tuning: they are counted as if no two schemes chose alike (an upper bound).

Time (:func:`estimate`): every trained run costs ``rounds x seconds_per_round``
of its task (a trained run stops at its accuracy target: ``stop_fraction`` of
the round cap on average, 1 for the worst case; tuning runs are charged the full
cap, since most candidates never reach the target), every run is replayed once
without gradients (``replay_per_round``), every re-timed run costs
``retime_seconds``; the sum is divided by the grid's ``jobs``.  The costs are
measured, not assumed: ``bench/study_budget.py`` times tiny cells of each task.

Example: five exact codes and PGC, two straggler models, two seeds, s = 1:
the exact codes share one trajectory per seed, PGC has one per model and seed::

    >>> from gradcode.grid.parse import parse_experiment
    >>> cfg = parse_experiment({"workers": 6, "rounds": 10,
    ...     "stragglers": {"a": {"base": "shifted-exp"}, "b": {"base": "pareto:alpha=2"}},
    ...     "grid": {"schemes": ["dgd", "frc", "crc", "pgc"], "seeds": [0, 1],
    ...              "tasks": ["breast_cancer/logreg"], "s": [1], "partitionings": ["iid"]}})
    >>> b = count(cfg)
    >>> (b.cells, b.cells_trained, b.tuning_runs, b.tuning_trained)
    (16, 10, 0, 0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codes import REGISTRY
from ..runtime.stale import stale_schemes
from .schema import ExperimentConfig


def fresh_exact(scheme: str) -> bool:
    """Exact in the registry and not stale (``pgc+auto``-style names: never)."""
    info = REGISTRY.get(scheme)
    return info is not None and info.exact and scheme not in stale_schemes()


@dataclass(frozen=True)
class Budget:
    """Runs of a grid, trained and re-timed, and their rounds per task."""

    cells: int
    cells_trained: int
    tuning_runs: int
    tuning_trained: int
    #: task label -> (trained reported cells, trained tuning runs, round cap)
    per_task: dict = field(default_factory=dict)

    @property
    def retimed(self) -> int:
        return self.cells + self.tuning_runs - self.cells_trained - self.tuning_trained


def _trajectory(rc, scheme: str, straggler: str, tuning: bool) -> tuple:
    """The predicted class of a run (``scheme``: the cell's, e.g. ``pgc+auto``)."""
    base = (rc.dataset, rc.model, rc.partitioning, rc.seed, rc.optimizer, rc.lr, rc.momentum,
            rc.stale_correction, rc.batch_size, rc.rounds, rc.target_accuracy)  # fmt: skip
    if fresh_exact(scheme) and rc.deadline is None:
        if tuning:  # known candidates: one run for every exact scheme and s
            return ("tune", *base)
        return ("cell", *base, scheme, 0 if scheme == "dgd" else rc.stragglers)
    return ("tune" if tuning else "cell", *base, scheme, rc.stragglers, straggler)


def count(cfg: ExperimentConfig) -> Budget:
    """Predicted trained and re-timed runs of ``cfg`` (rules: module docstring)."""
    per: dict[str, list[int]] = {}
    seen: set = set()
    trained = [0, 0]  # reported cells, tuning runs
    runs = [(c, False) for c in cfg.tuning_cells()] + [(c, True) for c in cfg.cells()]
    for c, reported in runs:
        rc = cfg.run_config(c)
        cell = c if reported else c.cell
        key = _trajectory(rc, cell.scheme, cell.straggler, not reported)
        if key not in seen:
            seen.add(key)
            trained[0 if reported else 1] += 1
            per.setdefault(f"{rc.dataset}/{rc.model}", [0, 0, rc.rounds])[0 if reported else 1] += 1
    return Budget(len(cfg.cells()), trained[0], len(cfg.tuning_cells()), trained[1],
                  {k: tuple(v) for k, v in per.items()})  # fmt: skip


@dataclass(frozen=True)
class Costs:
    """Measured costs of one task: seconds per trained round (evaluations included),
    seconds per replayed round (no gradients) and per re-timed run."""

    seconds_per_round: float
    replay_per_round: float = 0.0
    retime_seconds: float = 0.05
    startup_seconds: float = 0.0  # per trained run: data loading, building the scheme


def estimate(cfg: ExperimentConfig, costs: dict[str, Costs], stop_fraction=None) -> dict:
    """Seconds of ``cfg`` on ``cfg.jobs`` processes: ``{"seconds", "hours", "budget", ...}``.

    ``costs``: task label (``"adult/mlp"``) -> :class:`Costs`; ``stop_fraction``:
    task label -> mean fraction of the round cap a trained reported run lasts
    (default 1: every run to its cap, the worst case)."""
    b = count(cfg)
    stop_fraction = stop_fraction or {}
    total = train = replay = 0.0
    for task, (cells, tuning, cap) in b.per_task.items():
        c = costs[task]
        frac = float(stop_fraction.get(task, 1.0))
        train += cells * (cap * frac * c.seconds_per_round + c.startup_seconds)
        train += tuning * (cap * c.seconds_per_round + c.startup_seconds)
    for tc_or_cell in [*cfg.tuning_cells(), *cfg.cells()]:
        rc = cfg.run_config(tc_or_cell)
        replay += rc.rounds * costs[f"{rc.dataset}/{rc.model}"].replay_per_round
    retime = sum(c.retime_seconds for c in costs.values()) / max(len(costs), 1) * b.retimed
    total = (train + replay + retime) / max(cfg.jobs, 1)
    return {"budget": b, "train_s": train, "replay_s": replay, "retime_s": retime,
            "seconds": total, "hours": total / 3600, "jobs": cfg.jobs}  # fmt: skip


__all__ = ["Budget", "Costs", "count", "estimate", "fresh_exact"]
