"""Plain functions behind ``gradcode experiment run`` and ``gradcode report``.

They are wired into the typer app in :mod:`gradcode.cli`; usable directly::

    experiment_run(Path("experiments/ci_small.toml"), Path("results/ci"), quiet=True)
    report(Path("results/ci"))

User mistakes (bad TOML, unknown names, a grid above :data:`MAX_RUNS` runs without
``yes=True``) raise :class:`ValueError` with one line.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .grid.harness import run_experiment
from .grid.parse import load_experiment
from .report import page

#: Most training runs (reported cells plus tuning runs) a grid may have without
#: ``--yes``: a typo in an axis (a range of seeds) must not start a week of work.
MAX_RUNS = 5_000


def default_out_dir(config: Path) -> Path:
    """``results/<config stem>`` -- the default for ``--out``."""
    return Path("results") / Path(config).stem


def experiment_run(
    config: Path, out_dir: Path | None = None, quiet: bool = False, yes: bool = False
):
    """Run (or resume) the grid in ``config`` into ``out_dir``; print a short summary.

    The grid's size is printed first, counted without expanding it
    (:meth:`~gradcode.grid.schema.ExperimentConfig.size`); above :data:`MAX_RUNS`
    runs it is refused unless ``yes``.  Returns the
    :class:`~gradcode.grid.harness.ExperimentResult` (``.failed`` lists the cells
    that failed).
    """
    cfg = load_experiment(config)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(config)
    size = cfg.size()
    about = "" if size.exact else "at most "
    tuning = f" + {size.tuning_runs:,} tuning runs" if cfg.tune is not None else ""
    if size.runs > MAX_RUNS and not yes:
        raise ValueError(
            f"{cfg.name}: {about}{size.cells:,} cells{tuning}, above the limit of "
            f"{MAX_RUNS:,} runs; check the grid's axes, or pass --yes to run it"
        )
    console = Console(stderr=True, quiet=quiet)
    console.print(
        f"{cfg.name}: {about}{size.cells} cells ({size.skipped} skipped){tuning}, "
        f"{cfg.workers} workers, {cfg.rounds} rounds, {cfg.jobs} job(s) -> {out_dir}"
    )
    res = run_experiment(cfg, out_dir, progress=not quiet)
    skipped = {}
    for cell, reason in res.skipped:
        skipped.setdefault((cell.scheme, cell.s), reason)
    for (scheme, s), reason in sorted(skipped.items()):
        console.print(f"skipped {scheme} at s={s}: {reason}")
    out = Console()
    out.print(
        f"{cfg.name}: ran {len(res.ran)} cell(s), {len(res.reused)} already done, "
        f"{len(res.failed)} failed, {len(res.skipped)} skipped in {res.seconds:.1f}s "
        f"-> {res.results_csv}"
    )
    if res.retimed:
        out.print(
            f"  {len(res.ran) - len(res.retimed)} trained, {len(res.retimed)} re-timed from a "
            "run with the same trajectory (results.csv: retimed_from)"
        )
    for cid in res.failed[:10]:
        out.print(f"  failed: {cid} (see {out_dir / 'runs' / cid / 'error.txt'})")
    if cfg.tune is not None:
        out.print(
            f"tuning: {len(cfg.tuning_cells())} run(s) on seed {cfg.tune.seed} "
            f"({len(res.tuning_ran)} run now, {len(res.tuning_failed)} failed) "
            f"-> {out_dir / 'tuning.csv'}"
        )
    return res


def report(results_dir: Path) -> None:
    """Render plots and ``report.html`` for a results directory; print its path."""
    results_dir = Path(results_dir)
    if not (results_dir / "results.csv").is_file():
        raise ValueError(f"{results_dir} has no results.csv (run `gradcode experiment run` first)")
    path = page.render_report(results_dir)
    Console().print(f"report -> {path}")


__all__ = ["MAX_RUNS", "default_out_dir", "experiment_run", "report"]
