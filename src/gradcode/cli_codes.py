"""``gradcode codes``: list, show and compare the registered schemes.

Every scheme describes itself (``scheme.describe()``); ``show`` prints that,
plus, for a plain gradient code, a check of its straggler sets
(:func:`gradcode.codes.inspect.report`); ``compare`` decodes random straggler
sets with every plain code (:func:`gradcode.codes.inspect.robustness`).

**Bounded at every size accepted** (``n <= MAX_N``).  Some constructions grow
fast (``crc`` solves ``n`` systems of ``s x s``; ``partial`` runs ``s + l``
bipartite matchings), so the work for one scheme runs in a child process that
is stopped after a time limit (:data:`SHOW_SECONDS`, :data:`COMPARE_SECONDS`:
``show`` then fails in one line, ``compare`` skips the scheme and says so), and
the decoding checks stop sampling after a soft budget (:data:`CHECK_SECONDS`
per check) and print how many sets they decoded.  Below the budgets the output
is exactly that of an unbounded run.
"""

from __future__ import annotations

import multiprocessing
import sys
import traceback

import numpy as np
import typer
from rich.table import Table

from .cli_common import MAX_COUNT, MAX_N, CLIError, out, user_errors
from .codes import REGISTRY, effective_stragglers, make_code, stateless_names
from .codes.inspect import RobustnessRow, report, robustness

#: ``codes show``: seconds to build the scheme and check it before giving up.
SHOW_SECONDS = 10.0
#: ``codes compare``: seconds per scheme (building it and its two rows).
COMPARE_SECONDS = 5.0
#: Soft budget of one decoding check (``show``: the whole check; ``compare``: one row).
CHECK_SECONDS = {"show": 5.0, "compare": 1.0}

codes_app = typer.Typer(help="Inspect the gradient codes.", no_args_is_help=True)


@codes_app.command("list")
def codes_list() -> None:
    """List the registered schemes."""
    table = Table("scheme", "exact", "what it does", "paper")
    for info in REGISTRY.values():
        table.add_row(info.name, "yes" if info.exact else "approx", info.summary, info.citation)
    out.print(table)


@codes_app.command("show")
def codes_show(
    scheme: str = typer.Argument(..., help="Scheme name (see `gradcode codes list`)."),
    n: int = typer.Option(..., "-n", "--workers", min=1, max=MAX_N, help="Number of workers."),
    s: int = typer.Option(
        ..., "-s", "--stragglers", min=0, max=MAX_N, help="Stragglers to tolerate."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for randomised constructions."),
    patterns: int = typer.Option(
        5000,
        "--patterns",
        min=1,
        max=MAX_COUNT,
        help="Check all straggler sets of size s up to this many.",
    ),
) -> None:
    """Print a code's encoding matrix, load, tolerance and worst conditioning."""
    with user_errors():
        lines = bounded(SHOW_SECONDS, show_lines, scheme, n, s, seed, patterns)
    if lines is None:
        raise CLIError(
            f"codes show {scheme}: building and checking it at n={n}, s={s} takes longer "
            f"than {SHOW_SECONDS:g} s; choose a smaller -n or -s"
        )
    for line in lines:
        out.print(line, markup=False)


def show_lines(scheme: str, n: int, s: int, seed: int, patterns: int) -> list[str]:
    """What ``codes show`` prints: the scheme's description, then (plain codes) the check."""
    code = make_code(scheme, n, s, rng=np.random.default_rng(seed))
    lines = list(code.describe())
    if not REGISTRY[scheme].stateful:
        rng = np.random.default_rng(seed)
        lines += report(code, rng, limit=patterns, seconds=CHECK_SECONDS["show"]).lines()
    return lines


@codes_app.command("compare")
def codes_compare(
    n: int = typer.Option(12, "-n", "--workers", min=1, max=MAX_N, help="Number of workers."),
    s: int = typer.Option(
        3, "-s", "--stragglers", min=0, max=MAX_N, help="Stragglers to tolerate."
    ),
    trials: int = typer.Option(
        2000, "--trials", min=1, max=MAX_COUNT, help="Random straggler sets per cell."
    ),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Compare every scheme against random straggler sets of size s and s + 1."""
    table = Table(
        "scheme",
        "load",
        "stragglers",
        "exact",
        "mean ||aB-1||",
        "worst cond(B_K)",
        title=f"gradient codes at n={n}, s={s} ({trials} random straggler sets per row)",
    )
    short: list[RobustnessRow] = []
    for name in stateless_names():
        with user_errors():
            got = bounded(COMPARE_SECONDS, compare_rows, name, n, s, trials, seed)
        if got is None:
            why = f"not done within {COMPARE_SECONDS:g} s at n={n}, s={s}"
            out.print(f"[dim]{name}: skipped ({why})[/dim]")
            continue
        if isinstance(got, str):
            out.print(f"[dim]{name}: skipped ({got})[/dim]")
            continue
        load, rows = got
        for row in rows:
            table.add_row(
                name,
                str(load),
                str(row.stragglers),
                f"{row.exact_fraction:.1%}",
                f"{row.mean_residual:.3f}",
                "n/a" if np.isnan(row.worst_cond) else f"{row.worst_cond:.3g}",
            )
            if row.trials < trials:
                short.append(row)
    out.print(table)
    if short:
        counts = ", ".join(f"{r.name}/{r.stragglers}: {r.trials}" for r in short)
        out.print(
            f"[dim]time limit ({CHECK_SECONDS['compare']:g} s per row) reached; sets decoded "
            f"of {trials}: {counts}[/dim]"
        )


def compare_rows(
    name: str, n: int, s: int, trials: int, seed: int
) -> tuple[int, list[RobustnessRow]] | str:
    """``(load, rows)`` of one scheme for ``codes compare``, or why it does not exist."""
    try:
        code = make_code(name, n, effective_stragglers(name, s), rng=np.random.default_rng(seed))
    except ValueError as exc:
        return str(exc)
    seconds = CHECK_SECONDS["compare"]
    rows = [
        robustness(code, k, np.random.default_rng(seed + k), trials, seconds=seconds)
        for k in (s, min(s + 1, n - 1))
    ]
    return code.load, rows


# ----------------------------------------------------------------- time limits


def bounded(seconds: float, fn, *args):
    """``fn(*args)`` in a child process; ``None`` when it has not returned after
    ``seconds`` (the child is then killed).  A ``ValueError`` raised there is raised
    here with the same message; any other error is a ``RuntimeError`` carrying the
    child's traceback.  The child is forked (cheap) unless torch is loaded here,
    whose threads make a fork unsafe; then it is spawned."""
    forkable = "torch" not in sys.modules and "fork" in multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if forkable else "spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    proc.start()
    send.close()
    try:
        if not receive.poll(seconds):
            return None
        kind, value = receive.recv()
    except EOFError:
        kind, value = "error", f"the worker process exited with status {proc.exitcode}"
    finally:
        if proc.is_alive():  # timed out (or finishing after its answer): stop it now
            proc.kill()
        proc.join()
        receive.close()
    if kind == "value":
        return value
    if kind == "ValueError":
        raise ValueError(value)
    raise RuntimeError(value)


def _child(send, fn, args) -> None:
    try:
        result = ("value", fn(*args))
    except ValueError as exc:
        result = ("ValueError", str(exc))
    except Exception:  # noqa: BLE001 - a bug: its traceback goes to the parent
        result = ("error", traceback.format_exc())
    send.send(result)
    send.close()
