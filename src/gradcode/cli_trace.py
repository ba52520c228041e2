"""``gradcode trace``: fit the clock model to a measured trace; compare regimes.

* ``gradcode trace fit FILE.csv`` -- fits :class:`~gradcode.stragglers.ClockModel`
  to a long-format trace (:func:`~gradcode.stragglers.fit_clock`), prints its
  parts, the measured vs fitted quantiles per load and the simulated vs
  replayed mean round time (DGD; IS-SGD, FRC, CRC at ``s = 3``), saves the model as
  JSON (``--delay model:path=...`` reads it) and a goodness-of-fit figure.
* ``gradcode trace regimes FILE.csv ...`` -- mean round time vs ``s`` per
  scheme, replaying each trace as measured and as time ∝ load, with a figure
  (docs/clock.md's figure comes from this command).

Registered in :mod:`gradcode.cli`; user mistakes end in one
``gradcode: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

trace_app = typer.Typer(
    help="Measured straggler traces: fit the clock model, compare regimes.",
    no_args_is_help=True,
)
out = Console(highlight=False)

#: Probabilities of the goodness-of-fit quantiles (body, then the far tail).
PROBS = np.r_[np.linspace(0.01, 0.99, 99), 0.995, 0.999, 0.9995]
#: Quantiles shown in the table.
TABLE_PROBS = (0.1, 0.5, 0.9, 0.99, 0.999)


@contextlib.contextmanager
def _user_errors():
    try:
        yield
    except (ValueError, OSError) as exc:
        print(f"gradcode: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None


def _long_trace(path: Path):
    from .stragglers import LoadTrace, read_trace

    trace = read_trace(path)
    if not isinstance(trace, LoadTrace):
        raise ValueError(
            f"{path} is a wide (rounds x workers) table; fitting needs the long format "
            "with a header round,worker,load,seconds"
        )
    return trace


@trace_app.command("fit")
def fit_cmd(
    file: Path = typer.Argument(..., help="Long-format trace CSV: round,worker,load,seconds."),
    out_dir: Path = typer.Option(
        Path("."), "--out", help="Folder for clock_<name>.json (the model) and clock_<name>.png."
    ),
    figure: Path = typer.Option(
        None, "--figure", help="Goodness-of-fit figure (default: <out>/clock_<name>.png)."
    ),
    n: int = typer.Option(None, "-n", help="Workers for the check (default: the trace's)."),
    s: int = typer.Option(3, "-s", help="Stragglers tolerated by FRC in the check."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Fit the clock model (latency + load x compute + stalls) to a measured trace."""
    from .clock import check_fit
    from .stragglers import ClockSamples, fit_clock, write_model
    from .stragglers.fit import model_quantiles

    with _user_errors():
        trace = _long_trace(file)
        fit = fit_clock(ClockSamples.from_trace(trace))
        model_out = out_dir / f"clock_{file.stem}.json"
        figure = figure or model_out.with_suffix(".png")
        rng = np.random.default_rng(0)
        quant = {
            L: (np.quantile(trace.table[:, :, k], PROBS),
                model_quantiles(fit.model, L, PROBS, trace.workers, rng))
            for k, L in enumerate(trace.loads)
        }  # fmt: skip
        checks = check_fit(trace, fit.model, n, (("dgd", 0), ("is_sgd", s), ("frc", s), ("crc", s)))
        record = {
            "fit": fit.summary(),
            "delay": f"model:path={model_out}",
            "check": [dict(vars(c), ratio=c.ratio) for c in checks],
            "quantiles": {
                f"{L:g}": {f"p{100 * p:g}": [float(np.interp(p, PROBS, m)),
                                            float(np.interp(p, PROBS, f))]
                         for p in TABLE_PROBS}
                for L, (m, f) in quant.items()
            },
        }  # fmt: skip
        write_model(model_out, fit.model, {"fit": record["fit"], "check": record["check"]})
        _fit_figure(quant, trace, figure)
    if as_json:
        print(json.dumps({**record, "model": fit.model.to_dict(), "figure": str(figure)}))
        return
    _print_fit(fit, record, checks)
    out.print(f"model: {model_out}  (use it as --delay model:path={model_out})")
    out.print(f"figure: {figure}")


def _print_fit(fit, record, checks) -> None:
    m = fit.model
    t = Table(title=f"clock model fitted to {fit.source}")
    t.add_column("part")
    t.add_column("fitted")
    t.add_row("latency (s)", f"{m.latency.describe()}  [{fit.body}: held-out KS "
              + ", ".join(f"{k} {v:.3f}" for k, v in fit.heldout_ks.items()) + "]")  # fmt: skip
    t.add_row("compute (s / partition)", m.compute.describe())
    t.add_row("communication", "in the latency (the trace never varied the message size)"
              if m.bandwidth is None else f"bandwidth {m.bandwidth.describe()} B/s")  # fmt: skip
    t.add_row("common shift per round (s)", m.common.describe())
    if m.stall is None:
        t.add_row("stalls", "none")
    else:
        st = m.stall
        probs = ", ".join(f"{p:.2f}@{L:g}" for p, L in zip(st.prob, st.loads, strict=True))
        t.add_row("stall wave probability @ load", probs)
        t.add_row("share of workers a wave catches", st.share.describe())
        t.add_row("stall size (s above the median)", st.size.describe())
        t.add_row("stall threshold (s above the median)", f"{fit.stall_threshold:.3g}")
    t.add_row("measurements", f"{fit.cells} ({fit.stall_cells} stalls, {fit.crashed} crashed)")
    out.print(t)
    q = Table(title="seconds per load: measured / fitted")
    q.add_column("load", justify="right")
    for p in TABLE_PROBS:
        q.add_column(f"p{100 * p:g}", justify="right")
    for L, cols in record["quantiles"].items():
        q.add_row(L, *(f"{a:.2f} / {b:.2f}" for a, b in cols.values()))
    out.print(q)
    c = Table(title="mean round time: trace replay vs fitted model")
    for col in ("scheme", "s", "n", "replay (s)", "model (s)", "model / replay"):
        c.add_column(col, justify="right")
    for row in checks:
        c.add_row(row.scheme, str(row.s), str(row.n), f"{row.replay:.3f}", f"{row.model:.3f}",
                  f"{row.ratio:.3f}")  # fmt: skip
    out.print(c)


