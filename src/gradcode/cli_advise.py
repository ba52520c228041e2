"""``gradcode advise``: which scheme and ``s`` for this cluster (:func:`gradcode.advise`).

Prints the cluster's regime, a ranked table of every ``(scheme, s)`` with its
predicted time per round and time to target, the recommendation, the
runner-up and why; ``--json`` prints the same as one JSON object,
``--figure`` draws time per round vs ``s`` for the top schemes.

Registered in :mod:`gradcode.cli`; user mistakes end in one
``gradcode: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

out = Console(highlight=False, width=120)

#: Rows of the ranked table printed (``--top``).
TOP = 12


@contextlib.contextmanager
def _user_errors():
    try:
        yield
    except ValueError as exc:
        print(f"gradcode: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"gradcode: error: {exc.strerror or exc}{where}", file=sys.stderr)
        raise typer.Exit(2) from None


def _json_safe(x):
    """NaN and infinities as ``null`` (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def advise_cmd(
    file: Path = typer.Option(
        None, "--trace", help="Measured times: long CSV round,worker,load,seconds, or wide."
    ),
    run_dir: Path = typer.Option(
        None, "--run", help="Folder of an earlier gradcode run (local or Ray)."
    ),
    delay: str = typer.Option(
        None, "--delay", help="Delay model, as gradcode train --delay (default: shifted-exp)."
    ),
    persistent: str = typer.Option(None, "--persistent", help="With --delay: k=2,kappa=5."),
    bursty: str = typer.Option(None, "--bursty", help="With --delay: p_slow=0.05,..."),
    crash: str = typer.Option(None, "--crash", help="With --delay: count=1,at_round=10."),
    n: int = typer.Option(
        None, "-n", help="Workers (default: the run's, the trace's, or 12 for --delay)."
    ),
    max_s: int = typer.Option(None, "--max-s", help="Largest s (default min(4, n // 2))."),
    schemes: str = typer.Option(
        None, "--schemes", help="Comma-separated schemes to rank (default: all)."
    ),
    target: float = typer.Option(
        None,
        "--target",
        help="DGD's rounds to target (> 1), or a test accuracy in (0, 1] read from --run.",
    ),  # fmt: skip
    rounds: int = typer.Option(
        None, "--rounds", min=1, help="Rounds per candidate (beyond the measured: model draws)."
    ),
    model_size: float = typer.Option(
        None, "--model-size", help="Model parameters (message size, for a model with bandwidth)."
    ),
    factors: Path = typer.Option(
        None, "--factors", help="Convergence factors CSV scheme,s,rounds_factor (or JSON)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of model draws and of CRC's matrix."),
    top: int = typer.Option(TOP, "--top", min=1, help="Rows of the ranked table."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    figure: Path = typer.Option(None, "--figure", help="PNG of time per round vs s."),
) -> None:
    """Which scheme and s should I use? Rank every scheme on this cluster's times."""
    from .advising import advise

    with _user_errors():
        names = None
        if schemes is not None:
            names = [x.strip() for x in schemes.split(",") if x.strip()]
            if not names:
                raise ValueError("--schemes needs at least one scheme name")
        if rounds is not None and rounds > 10**6:
            raise ValueError(f"--rounds must be at most 1000000, got {rounds}")
        advice = advise(
            n, trace=file, run=run_dir, delay=delay, persistent=persistent, bursty=bursty,
            crash=crash, max_s=max_s, schemes=names, factors=factors, target=target,
            rounds=rounds, model_size=model_size, seed=seed,
        )  # fmt: skip
        if figure is not None:
            from .advisor.figure import draw

            draw(advice, figure)
    if as_json:
        print(json.dumps(_json_safe(advice.to_dict())))
        return
    _print(advice, top)
    if figure is not None:
        out.print(f"figure: {figure}")


def _stalls(st: dict) -> str:
    if not st.get("cells"):
        return "none"
    size = st.get("median_size")
    size = f", median +{size:.3g} s" if size is not None else ""
    return f"{st['cells']} measurements ({st['fraction']:.2%}){size}"


def _fmt(x, spec: str = ".3f") -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:{spec}}"


def _print(advice, top: int) -> None:
    r = advice.regime
    slow = ", ".join(str(w) for w, _ in r.slow_workers) or "none"
    crashed = ", ".join(str(c["worker"]) for c in r.crashes) or "none"
    rho = _fmt(r.rank_correlation, ".2f")
    out.print(
        f"[bold]{advice.source}[/bold]: {r.rounds} rounds x {r.workers} workers, loads "
        f"{', '.join(f'{x:g}' for x in r.loads)}; advising for n = {advice.n}"
    )
    ratios = ", ".join(f"load {k}: {v:.2f}x" for k, v in list(r.load_ratio.items())[:4])
    out.print(
        f"regime: [bold]{r.kind}[/bold]: a load-1 round is {r.fixed:.3g} s fixed "
        f"({r.fixed_share:.0%}) + {r.per_partition:.3g} s per partition ({r.load_basis})\n"
        f"  time vs load 1: {ratios or 'unknown'}\n"
        f"  typical worker {r.median:.3g} s; p90 {r.tail['p90']:.2f}x, p99 {r.tail['p99']:.2f}x, "
        f"max {r.tail['max']:.2f}x the typical; stalls: {_stalls(r.stalls)}\n"
        f"  rank correlation round to round {rho}; persistently slow workers: {slow}; "
        f"crashed: {crashed}"
    )
    what = "time to target (s)" if advice.target_rounds else "time per DGD round (s)"
    shown, total = min(top, len(advice.candidates)), len(advice.candidates)
    t = Table(title=f"candidates, best first ({shown} of {total}; "
              f"{len(advice.skipped)} (scheme, s) pairs skipped)")  # fmt: skip
    for col in ("#", "scheme", "s", "load", "round time (s)", "exact", "rounds factor", what,
                "vs DGD"):  # fmt: skip
        t.add_column(col, justify="left" if col == "scheme" else "right")
    marks = False
    rows = list(enumerate(advice.candidates, start=1))
    shown_rows = rows[:top] + [(i, c) for i, c in rows[top:] if c.scheme == "dgd"]
    for i, c in shown_rows:
        mark = "" if c.recommendable else " †"
        marks |= bool(mark)
        exact = "yes" if c.fresh else "stale" if c.exact else "no"
        t.add_row(str(i), c.scheme, str(c.s), f"{c.load:g}", _fmt(c.round_time),
                  exact, _fmt(c.rounds_factor, ".2f") + mark, _fmt(c.time_to_target),
                  _fmt(c.vs_dgd, ".3f"))  # fmt: skip
    out.print(t)
    if marks:
        out.print("† not recommended: " + "; ".join(sorted({
            f"{c.scheme}: {c.caveat}" for c in advice.candidates[:top] if c.caveat
        })))  # fmt: skip
    rec = advice.recommendation
    out.print(f"[bold]recommendation: {rec.scheme} at s = {rec.s}[/bold]  "
              f"(train with --scheme {rec.scheme} -s {rec.s})")  # fmt: skip
    out.print(advice.reason)
    out.print(f"rounds factors: {advice.rounds_factor_source}")
    for note in advice.notes:
        out.print(f"note: {note}")
