"""``gradcode reproduce tandon2017``: average time per iteration vs s (Tandon et al., ICML 2017).

Tandon, Lei, Dimakis, Karampatziakis, "Gradient Coding: Avoiding Stragglers
in Distributed Learning", ICML 2017, compare naive synchronous GD, ignoring
the s slowest workers, and their FRC and CRC codes by the average time of one
iteration as the number of tolerated stragglers s grows.

Here every point is a simulation of ``rounds`` rounds with the virtual-clock
simulator, all schemes seeing the same random draws:

* ``shifted-exp``: ``time = load * (a + Exp(mu))`` -- the model named in the
  paper's line of work, where the straggling tail grows with the load;
* ``pause``: ``time = load * base + Bernoulli(p) * Exp(mean=pause)`` -- a
  straggler pause that does not grow with the load, closer to the artificial
  delays of the paper's EC2 experiments.

naive and ignore-s process one partition per worker; FRC and CRC process
``s + 1``.  FRC points exist only where ``(s + 1) | n``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codes import effective_stragglers, make_code
from ..report.plotting import plt, save, style
from ..report.tables import write_csv
from ..sim import simulate_model
from ..stragglers import AdditivePause, DelayModel, ShiftedExponential

SCHEMES = ("dgd", "is_sgd", "frc", "crc")


@dataclass(frozen=True)
class Tandon2017Config:
    ns: tuple[int, ...] = (10, 20, 30)
    rounds: int = 2000
    seed: int = 0
    a: float = 1.0
    mu: float = 1.0
    pause_base: float = 1.0
    pause_mean: float = 10.0
    pause_prob: float = 0.1


def models(cfg: Tandon2017Config) -> dict[str, DelayModel]:
    return {
        "shifted-exp": ShiftedExponential(cfg.a, cfg.mu),
        "pause": AdditivePause(cfg.pause_base, cfg.pause_mean, cfg.pause_prob),
    }


def run(cfg: Tandon2017Config, out_dir: Path) -> list[dict]:
    """Simulate the grid, write ``tandon2017.csv`` and ``tandon2017.png``; return the rows."""
    rows = []
    for model_name, model in models(cfg).items():
        for n in cfg.ns:
            for s in range(0, n // 2 + 1):
                for name in SCHEMES:
                    if (name == "dgd" and s) or (name == "frc" and n % (s + 1)):
                        continue
                    code = make_code(
                        name, n, effective_stragglers(name, s), rng=np.random.default_rng(cfg.seed)
                    )
                    res = simulate_model(code, model, np.random.default_rng(cfg.seed), cfg.rounds)
                    summ = res.summary()
                    rows.append(
                        dict(
                            model=model_name,
                            n=n,
                            s=s,
                            scheme=name,
                            load=code.load,
                            mean_time=summ["mean_time"],
                            p99_time=summ["p99_time"],
                            exact_fraction=summ["exact_fraction"],
                        )
                    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(out_dir / "tandon2017.csv", rows)
    plot(rows, cfg, out_dir / "tandon2017.png")
    return rows


def plot(rows: list[dict], cfg: Tandon2017Config, path: Path) -> Path:
    model_names = list(models(cfg))
    fig, axes = plt.subplots(
        len(model_names),
        len(cfg.ns),
        figsize=(4.2 * len(cfg.ns), 3.4 * len(model_names)),
        squeeze=False,
    )
    for r, model_name in enumerate(model_names):
        for c, n in enumerate(cfg.ns):
            ax = axes[r][c]
            dgd = [
                x["mean_time"]
                for x in rows
                if x["model"] == model_name and x["n"] == n and x["scheme"] == "dgd"
            ]
            for name in SCHEMES:
                pts = [
                    (x["s"], x["mean_time"])
                    for x in rows
                    if x["model"] == model_name and x["n"] == n and x["scheme"] == name
                ]
                if name == "dgd":
                    ax.axhline(dgd[0], **{k: v for k, v in style(name).items() if k != "marker"})
                    continue
                s_vals, t_vals = zip(*pts, strict=True)
                ax.plot(s_vals, t_vals, **style(name), markersize=4)
            ax.set_title(f"{model_name}, n = {n}")
            ax.set_xlabel("stragglers tolerated s")
            ax.set_ylabel("mean time per iteration")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    return save(fig, path)


__all__ = ["SCHEMES", "Tandon2017Config", "models", "plot", "run"]
