"""``gradcode reproduce pgc``: pipelined gradient coding (PGC) vs DGD, IS-SGD, GC.

Evidence for PGC (:mod:`gradcode.codes.pgc`): same optimum as DGD, GC's
tolerance, IS-SGD's compute cost.

Logistic regression (L2, strongly convex, so the optimum ``f*`` is unique and
suboptimality ``f(w_t) - f*`` is meaningful) on the breast-cancer data that
scikit-learn ships, ``n = 24`` workers and partitions, ``s in {1, 3}``,
random (shifted-exponential) and persistent stragglers (``s`` workers ``kappa``
times slower), iid and label-sorted partitions.  Every scheme sees the same
seeded straggler schedule; training runs on the in-process backend (real
gradients, virtual clock).

Learning rates are tuned per scheme and cell (a stale-gradient scheme takes
effectively larger steps than DGD at one fixed rate, so a single rate would
compare step sizes, not straggler tolerance): every candidate in ``lrs`` runs
on ``tune_seed`` (never the reported seed), each scheme keeps the one with the
smallest simulated time to ``f - f* <= target`` (ties: smaller final
suboptimality, then smaller lr), and the reported run uses it.  The choice is
the experiment grid's tuner (:func:`gradcode.grid.tuning.select`) with the
suboptimality as its metric and ``target`` as the absolute target.

Measurements per cell, on the reported seed:

* final suboptimality after the same number of rounds, relative to DGD's;
* simulated time and rounds to reach the suboptimality ``target``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import effective_stragglers, make_scheme
from ..grid.tuning import select
from ..report.plotting import plt, save, style
from ..report.tables import BASELINE, rounds_to_target, time_to_target, write_csv
from ..runtime import LocalCluster, LogisticOracle, LoopConfig, OptimizerConfig, Schedule, train
from ..stragglers import PersistentSlow, ShiftedExponential

SCHEMES = ("dgd", "is_sgd", "frc", "crc", "pgc", "pgc_reference", "pgc_memory", "is_latefold")


@dataclass(frozen=True)
class PGCStudyConfig:
    """``lrs``: candidate learning rates (``()``: every scheme uses ``lr``);
    ``tune_seed`` (default ``seed + 1000``): the seed the candidates run on."""

    n: int = 24
    stragglers: tuple[int, ...] = (1, 3)
    rounds: int = 400
    lr: float = 1.0
    lrs: tuple[float, ...] = (1.0, 2.0, 4.0)
    tune_seed: int | None = None
    lam: float = 1e-2
    kappa: float = 10.0
    seed: int = 0
    target: float = 1e-6
    schemes: tuple[str, ...] = SCHEMES

    def __post_init__(self) -> None:
        if self.tune_seed is not None and self.tune_seed == self.seed:
            raise ValueError(f"tune_seed must differ from the reported seed {self.seed}")
        if not all(x > 0 for x in self.lrs) or not self.lr > 0:
            raise ValueError("learning rates must be positive")

    @property
    def tuning_seed(self) -> int:
        return self.seed + 1000 if self.tune_seed is None else self.tune_seed


def breast_cancer_oracle(n: int, how: str, lam: float, rng: np.random.Generator) -> LogisticOracle:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    idx = np.argsort(y, kind="stable") if how == "label-sorted" else rng.permutation(len(y))
    oracle = LogisticOracle(X, y, np.array_split(idx, n), lam=lam)
    oracle.f_star = oracle.optimum()[1]  # solved once per oracle, reused by every run
    return oracle


def models(cfg: PGCStudyConfig, s: int) -> dict:
    base = ShiftedExponential(1.0, 1.0)
    return {"random": base, "persistent": PersistentSlow(base, k=s, kappa=cfg.kappa)}


def _train(cfg: PGCStudyConfig, name: str, s: int, oracle, model, seed: int, lr: float):
    """One run: (suboptimality, clock, staleness) per round (``oracle.f_star`` set by caller)."""
    f_star = oracle.f_star
    scheme = make_scheme(
        name, cfg.n, effective_stragglers(name, s), rng=np.random.default_rng(seed)
    )
    cluster = LocalCluster(scheme, oracle, Schedule(model, seed, cfg.rounds, cfg.n))
    loop = LoopConfig(rounds=cfg.rounds, optimizer=OptimizerConfig(lr=lr), eval_every=1)
    res = train(scheme, cluster, oracle, loop)
    sub = np.array([h["train_loss"] - f_star for h in res.history])
    clock = np.array([h["time"] for h in res.history])
    stale = np.array([h["staleness_mean"] for h in res.history])
    return sub, clock, stale


def _curve(sub: np.ndarray, clock: np.ndarray) -> dict:
    """One run's suboptimality per round as a curve of :mod:`gradcode.report.tables`."""
    return {"round": np.arange(1.0, len(sub) + 1), "time": clock, "suboptimality": sub}


