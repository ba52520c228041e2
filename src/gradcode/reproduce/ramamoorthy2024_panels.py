"""The panels (a)-(e) of the partial-straggler reproduction (see
:mod:`gradcode.reproduce.ramamoorthy2024`): one figure and one CSV each.

Means with sample standard deviations over trials (:func:`gradcode.report.tables.mean_std`:
``nan`` where a point has a single finite trial).
"""

from __future__ import annotations

import numpy as np

from ..codes.ordering import qmax, random_order
from ..codes.partial import completion_time_partial, nmse_partial
from ..codes.partial_original import FixedCode
from ..report.tables import mean_std, write_csv
from . import partial_protocols as pp
from .ramamoorthy2024_setting import Config, deadlines, draw, graphs, interpolation_error

HEADLINE_T = (6.0, 8.0, 10.0)


def _protocols(cfg: Config) -> tuple[str, ...]:
    """The reference transport differs from streaming only when sending costs time."""
    return ("stream", "original") if cfg.comm.free else ("stream", "reference", "original")


def _band(ax, T, x, label, **kw):
    mean, std = x.mean(axis=0), x.std(axis=0, ddof=1)
    (line,) = ax.plot(T, mean, label=label, **kw)
    ax.fill_between(T, np.maximum(mean - std, 0), mean + std, color=line.get_color(), alpha=0.08)
    return line


def panel_a(out_dir, cfg: Config, rng, plt) -> dict:
    delta = cfg.deltas[0]
    a = graphs(delta, rng, cfg.m, cfg.N)["circulant"]
    d = draw(cfg, a, delta, rng)
    T = deadlines(delta)
    rows, head = [], {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for l in cfg.levels(delta):
        code = FixedCode.default(a, l, np.random.default_rng(l))
        color = None
        for proto in _protocols(cfg):
            x = pp.nmse(proto, a, l, d.times, cfg.comm, T, code=code)
            ls = {"stream": "-", "reference": ":", "original": "--"}[proto]
            name = {"original": f"original ({code.name} code)"}.get(proto, f"proposed {proto}")
            line = _band(ax, T, x, f"{name}, l={l}", ls=ls, color=color)
            color = line.get_color()
            rows += [[l, proto, t, *mean_std(x[:, k])] for k, t in enumerate(T)]
            if l == 1:
                head[proto] = [float(x[:, np.argmin(abs(T - t))].mean()) for t in HEADLINE_T]
    x = pp.nmse("tandon_partial", a, 1, d.times, cfg.comm, T, tandon=d.tandon,
                piece_times=d.piece_times)  # fmt: skip
    _band(ax, T, x, f"Tandon partial (s={delta - 1}, p={d.tandon.p})", ls="-.", color="k")
    rows += [[1, "tandon_partial", t, *mean_std(x[:, k])] for k, t in enumerate(T)]
    head["tandon_partial"] = [float(x[:, np.argmin(abs(T - t))].mean()) for t in HEADLINE_T]
    ax.set(xlabel="deadline T", ylabel="normalised MSE (mean, band = ±1 std)")
    ax.set_title(f"(a) m={cfg.m}, N={cfg.N}, δ={delta}, {cfg.chunk_model} chunk times")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "a_mse_vs_deadline.png", dpi=120)
    _write_rows(
        out_dir / "a_mse_vs_deadline.csv", ["l", "protocol", "T", "nmse_mean", "nmse_std"], rows
    )
    return {"nmse_at_T_6_8_10_l1": head}