def _log_axes(ax, lo: float, hi: float, x: bool = True) -> None:
    from matplotlib.ticker import NullLocator

    ticks = [t for t in (0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200) if lo * 0.8 <= t <= hi * 1.25]
    axes = ((ax.xaxis, ax.set_xscale),) if x else ()
    for axis, scale in (*axes, (ax.yaxis, ax.set_yscale)):
        scale("log")
        axis.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        axis.set_minor_locator(NullLocator())


def _fit_figure(quant: dict, trace, path: Path) -> None:
    from .report.plotting import plt, save

    fig, axes = plt.subplots(1, len(quant), figsize=(3.2 * len(quant), 3.4), squeeze=False)
    lo = min(min(m.min(), f.min()) for m, f in quant.values())
    hi = max(max(m.max(), f.max()) for m, f in quant.values())
    for ax, (L, (m, f)) in zip(axes[0], quant.items(), strict=True):
        ax.plot([lo, hi], [lo, hi], color="lightgray", lw=1)
        ax.scatter(m, f, s=9, color="tab:blue")
        _log_axes(ax, lo, hi)
        ax.set_title(f"load {L:g}")
        ax.set_xlabel("measured quantile (s)")
    axes[0][0].set_ylabel("fitted model's quantile (s)")
    fig.suptitle(f"{Path(trace.source).name}: quantiles 1 %..99.95 %, measured vs fitted")
    save(fig, path)


@trace_app.command("regimes")
def regimes_cmd(
    files: list[Path] = typer.Argument(..., help="Long-format trace CSVs."),
    n: int = typer.Option(24, "-n", help="Workers (each block of n trace workers is replayed)."),
    max_s: int = typer.Option(4, "--max-s", help="Largest s."),
    out_dir: Path = typer.Option(Path("."), "--out", help="Folder for clock_regimes.png."),
    figure: Path = typer.Option(None, "--figure", help="Figure path (overrides --out)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Mean round time vs s: each trace as measured (latency-bound) and as time ∝ load."""
    from .clock import regimes

    with _user_errors():
        if n < 2 or max_s < 1:
            raise ValueError(f"need -n >= 2 and --max-s >= 1, got n={n}, max_s={max_s}")
        results = {f.stem: regimes(_long_trace(f), n, range(max_s + 1)) for f in files}
        figure = figure or out_dir / "clock_regimes.png"
        _regimes_figure(results, figure)
    if as_json:
        print(json.dumps({"n": n, "figure": str(figure), "traces": results}))
        return
    for name, rows in results.items():
        t = Table(title=f"{name}: mean round time (s), n = {n}, block replay")
        t.add_column("scheme")
        t.add_column("s", justify="right")
        t.add_column("load", justify="right")
        t.add_column("as measured", justify="right")
        t.add_column("time ∝ load", justify="right")
        measured = [r for r in rows if r["regime"] == "measured"]
        linear = {(r["scheme"], r["s"]): r for r in rows if r["regime"] == "linear"}
        for r in measured:
            lin = linear[r["scheme"], r["s"]]["mean_round_time"]
            t.add_row(r["scheme"], str(r["s"]), str(r["load"]),
                      f"{r['mean_round_time']:.3f}", f"{lin:.3f}")  # fmt: skip
        out.print(t)
    out.print(f"figure: {figure}")


def _regimes_figure(results: dict, path: Path) -> None:
    from .report.plotting import plt, save, style

    fig, axes = plt.subplots(
        1, len(results), figsize=(5.0 * len(results), 3.8), squeeze=False, sharey=True
    )
    for ax, (name, rows) in zip(axes[0], results.items(), strict=True):
        dgd = {r["regime"]: r["mean_round_time"] for r in rows if r["scheme"] == "dgd"}
        for scheme in ("is_sgd", "frc", "crc"):
            # is_sgd has load 1 at every s: both readings coincide, one line
            both = (
                (("measured", "-"),) if scheme == "is_sgd" else (("measured", "-"), ("linear", ":"))
            )
            for regime, dash in both:
                pts = [(0, dgd[regime])] + [
                    (r["s"], r["mean_round_time"])
                    for r in rows
                    if r["scheme"] == scheme and r["regime"] == regime
                ]
                kw = style(scheme)
                kw.update(ls=dash, lw=1.6, alpha=1.0)
                kw["label"] = f"{kw['label']}, {'as measured' if dash == '-' else 'time ∝ load'}"
                if scheme == "is_sgd":
                    kw["label"] = f"{style(scheme)['label']} (load 1: both readings)"
                ax.plot(*zip(*pts, strict=True), **kw)
        ax.set_title(name)
        ax.set_xlabel("s (stragglers tolerated; load s + 1 for FRC/CRC)")
        ax.set_xticks(sorted({r["s"] for r in rows}))
        times = [r["mean_round_time"] for r in rows]
        _log_axes(ax, min(times), max(times), x=False)
    axes[0][0].set_ylabel("mean time per round (s)")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    save(fig, path)