def _to_target(sub: np.ndarray, clock: np.ndarray, target: float) -> tuple[float, float]:
    """(simulated time, rounds) of the first round with ``f - f* <= target`` (inf if never)."""
    curve = _curve(sub, clock)
    return (time_to_target(curve, "suboptimality", target),
            rounds_to_target(curve, "suboptimality", target))  # fmt: skip


def tune_lr(cfg: PGCStudyConfig, name: str, s: int, oracle, model) -> float:
    """The candidate with the smallest time to target on the tuning seed (the grid's
    tuner, :func:`gradcode.grid.tuning.select`: ties by final suboptimality, then lr)."""
    if not cfg.lrs:
        return cfg.lr
    candidates = []
    for lr in cfg.lrs:
        sub, clock, _ = _train(cfg, name, s, oracle, model, cfg.tuning_seed, lr)
        candidates.append({"scheme": name, "lr": lr, "momentum": 0.0, "curve": _curve(sub, clock)})
    rows = select(candidates, "suboptimality", 1.0, target=cfg.target)
    return next(r["lr"] for r in rows if r["chosen"])


def run(
    cfg: PGCStudyConfig, out_dir: Path, progress: Callable[[str], None] | None = None
) -> list[dict]:
    """Run the grid; write ``pgc_runs.csv``, ``pgc_curves.csv`` and figures; return summary rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for how, s in itertools.product(("iid", "label-sorted"), cfg.stragglers):
        oracle = breast_cancer_oracle(cfg.n, how, cfg.lam, np.random.default_rng(cfg.seed))
        tune_oracle = breast_cancer_oracle(
            cfg.n, how, cfg.lam, np.random.default_rng(cfg.tuning_seed)
        )
        for model_name, model in models(cfg, s).items():
            cell = []
            for name in cfg.schemes:
                if progress:
                    progress(f"{how} s={s} {model_name} {name}")
                lr = tune_lr(cfg, name, s, tune_oracle, model)
                sub, clock, stale = _train(cfg, name, s, oracle, model, cfg.seed, lr)
                cell.append((name, lr, sub, clock, stale))
                for t, (so, tm) in enumerate(zip(sub, clock, strict=True)):
                    curves.append(
                        dict(
                            partitions=how,
                            s=s,
                            stragglers=model_name,
                            scheme=name,
                            lr=lr,
                            round=t,
                            time=tm,
                            suboptimality=so,
                        )
                    )
            dgd_final = next(sub[-1] for nm, _, sub, _, _ in cell if nm == BASELINE)
            for name, lr, sub, clock, stale in cell:
                ttt, rtt = _to_target(sub, clock, cfg.target)
                rows.append(
                    dict(
                        partitions=how,
                        s=s,
                        stragglers=model_name,
                        scheme=name,
                        lr=lr,
                        tuned=bool(cfg.lrs),
                        final_suboptimality=float(sub[-1]),
                        ratio_to_dgd=float(max(sub[-1], 1e-16) / max(dgd_final, 1e-16)),
                        time_per_round=float(clock[-1] / len(clock)),
                        time_to_target=ttt,
                        rounds_to_target=rtt,
                        mean_staleness=float(stale.mean()),
                    )
                )
    write_csv(out_dir / "pgc_runs.csv", rows)
    write_csv(out_dir / "pgc_curves.csv", curves)
    plot_curves(curves, cfg, out_dir / "pgc_suboptimality.png")
    plot_time_to_target(rows, cfg, out_dir / "pgc_time_to_target.png")
    return rows


def _cells(cfg: PGCStudyConfig):
    return list(
        itertools.product(("iid", "label-sorted"), cfg.stragglers, ("random", "persistent"))
    )


def _lr_note(cfg: PGCStudyConfig) -> str:
    if not cfg.lrs:
        return f"lr {cfg.lr:g} for every scheme (not tuned)"
    return (
        f"lr tuned per scheme and cell from {list(cfg.lrs)} on seed {cfg.tuning_seed} "
        f"(reported seed {cfg.seed}; chosen values in pgc_runs.csv)"
    )


def plot_curves(curves: list[dict], cfg: PGCStudyConfig, path: Path) -> Path:
    cells = _cells(cfg)
    cols = 4
    nrows = (len(cells) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(16, 3.6 * nrows + 0.8), squeeze=False)
    handles = {}
    for ax, (how, s, model) in zip(axes.flat, cells, strict=False):
        for name in cfg.schemes:
            pts = [
                c
                for c in curves
                if (c["partitions"], c["s"], c["stragglers"], c["scheme"]) == (how, s, model, name)
            ]
            st = style(name)
            (handles[name],) = ax.semilogy(
                [c["round"] for c in pts],
                [max(c["suboptimality"], 1e-16) for c in pts],
                markevery=max(1, len(pts) // 8),
                markersize=4,
                **{"lw": 1.2, **st},
            )
        ax.set_title(f"{how}, s={s}, {model}", fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("f(w) - f*")
        ax.axhline(cfg.target, color="gray", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"logistic regression, n={cfg.n}, {cfg.rounds} rounds; {_lr_note(cfg)}; "
        f"dotted: target {cfg.target:g}",
        fontsize=10,
    )
    fig.legend(
        list(handles.values()),
        [style(n).get("label", n) for n in handles],
        loc="lower center",
        ncol=len(handles),
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return save(fig, path, tight=False)


def plot_time_to_target(rows: list[dict], cfg: PGCStudyConfig, path: Path) -> Path:
    cells = _cells(cfg)
    fig, axes = plt.subplots(2, 1, figsize=(14, 7.5), sharex=True)
    width = 0.8 / len(cfg.schemes)
    for ax, key, ylabel in (
        (axes[0], "time_to_target", "simulated time units to target"),
        (axes[1], "rounds_to_target", "rounds to target"),
    ):
        for j, name in enumerate(cfg.schemes):
            vals = []
            for how, s, model in cells:
                (r,) = [
                    x
                    for x in rows
                    if (x["partitions"], x["s"], x["stragglers"], x["scheme"])
                    == (how, s, model, name)
                ]
                vals.append(r[key] if np.isfinite(r[key]) else 0.0)
            st = style(name)
            ax.bar(
                np.arange(len(cells)) + j * width,
                vals,
                width,
                label=st.get("label", name),
                color=st.get("color"),
            )
        ax.set_ylabel(ylabel + " (0 = never)")
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    axes[1].set_xticklabels([f"{h}\ns={s}, {m}" for h, s, m in cells], fontsize=8)
    axes[0].set_title(f"time and rounds to f - f* <= {cfg.target:g}; {_lr_note(cfg)}", fontsize=10)
    axes[0].legend(fontsize=7, ncol=4)
    return save(fig, path)


__all__ = ["SCHEMES", "PGCStudyConfig", "plot_curves", "plot_time_to_target", "run", "tune_lr"]
