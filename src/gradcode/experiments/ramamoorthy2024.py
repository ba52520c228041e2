"""Reproduction: partial-straggler gradient coding (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

A reconstruction (see :mod:`gradcode.codes.partial`): the paper's figures are
re-derived from its stated setting, not copied.  Default grid: ``m = N = 20``
workers and chunks, ``delta = 4, 5``, ``l = 1 .. delta - 1``, i.i.d.
shifted-exponential chunk compute times ``1 + Exp(1)``, and in each trial
``f`` failed workers with ``f`` uniform on ``0 .. round(0.1 m)`` (0-10 %).
Assignments are ``adjacency + I`` of a ``(delta - 1)``-regular graph, with
the matching-based optimal order unless stated otherwise.

Panels (each a PNG and a CSV in ``out_dir``):

(a) ``a_mse_vs_deadline``: mean normalised MSE of the least-squares estimate
    vs deadline ``T`` for each ``l``, proposed vs original protocol.
(b) ``b_completion_vs_l``: mean exact completion time vs ``l`` (with standard
    errors) for two graphs (a circulant graph and a random regular graph),
    proposed vs original; means over trials where both finish.
(c) ``c_ordering``: optimal vs random order, for ``Qmax_l`` and for the mean
    exact completion time of the proposed protocol.
(d) ``d_vandermonde``: relative error of polynomial interpolation (solving a
    real Vandermonde system) of degree 20, 25, 30 when the evaluations keep
    only ``k`` significant decimal digits, median of 100 trials per point;
    the instability that motivates inverting only small ``l x l`` systems.

Statistics of failures that make completion impossible (too many holders of
a chunk lost) are reported as ``finite`` fractions in the CSVs.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from ..codes.ordering import (
    ChunkAssignment,
    circulant_adjacency,
    graph_assignment,
    optimal_order,
    qmax,
    random_order,
)
from ..codes.partial import (
    completion_time_original,
    completion_time_partial,
    nmse_original,
    nmse_partial,
)

M = 20
DELTAS = (4, 5)
MAX_FAIL = 0.1


def chunk_times(
    trials: int, m: int, load: int, rng: np.random.Generator, max_fail: float = MAX_FAIL
) -> np.ndarray:
    """``(trials, m, load)`` shifted-exponential chunk times; failed workers get ``inf``."""
    times = 1.0 + rng.exponential(1.0, size=(trials, m, load))
    fails = rng.integers(0, int(round(max_fail * m)) + 1, size=trials)
    for t in np.flatnonzero(fails):  # loop over trials only to place failures
        times[t, rng.choice(m, fails[t], replace=False)] = np.inf
    return times


def graphs(delta: int, rng: np.random.Generator) -> dict[str, ChunkAssignment]:
    """Two ``(delta - 1)``-regular graphs on ``M`` vertices: circulant and random."""
    import networkx as nx  # only the experiments need networkx

    offsets = {4: (1, M // 2), 5: (1, 2)}.get(delta)
    if offsets is None:
        raise ValueError(f"no circulant graph configured for delta={delta}")
    seed = int(rng.integers(2**31))
    rand = nx.to_numpy_array(nx.random_regular_graph(delta - 1, M, seed=seed), dtype=np.int64)
    return {
        "circulant": optimal_order(graph_assignment(circulant_adjacency(M, offsets)).A),
        "random_regular": optimal_order(graph_assignment(rand).A),
    }


def _write(path: pathlib.Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else 0.0


def panel_a(out_dir, trials, rng, plt) -> dict:
    a = graphs(4, rng)["circulant"]
    times = chunk_times(trials, M, 4, rng)
    T = np.linspace(0, 14, 57)
    rows, fig, ax = [], *plt.subplots(figsize=(6, 4))
    for l in range(1, 4):
        mp = nmse_partial(a, l, times, T).mean(axis=0)
        mo = nmse_original(a, l, times, T).mean(axis=0)
        rows += [[l, t, p, o] for t, p, o in zip(T, mp, mo, strict=True)]
        (line,) = ax.plot(T, mp, label=f"proposed, l={l}")
        ax.plot(T, mo, "--", color=line.get_color(), label=f"original, l={l}")
    ax.set(xlabel="deadline T", ylabel="normalised MSE", title="(a) m=N=20, δ=4")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "a_mse_vs_deadline.png", dpi=120)
    _write(out_dir / "a_mse_vs_deadline.csv", ["l", "T", "nmse_proposed", "nmse_original"], rows)
    return {}


def panel_b(out_dir, trials, rng, plt) -> dict:
    rows, ratios = [], {}
    fig, axes = plt.subplots(1, len(DELTAS), figsize=(10, 4))
    for ax, delta in zip(axes, DELTAS, strict=True):
        for name, a in graphs(delta, rng).items():
            times = chunk_times(trials, M, delta, rng)
            stats = []
            for l in range(1, delta):
                tp = completion_time_partial(a, l, times)
                to = completion_time_original(a, l, times)
                both = np.isfinite(tp) & np.isfinite(to)
                (mp, sp), (mo, so) = _mean_se(tp[both]), _mean_se(to[both])
                ratio = float(np.mean(tp[both] / to[both])) if both.any() else float("nan")
                ratios[f"delta={delta},{name},l={l}"] = ratio
                fin_p, fin_o = np.isfinite(tp).mean(), np.isfinite(to).mean()
                rows.append([delta, name, l, mp, sp, mo, so, ratio, fin_p, fin_o])
                stats.append((l, mp, sp, mo, so))
            ls, mp, sp, mo, so = map(np.array, zip(*stats, strict=True))
            ax.errorbar(ls, mp, sp, marker="o", capsize=3, label=f"proposed, {name}")
            ax.errorbar(ls, mo, so, marker="s", ls="--", capsize=3, label=f"original, {name}")
        ax.set(xlabel="l", ylabel="exact completion time", title=f"(b) m=N=20, δ={delta}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "b_completion_vs_l.png", dpi=120)
    header = ["delta", "graph", "l", "proposed_mean", "proposed_se", "original_mean"]
    header += ["original_se", "mean_ratio", "finite_proposed", "finite_original"]
    _write(out_dir / "b_completion_vs_l.csv", header, rows)
    return {"completion_ratio_proposed_over_original": ratios}


def panel_c(out_dir, trials, rng, plt, n_random: int = 20) -> dict:
    rows, out = [], {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for delta in DELTAS:
        opt = graphs(delta, rng)["circulant"]
        rands = [random_order(opt.A, rng) for _ in range(n_random)]
        times = chunk_times(trials, M, delta, rng)
        per = max(1, trials // n_random)
        q_o, q_r, t_o, t_r = [], [], [], []
        for l in range(1, delta):
            q_o.append(qmax(opt, l))
            q_r.append(float(np.mean([qmax(r, l) for r in rands])))
            tp = completion_time_partial(opt, l, times)
            tr = np.concatenate(
                [
                    completion_time_partial(r, l, times[k * per : (k + 1) * per])
                    for k, r in enumerate(rands)
                ]
            )
            t_o.append(_mean_se(tp)[0])
            t_r.append(_mean_se(tr)[0])
            rows.append([delta, l, q_o[-1], q_r[-1], t_o[-1], t_r[-1]])
        out[f"delta={delta}"] = {"qmax_optimal_l1": q_o[0], "qmax_random_mean_l1": q_r[0]}
        ls = np.arange(1, delta)
        axes[0].plot(ls, q_o, "o-", label=f"optimal, δ={delta}")
        axes[0].plot(ls, q_r, "s--", label=f"random, δ={delta}")
        axes[1].plot(ls, t_o, "o-", label=f"optimal, δ={delta}")
        axes[1].plot(ls, t_r, "s--", label=f"random, δ={delta}")
    axes[0].set(xlabel="l", ylabel="Qmax_l", title="(c) worst-case work to decode")
    axes[1].set(xlabel="l", ylabel="mean exact completion time", title="(c) completion time")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "c_ordering.png", dpi=120)
    header = ["delta", "l", "qmax_optimal", "qmax_random_mean", "time_optimal", "time_random"]
    _write(out_dir / "c_ordering.csv", header, rows)
    return {"ordering": out}


def round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    """Keep ``digits`` significant decimal digits of every entry."""
    x = np.asarray(x, dtype=np.float64)
    mag = np.floor(np.log10(np.where(x == 0, 1.0, np.abs(x))))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(x * scale) / scale


def interpolation_error(degree: int, digits: int, trials: int, rng: np.random.Generator) -> float:
    """Median relative coefficient error of real Vandermonde interpolation (Chebyshev nodes)."""
    n = degree + 1
    x = np.cos((2 * np.arange(n) + 1) * np.pi / (2 * n))
    V = np.vander(x, increasing=True)
    coef = rng.standard_normal((n, trials))
    est = np.linalg.solve(V, round_sig(V @ coef, digits))
    return float(np.median(np.linalg.norm(est - coef, axis=0) / np.linalg.norm(coef, axis=0)))


def panel_d(out_dir, rng, plt, trials: int = 100) -> dict:
    rows, fig, ax = [], *plt.subplots(figsize=(6, 4))
    digits = np.arange(4, 17)
    for degree in (20, 25, 30):
        err = [interpolation_error(degree, int(k), trials, rng) for k in digits]
        rows += [[degree, int(k), e] for k, e in zip(digits, err, strict=True)]
        ax.semilogy(digits, err, "o-", label=f"degree {degree}")
    ax.set(xlabel="decimal digits kept", ylabel="median relative error")
    ax.set_title("(d) Vandermonde interpolation, Chebyshev nodes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "d_vandermonde.png", dpi=120)
    _write(out_dir / "d_vandermonde.csv", ["degree", "digits", "median_rel_error"], rows)
    return {"vandermonde_error_16_digits": {str(r[0]): r[2] for r in rows if r[1] == 16}}


def run(out_dir: pathlib.Path, trials: int, rng: np.random.Generator) -> dict:
    """Write panels (a)-(d) as PNG + CSV into ``out_dir``; return headline numbers."""
    if not isinstance(trials, (int, np.integer)) or trials < 2:
        raise ValueError(f"trials must be an integer >= 2, got {trials!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"trials": int(trials)}
    try:
        for panel in (panel_a, panel_b, panel_c):
            summary.update(panel(out_dir, trials, rng, plt))
        summary.update(panel_d(out_dir, rng, plt))
    finally:
        plt.close("all")
    summary["files"] = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".png", ".csv"))
    return summary
