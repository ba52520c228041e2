"""Evidence for pipelined gradient coding (PGC): same optimum as DGD, GC's
tolerance, IS-SGD's compute cost.

Logistic regression (L2, strongly convex, so the optimum ``f*`` is unique and
suboptimality ``f(w_t) - f*`` is meaningful) on the breast-cancer data that
scikit-learn ships, ``n = 24`` workers and partitions, ``s in {1, 3}``,
random (shifted-exponential) and persistent stragglers (``s`` workers ``kappa``
times slower), iid and label-sorted partitions.  Every scheme sees the same
seeded straggler schedule; training runs on the in-process backend (real
gradients, virtual clock).

Two measurements per cell:

* final suboptimality after the same number of rounds, relative to DGD's;
* simulated time to reach a suboptimality target (``target_factor`` times
  DGD's final suboptimality), i.e. rounds x per-round time.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import make_scheme
from ..runtime import LocalCluster, LogisticOracle, LoopConfig, OptimizerConfig, Schedule, train
from ..stragglers import PersistentSlow, ShiftedExponential
from .plotting import plt, save, style

SCHEMES = ("dgd", "is_sgd", "frc", "crc", "pgc", "pgc_reference", "pgc_memory", "is_latefold")


@dataclass(frozen=True)
class PGCStudyConfig:
    n: int = 24
    stragglers: tuple[int, ...] = (1, 3)
    rounds: int = 400
    lr: float = 1.0
    lam: float = 1e-2
    kappa: float = 10.0
    seed: int = 0
    target_factor: float = 10.0
    schemes: tuple[str, ...] = SCHEMES


def breast_cancer_oracle(n: int, how: str, lam: float, rng: np.random.Generator) -> LogisticOracle:
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    idx = np.argsort(y, kind="stable") if how == "label-sorted" else rng.permutation(len(y))
    return LogisticOracle(X, y, np.array_split(idx, n), lam=lam)


def models(cfg: PGCStudyConfig, s: int) -> dict:
    base = ShiftedExponential(1.0, 1.0)
    return {"random": base, "persistent": PersistentSlow(base, k=s, kappa=cfg.kappa)}


def run(
    cfg: PGCStudyConfig, out_dir: Path, progress: Callable[[str], None] | None = None
) -> list[dict]:
    """Run the grid; write ``pgc_runs.csv``, ``pgc_curves.csv`` and figures; return summary rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, curves = [], []
    for how, s in itertools.product(("iid", "label-sorted"), cfg.stragglers):
        oracle = breast_cancer_oracle(cfg.n, how, cfg.lam, np.random.default_rng(cfg.seed))
        _, f_star = oracle.optimum()
        for model_name, model in models(cfg, s).items():
            cell = []
            for name in cfg.schemes:
                if progress:
                    progress(f"{how} s={s} {model_name} {name}")
                scheme = make_scheme(
                    name, cfg.n, 0 if name == "dgd" else s, rng=np.random.default_rng(cfg.seed)
                )
                cluster = LocalCluster(scheme, oracle, Schedule(model, cfg.seed, cfg.rounds, cfg.n))
                loop = LoopConfig(
                    rounds=cfg.rounds, optimizer=OptimizerConfig(lr=cfg.lr), eval_every=1
                )
                res = train(scheme, cluster, oracle, loop)
                sub = np.array([h["train_loss"] - f_star for h in res.history])
                clock = np.array([h["time"] for h in res.history])
                stale = np.array([h["staleness_mean"] for h in res.history])
                cell.append((name, sub, clock, stale))
                for h, so in zip(res.history, sub, strict=True):
                    curves.append(
                        dict(
                            partitions=how,
                            s=s,
                            stragglers=model_name,
                            scheme=name,
                            round=h["round"],
                            time=h["time"],
                            suboptimality=so,
                        )
                    )
            dgd_final = next(sub[-1] for nm, sub, _, _ in cell if nm == "dgd")
            target = cfg.target_factor * dgd_final
            for name, sub, clock, stale in cell:
                hit = np.flatnonzero(sub <= target)
                rows.append(
                    dict(
                        partitions=how,
                        s=s,
                        stragglers=model_name,
                        scheme=name,
                        final_suboptimality=float(sub[-1]),
                        ratio_to_dgd=float(sub[-1] / dgd_final),
                        time_per_round=float(clock[-1] / len(clock)),
                        time_to_target=float(clock[hit[0]]) if hit.size else float("inf"),
                        mean_staleness=float(stale.mean()),
                    )
                )
    _write_csv(out_dir / "pgc_runs.csv", rows)
    _write_csv(out_dir / "pgc_curves.csv", curves)
    plot_curves(curves, cfg, out_dir / "pgc_suboptimality.png")
    plot_time_to_target(rows, cfg, out_dir / "pgc_time_to_target.png")
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _cells(cfg: PGCStudyConfig):
    return list(
        itertools.product(("iid", "label-sorted"), cfg.stragglers, ("random", "persistent"))
    )


def plot_curves(curves: list[dict], cfg: PGCStudyConfig, path: Path) -> Path:
    cells = _cells(cfg)
    cols = 4
    fig, axes = plt.subplots(
        (len(cells) + cols - 1) // cols,
        cols,
        figsize=(16, 3.6 * ((len(cells) + cols - 1) // cols)),
        squeeze=False,
    )
    for ax, (how, s, model) in zip(axes.flat, cells, strict=False):
        for name in cfg.schemes:
            pts = [
                c
                for c in curves
                if (c["partitions"], c["s"], c["stragglers"], c["scheme"]) == (how, s, model, name)
            ]
            ax.semilogy(
                [c["round"] for c in pts],
                [max(c["suboptimality"], 1e-16) for c in pts],
                **{k: v for k, v in style(name).items() if k != "marker"},
                lw=1.2,
            )
        ax.set_title(f"{how}, s={s}, {model}", fontsize=10)
        ax.set_xlabel("round")
        ax.set_ylabel("f(w) - f*")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    return save(fig, path)


def plot_time_to_target(rows: list[dict], cfg: PGCStudyConfig, path: Path) -> Path:
    cells = _cells(cfg)
    fig, ax = plt.subplots(figsize=(14, 4))
    width = 0.8 / len(cfg.schemes)
    for j, name in enumerate(cfg.schemes):
        vals = []
        for how, s, model in cells:
            (r,) = [
                x
                for x in rows
                if (x["partitions"], x["s"], x["stragglers"], x["scheme"]) == (how, s, model, name)
            ]
            vals.append(r["time_to_target"] if np.isfinite(r["time_to_target"]) else 0.0)
        st = style(name)
        ax.bar(
            np.arange(len(cells)) + j * width,
            vals,
            width,
            label=st.get("label", name),
            color=st.get("color"),
        )
    ax.set_xticks(np.arange(len(cells)) + 0.4 - width / 2)
    ax.set_xticklabels([f"{h}\ns={s}, {m}" for h, s, m in cells], fontsize=8)
    ax.set_ylabel("simulated time to target (0 = never)")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3, axis="y")
    return save(fig, path)
