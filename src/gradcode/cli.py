"""The ``gradcode`` command line.

The CLI only parses arguments into library calls and prints results; every
user mistake ends in one ``gradcode: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from . import __version__
from .cli_advise import advise_cmd
from .cli_codes import codes_app
from .cli_common import MAX_COUNT, CLIError, out, train_config, user_errors
from .cli_common import out_folder as _out_folder
from .cli_trace import trace_app

app = typer.Typer(
    help="Straggler-resilient distributed training with gradient coding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(codes_app, name="codes")
reproduce_app = typer.Typer(
    help="Reproduce published results (figures + CSV).", no_args_is_help=True
)
app.add_typer(reproduce_app, name="reproduce")
experiment_app = typer.Typer(
    help="Declarative experiment grids (schemes x stragglers x seeds x tasks).",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")
app.add_typer(trace_app, name="trace")
app.command("advise")(advise_cmd)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        out.print(f"gradcode {__version__}")
        raise typer.Exit(0)


def _int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise CLIError(f"{what} must be a comma-separated list of integers, got {text!r}") from None
    if not values or min(values) < 2:
        raise CLIError(f"{what} needs integers >= 2, got {text!r}")
    return values


@reproduce_app.command("tandon2017")
def reproduce_tandon2017(
    out_dir: Path = typer.Option(
        Path("out/tandon2017"), "--out", callback=_out_folder, help="Output folder."
    ),
    workers: str = typer.Option("10,20,30", "--workers", help="Comma-separated n values."),
    rounds: int = typer.Option(
        2000, "--rounds", min=1, max=MAX_COUNT, help="Simulated rounds per point."
    ),
    seed: int = typer.Option(0, "--seed", min=0),
) -> None:
    """Average time per iteration vs s: naive, ignore-s, FRC, CRC (Tandon et al. 2017)."""
    from .reproduce.tandon2017 import Tandon2017Config, run

    cfg = Tandon2017Config(ns=_int_list(workers, "--workers"), rounds=rounds, seed=seed)
    with user_errors():
        rows = run(cfg, out_dir)
    out.print(f"{len(rows)} points -> {out_dir / 'tandon2017.csv'}, {out_dir / 'tandon2017.png'}")


@reproduce_app.command("ramamoorthy2024")
def reproduce_ramamoorthy2024(
    out_dir: Path = typer.Option(
        Path("out/ramamoorthy2024"), "--out", callback=_out_folder, help="Output folder."
    ),
    trials: int = typer.Option(
        1000, "--trials", min=2, max=MAX_COUNT, help="Monte-Carlo trials per point."
    ),
    seed: int = typer.Option(0, "--seed", min=0),
    m: int = typer.Option(20, "--m", "--workers", help="Workers m."),
    chunks: int = typer.Option(None, "--N", "--chunks", help="Chunks N (multiple of m; m)."),
    deltas: str = typer.Option("4,5", "--deltas", help="Comma-separated delta values."),
    ls: str = typer.Option(None, "--ls", help="Comma-separated l values (1..delta-1)."),
    failures: str = typer.Option("uniform", "--failures", help="uniform, bernoulli or none."),
    max_fail: float = typer.Option(0.1, "--max-fail", help="Failure fraction / probability."),
    chunk_model: str = typer.Option("iid", "--chunk-model", help="iid or persistent speed."),
    latency: float = typer.Option(0.0, "--latency", help="Per-message latency."),
    bandwidth: float = typer.Option(
        float("inf"), "--bandwidth", help="Gradients per time unit (inf: free)."
    ),
    tandon_p: int = typer.Option(None, "--tandon-p", help="Pieces per worker (2 delta)."),
) -> None:
    """Partial-straggler GC: MSE vs deadline, completion vs l, ordering, traffic."""
    from .reproduce.ramamoorthy2024 import config_from_options, run

    with user_errors():
        cfg = config_from_options(
            trials=trials, m=m, N=chunks, deltas=deltas, ls=ls, failures=failures,
            max_fail=max_fail, chunk_model=chunk_model, latency=latency,
            bandwidth=bandwidth, tandon_p=tandon_p,
        )  # fmt: skip
        summary = run(out_dir, rng=np.random.default_rng(seed), cfg=cfg)
    for key, value in summary["speedup"].items():
        out.print(f"{key}: {value:.3g}")
    out.print(f"figures, CSVs and traffic.csv -> {out_dir}")


@app.command("train")
def train_cmd(
    ctx: typer.Context,
    scheme: str = typer.Option(
        "pgc",
        "--scheme",
        help="Scheme (see `gradcode codes list`), or auto: measure the workers, let the "
        "advisor choose scheme and s, switch when the cluster changes (local backend).",
    ),
    workers: int = typer.Option(12, "--workers", "-n", help="Number of workers n."),
    stragglers: int = typer.Option(2, "--stragglers", "-s", help="Stragglers to tolerate s."),
    delay: str = typer.Option(
        "shifted-exp",
        "--delay",
        help="Delay model: shifted-exp[:a=1,mu=1], pause:..., pareto:alpha=2.5, "
        "trace:path=FILE.csv (long or wide format), parts:..., or model:path=FIT.json "
        "from `gradcode trace fit` (docs/clock.md).",
    ),
    persistent: str = typer.Option(
        None, "--persistent", help="Persistent slow workers: k=2,kappa=5[,layout=aligned]."
    ),
    bursty: str = typer.Option(
        None, "--bursty", help="Markov stragglers: p_slow=0.05,p_recover=0.3,kappa=5."
    ),
    crash: str = typer.Option(
        None, "--crash", help="Crash-stop: count=1,at_round=10[,rejoin_after=20] or workers=0+3,..."
    ),
    dataset: str = typer.Option(
        "breast_cancer",
        "--dataset",
        help="breast_cancer, digits, wine, fashion_mnist, adult, mnist5k, mnist1d, mnist, "
        "cifar10, amazon, or a registered one (README: Datasets).",
    ),
    model: str = typer.Option(
        "logreg", "--model", help="logreg, mlp, cnn, resnet, or a registered one."
    ),
    partitioning: str = typer.Option("iid", "--partitioning", help="iid or label_sorted."),
    rounds: int = typer.Option(100, "--rounds", min=1),
    lr: float = typer.Option(0.5, "--lr"),
    optimizer: str = typer.Option(
        "sgd", "--optimizer", help="sgd (heavy-ball momentum), nesterov or adam."
    ),
    momentum: float = typer.Option(0.0, "--momentum"),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0, help="L2 weight decay."),
    deadline: float = typer.Option(
        None, "--deadline", help="Stop each round at this (virtual) time."
    ),
    backend: str = typer.Option(
        "local", "--backend", help="local (in-process, virtual clock) or ray."
    ),
    address: str = typer.Option(
        None,
        "--address",
        help="Ray cluster to join: HOST:PORT, or 'auto' for the one `ray start` runs on this "
        "machine (default: a private Ray instance on 127.0.0.1).",
    ),
    time_scale: float = typer.Option(
        None,
        "--time-scale",
        min=0.0,
        help="Ray backend: real seconds per unit of the straggler schedule (default 0.01; "
        "0 injects no delays).",
    ),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    eval_every: int = typer.Option(10, "--eval-every", min=1),
    checkpoint_every: int = typer.Option(0, "--checkpoint-every", min=0, help="0 = never."),
    on_undecodable: str = typer.Option("fallback", "--on-undecodable", help="fallback or stop."),
    data_dir: str = typer.Option(None, "--data-dir", help="Folder with user-supplied data files."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Use data files without checking their pinned sha256."
    ),
    out_dir: Path = typer.Option(
        Path("out/train"), "--out", callback=_out_folder, help="Output folder."
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue the run in OUT from its checkpoint (checked whole before anything is "
        "touched); only --rounds (upward), --eval-every, --checkpoint-every, --address and "
        "--tensorboard may differ from the run's config.json.",
    ),
    overwrite: bool = typer.Option(
        False,
        "--overwrite",
        help="OUT holds another run: delete every file of it (checkpoint included) and start "
        "afresh (without it such a folder is refused).",
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help="Minibatch per partition per round (default: all)."
    ),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float64 (exactness)."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads for the computation."),
    lr_schedule: str = typer.Option(
        "constant", "--lr-schedule", help="constant or cosine (lr -> 0 over --rounds)."
    ),
    target_accuracy: float = typer.Option(
        None,
        "--target-accuracy",
        help="Stop at the first evaluation with test accuracy >= this (e.g. 0.85).",
    ),
    tensorboard: Path = typer.Option(
        None,
        "--tensorboard",
        metavar="DIR",
        callback=_out_folder,
        help="Also write the per-round scalars to TensorBoard event files in DIR (watch: "
        "tensorboard --logdir DIR; needs the optional tensorboard package).",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    scheme_opt: list[str] = typer.Option(
        None, "--scheme-opt", help="Scheme option key=value (repeatable), e.g. l=2, placement=cr."
    ),
    stale_correction: str = typer.Option(
        "none",
        "--stale-correction",
        help="Stale schemes (pgc*, sr_sgc): none, auto, momentum, predict, dc or lr "
        "(docs/stale.md).",
    ),
    auto: str = typer.Option(
        None,
        "--auto",
        help="--scheme auto: warmup=5,every=10,window=10,margin=0.1,warmup_scheme=is_sgd,"
        "candidates=dgd+frc+... (README: Which scheme should I use?).",
    ),
) -> None:
    """Train a model with a straggler-resilient scheme (one JSON line per round).

    Options named like a :class:`~gradcode.runtime.config.RunConfig` field are
    that field; the rest are translated (``--delay`` and its wrappers,
    ``--no-verify``, ``--scheme-opt``).  The run folder is locked while the run
    lasts; a folder holding another run needs ``--overwrite`` (or ``--resume``).
    """
    from .runtime.loop import TrainingStopped
    from .runtime.run import build_scheme, run

    with user_errors():
        if resume and overwrite:
            raise CLIError("--resume continues the run in OUT; --overwrite deletes it: pick one")
        cfg = train_config(ctx.params)
        cfg.delay.build()  # validate before starting anything
        build_scheme(cfg)
        try:
            with _progress(rounds, quiet) as advance:
                result = run(cfg, out_dir, resume=resume, progress=advance, overwrite=overwrite)
        except TrainingStopped as exc:
            # The loop's own stops name their checkpoint; a lost Ray cluster names none.
            where = "" if str(out_dir) in str(exc) else f" (run folder {out_dir})"
            raise CLIError(f"training stopped: {exc}{where}") from None
    fin = result.final()
    out.print(
        f"{cfg.scheme}: {result.rounds} rounds, time {result.wall_clock:.2f}, "
        f"train loss {fin.get('train_loss', float('nan')):.4f}, "
        f"test accuracy {fin.get('test_accuracy', float('nan')):.3f} -> {out_dir}"
    )


@contextlib.contextmanager
def _progress(total: int, quiet: bool):
    """A rich progress bar showing round, loss, accuracy and (virtual) time."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        yield lambda rec: None
        return
    cols = (
        TextColumn("round"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*cols, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("train", total=total, info="")
        last: dict = {}

        def advance(rec: dict) -> None:
            if "train_loss" in rec:
                last.update(loss=rec["train_loss"], acc=rec.get("test_accuracy", float("nan")))
            info = f"t={rec['time']:.1f}"
            if last:
                info += f" loss={last['loss']:.4f} acc={last['acc']:.3f}"
            bar.update(task, completed=rec["round"] + 1, info=info)

        yield advance


@app.command("demo")
def demo(
    out_dir: Path = typer.Option(
        Path("out/demo"), "--out", callback=_out_folder, help="Output folder."
    ),
    rounds: int = typer.Option(150, "--rounds", min=1, max=MAX_COUNT),
    seed: int = typer.Option(0, "--seed", min=0),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Train several schemes on the embedded backend and plot loss vs time (make demo)."""
    from .reproduce.demo import DemoConfig, run_demo

    cfg = DemoConfig(rounds=rounds, seed=seed)
    with _progress(rounds * len(cfg.schemes), quiet) as advance:
        done = {"n": 0}

        def on_round(name: str, rec: dict) -> None:
            done["n"] += 1
            advance({**rec, "round": done["n"] - 1})

        with user_errors():
            rows = run_demo(cfg, out_dir, on_round)
    table = Table(
        "scheme",
        "virtual time",
        "time/round",
        "train loss",
        "test acc",
        title=f"{rounds} rounds, n={cfg.workers}, s={cfg.stragglers}",
    )
    for r in rows:
        table.add_row(
            r["scheme"],
            f"{r['virtual_time']:.1f}",
            f"{r['time_per_round']:.2f}",
            f"{r['train_loss']:.4f}",
            f"{r['test_accuracy']:.3f}",
        )
    out.print(table)
    out.print(f"plot: {out_dir / 'demo.png'}; per-round JSON logs under {out_dir / 'runs'}")


@reproduce_app.command("pgc")
def reproduce_pgc(
    out_dir: Path = typer.Option(
        Path("out/pgc"), "--out", callback=_out_folder, help="Output folder."
    ),
    rounds: int = typer.Option(
        400, "--rounds", min=2, max=MAX_COUNT, help="Training rounds per run."
    ),
    stragglers: str = typer.Option("1,3", "--stragglers", help="Comma-separated s values."),
    seed: int = typer.Option(0, "--seed", min=0),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """PGC vs DGD, IS-SGD, GC and PGC variants: suboptimality and time to target."""
    from .reproduce.pgc_study import PGCStudyConfig, run

    try:
        s_values = tuple(int(x) for x in stragglers.split(","))
    except ValueError:
        raise CLIError(
            f"--stragglers must be comma-separated integers, got {stragglers!r}"
        ) from None
    cfg = PGCStudyConfig(rounds=rounds, stragglers=s_values, seed=seed)
    total = 2 * len(s_values) * 2 * len(cfg.schemes)
    with _progress(total, quiet) as advance:
        count = {"n": 0}

        def step(label: str) -> None:
            advance({"round": count["n"], "time": 0.0})
            count["n"] += 1

        with user_errors():
            rows = run(cfg, out_dir, progress=step)
    table = Table("partitions", "s", "stragglers", "scheme", "subopt / DGD", "time to target")
    for r in rows:
        table.add_row(
            r["partitions"],
            str(r["s"]),
            r["stragglers"],
            r["scheme"],
            f"{r['ratio_to_dgd']:.3g}",
            f"{r['time_to_target']:.0f}",
        )
    out.print(table)
    out.print(f"figures and CSVs -> {out_dir}")


@experiment_app.command("run")
def experiment_run_cmd(
    config: Path = typer.Argument(
        ..., help="Experiment grid (TOML), e.g. experiments/pgc_study.toml."
    ),
    out_dir: Path = typer.Option(
        None,
        "--out",
        callback=_out_folder,
        help="Results folder (default results/<config name>); reruns resume.",
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    yes: bool = typer.Option(
        False, "--yes", help="Run a grid above 5,000 runs (refused without it)."
    ),
) -> None:
    """Run (or resume) an experiment grid; finished cells are skipped.

    Prints the grid's size first; refuses more than 5,000 runs (cells plus tuning runs)
    unless --yes.  Exit status 1 when any cell (or tuning run) failed; the others still
    ran, rerun to retry.
    """
    from .cli_experiment import experiment_run

    if not config.is_file():
        raise CLIError(f"no such experiment config: {config}")
    with user_errors():
        res = experiment_run(config, out_dir, quiet=quiet, yes=yes)
    failed = len(res.failed) + len(getattr(res, "tuning_failed", []))
    if failed:
        print(f"gradcode: {failed} cell(s) failed; rerun to retry them", file=sys.stderr)
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    results_dir: Path = typer.Argument(..., help="Folder written by `gradcode experiment run`."),
) -> None:
    """Render plots and a self-contained report.html for an experiment's results."""
    from .cli_experiment import report as render

    with user_errors():
        render(results_dir)


@app.command("compare")
def compare_cmd(
    numerator: str = typer.Argument(
        ..., help="RESULTS.csv:SCHEME, e.g. docs/results/decisive_results.csv:pgc_memory"
    ),
    denominator: str = typer.Argument(
        ..., help="RESULTS.csv:SCHEME to divide by (the same tasks, regimes and seeds)."
    ),
    csv: Path = typer.Option(None, "--csv", help="Also write the table to this CSV file."),
) -> None:
    """Paired time-to-target ratios of one scheme over another, cell by cell, across two
    grids' results tables (`gradcode report` writes them: report/<grid>_results.csv)."""
    from .report import paired
    from .report.tables import write_csv

    with user_errors():
        (path_a, scheme_a), (path_b, scheme_b) = paired.side(numerator), paired.side(denominator)
        rows = paired.paired(paired.load(path_a, scheme_a), scheme_a,
                             paired.load(path_b, scheme_b), scheme_b)  # fmt: skip
        name_a, name_b = f"{path_a.stem}:{scheme_a}", f"{path_b.stem}:{scheme_b}"
        print(paired.markdown(rows, name_a, name_b), end="")
        if csv is not None:
            write_csv(csv, rows, paired.COLUMNS)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings as one ``gradcode: warning: ...`` line on stderr."""
    print(f"gradcode: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the app, mapping user mistakes to one line and exit 2."""
    command = typer.main.get_command(app)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            rc = command.main(
                args=list(sys.argv[1:] if argv is None else argv),
                prog_name="gradcode",
                standalone_mode=False,
            )
    except CLIError as exc:
        print(f"gradcode: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.format_message())
            sys.exit(0)
        print(f"gradcode: error: {exc.format_message()} (try --help)", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        print("gradcode: aborted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":
    main()