def panel_b(out_dir, cfg: Config, rng, plt) -> dict:
    rows, traffic_rows, ratios, speedups = [], [], {}, {}
    fig, axes = plt.subplots(
        1, len(cfg.deltas), figsize=(5.5 * len(cfg.deltas), 4.5), squeeze=False
    )
    for ax, delta in zip(axes[0], cfg.deltas, strict=True):
        for name, a in graphs(delta, rng, cfg.m, cfg.N).items():
            d = draw(cfg, a, delta, rng)
            stats = {p: [] for p in _protocols(cfg)}
            for l in cfg.levels(delta):
                t = {p: pp.completion(p, a, l, d.times, cfg.comm) for p in stats}
                both = np.isfinite(t["stream"]) & np.isfinite(t["original"])
                key = f"delta={delta},{name},l={l}"
                tp, to = t["stream"][both], t["original"][both]
                ratios[key] = float(np.mean(tp / to)) if both.any() else float("nan")
                speedups[key] = float(to.mean() / tp.mean()) if both.any() else float("nan")
                if "reference" in t:  # V1 pays a feedback round: its own speedup
                    tr_ = t["reference"][both]
                    speedups[key + ",reference"] = float(to.mean() / tr_.mean())
                for p, x in t.items():
                    m, s = mean_std(x[both])
                    stats[p].append((l, m, s))
                    rows.append([delta, name, l, p, m, s, float(np.isfinite(x).mean())])
                    if name == "circulant":
                        tr = pp.traffic(p, a, l, d.times, x)
                        traffic_rows.append([delta, l, p, pp.TRANSPORT[p], *tr.values()])
            for p, st in stats.items():
                ls_, m_, s_ = map(np.array, zip(*st, strict=True))
                mk = {"stream": "o-", "reference": "^:", "original": "s--"}[p]
                ax.errorbar(ls_, m_, s_, fmt=mk, capsize=3, label=f"{p}, {name}")
            tt = pp.completion("tandon_partial", a, 1, d.times, cfg.comm, tandon=d.tandon,
                               piece_times=d.piece_times)  # fmt: skip
            m, s = mean_std(tt)
            fin = float(np.isfinite(tt).mean())
            rows.append([delta, name, 1, "tandon_partial", m, s, fin])
            ax.errorbar([0.9], [m], [s], fmt="kx", capsize=3,
                        label=f"Tandon partial, {name} (finishes {fin:.0%})")  # fmt: skip
            if name == "circulant":
                tr = pp.traffic("tandon_partial", a, 1, d.times, tt, tandon=d.tandon,
                                piece_times=d.piece_times)  # fmt: skip
                traffic_rows.append([delta, 1, "tandon_partial", pp.TRANSPORT["tandon_partial"],
                                     *tr.values()])  # fmt: skip
                speedups[f"delta={delta},{name},tandon_finite"] = fin
        ax.set(xlabel="l", ylabel="exact completion time (mean ± std)")
        ax.set_xticks(list(cfg.levels(delta)))
        ax.set_title(f"(b) m={cfg.m}, N={cfg.N}, δ={delta} (x: Tandon partial, s=δ-1)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "b_completion_vs_l.png", dpi=120)
    header = ["delta", "graph", "l", "protocol", "mean", "std", "finite_fraction"]
    _write_rows(out_dir / "b_completion_vs_l.csv", header, rows)
    header = ["delta", "l", "protocol", "transport", "uplink_messages", "uplink_volume_d"]
    _write_rows(out_dir / "traffic.csv", header + ["extra_rounds"], traffic_rows)
    return {"completion_ratio_proposed_over_original": ratios, "speedup": speedups}


def _random_batches(opt, times, cfg, rng):
    rands = [random_order(opt.A, rng) for _ in range(cfg.n_random)]
    per = max(1, len(times) // cfg.n_random)
    return rands, [(r, times[k * per : (k + 1) * per]) for k, r in enumerate(rands)]


def panel_c(out_dir, cfg: Config, rng, plt) -> dict:
    rows, out = [], {}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for delta in cfg.deltas:
        opt = graphs(delta, rng, cfg.m, cfg.N)["circulant"]
        times = draw(cfg, opt, delta, rng).times
        rands, batches = _random_batches(opt, times, cfg, rng)
        q_o, q_r, t_o, t_r = [], [], [], []
        for l in cfg.levels(delta):
            q_o.append(qmax(opt, l))
            q_r.append(mean_std([qmax(r, l) for r in rands]))
            t_o.append(mean_std(completion_time_partial(opt, l, times)))
            t_r.append(
                mean_std(np.concatenate([completion_time_partial(r, l, x) for r, x in batches]))
            )
            rows.append([delta, l, q_o[-1], *q_r[-1], *t_o[-1], *t_r[-1]])
        out[f"delta={delta}"] = {"qmax_optimal_l1": q_o[0], "qmax_random_mean_l1": q_r[0][0]}
        ls = np.array(cfg.levels(delta))
        axes[0].plot(ls, q_o, "o-", label=f"optimal, δ={delta}")
        axes[0].errorbar(
            ls, *zip(*q_r, strict=True), fmt="s--", capsize=3, label=f"random, δ={delta}"
        )
        axes[1].errorbar(
            ls, *zip(*t_o, strict=True), fmt="o-", capsize=3, label=f"optimal, δ={delta}"
        )
        axes[1].errorbar(
            ls, *zip(*t_r, strict=True), fmt="s--", capsize=3, label=f"random, δ={delta}"
        )
    axes[0].set(xlabel="l", ylabel="Qmax_l (random: mean ± std)", title="(c) worst-case work")
    axes[1].set(xlabel="l", ylabel="exact completion time (mean ± std)", title="(c) completion")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "c_ordering.png", dpi=120)
    header = ["delta", "l", "qmax_optimal", "qmax_random_mean", "qmax_random_std"]
    header += ["time_optimal_mean", "time_optimal_std", "time_random_mean", "time_random_std"]
    _write_rows(out_dir / "c_ordering.csv", header, rows)
    return {"ordering": out}


def panel_e(out_dir, cfg: Config, rng, plt) -> dict:
    """NMSE vs deadline for the optimal and random chunk orders, on two graphs."""
    delta = cfg.deltas[0]
    T = deadlines(delta)
    rows, out = [], {}
    gs = graphs(delta, rng, cfg.m, cfg.N)
    fig, axes = plt.subplots(1, len(gs), figsize=(11, 4))
    for ax, (name, opt) in zip(axes, gs.items(), strict=True):
        times = draw(cfg, opt, delta, rng).times
        _, batches = _random_batches(opt, times, cfg, rng)
        for l in cfg.levels(delta)[:2]:
            xo = nmse_partial(opt, l, times, T)
            xr = np.concatenate([nmse_partial(r, l, x, T) for r, x in batches])
            line = _band(ax, T, xo, f"optimal order, l={l}")
            _band(ax, T, xr, f"random order, l={l}", ls="--", color=line.get_color())
            for k, t in enumerate(T):
                rows.append([name, l, t, *mean_std(xo[:, k]), *mean_std(xr[:, k])])
            k8 = int(np.argmin(abs(T - 2 * delta)))
            out[f"{name},l={l},T={T[k8]:g}"] = {
                "optimal": float(xo[:, k8].mean()),
                "random": float(xr[:, k8].mean()),
            }
        ax.set(xlabel="deadline T", ylabel="normalised MSE (mean, band = ±1 std)")
        ax.set_title(f"(e) {name} graph, δ={delta}, proposed protocol")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "e_mse_ordering.png", dpi=120)
    header = ["graph", "l", "T", "optimal_mean", "optimal_std", "random_mean", "random_std"]
    _write_rows(out_dir / "e_mse_ordering.csv", header, rows)
    return {"mse_ordering": out}


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
    _write_rows(out_dir / "d_vandermonde.csv", ["degree", "digits", "median_rel_error"], rows)
    return {"vandermonde_error_16_digits": {str(r[0]): r[2] for r in rows if r[1] == 16}}


def _write_rows(path, header: list[str], rows: list[list]) -> None:
    write_csv(path, [dict(zip(header, r, strict=True)) for r in rows], columns=header)


__all__ = ["HEADLINE_T", "panel_a", "panel_b", "panel_c", "panel_d", "panel_e"]
