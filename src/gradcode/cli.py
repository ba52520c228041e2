"""The ``gradcode`` command line.

The CLI only parses arguments into library calls and prints results; every
user mistake ends in one ``gradcode: error: ...`` line and exit status 2.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from typer.exceptions import TyperException

from . import __version__
from .codes import REGISTRY, make_code, stateless_names
from .codes.inspect import report, robustness

app = typer.Typer(
    help="Straggler-resilient distributed training with gradient coding.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
codes_app = typer.Typer(help="Inspect the gradient codes.", no_args_is_help=True)
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

out = Console(highlight=False)

#: Bounds of the inspection and reproduction commands' sizes (their cost grows
#: with them; the decoders are tested to 1,000 workers).
MAX_N = 1000
MAX_COUNT = 10**7


class CLIError(Exception):
    """A user mistake: printed as one line, exit status 2."""


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the library's ``ValueError`` (bad user input) and ``OSError`` (a path
    that cannot be read or written) into a :class:`CLIError`."""
    try:
        yield
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        raise CLIError(f"{exc.strerror or exc}{where}") from None


def _out_folder(path: Path | None) -> Path | None:
    """``--out`` callback: the folder must be (or be creatable as) a writable folder."""
    if path is None:
        return None
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise typer.BadParameter(f"{path} exists and is not a folder")
    if not probe.is_dir():
        raise typer.BadParameter(f"cannot create {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise typer.BadParameter(f"{probe} is not writable")
    return path


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        out.print(f"gradcode {__version__}")
        raise typer.Exit(0)


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
        code = make_code(scheme, n, s, rng=np.random.default_rng(seed))
        if REGISTRY[scheme].stateful:
            _show_stateful(code)
            return
        rep = report(code, np.random.default_rng(seed), limit=patterns)
    with np.printoptions(precision=3, suppress=True, linewidth=160):
        out.print(f"[bold]{code.name}[/bold]  n={code.n}  s={code.s}  partitions k={code.k}")
        out.print("encoding matrix B (row = worker, column = partition):")
        out.print(str(code.B), markup=False)
    scope = "all" if rep.exhaustive else "random sample of"
    out.print(f"load: {rep.load} partitions per worker; replication {rep.replication}")
    out.print(
        f"tolerance: {code.s} stragglers, "
        + ("exact by design" if rep.exact_design else "approximate by design")
    )
    out.print(
        f"checked {scope} {rep.patterns_checked} straggler sets of size {code.s}: "
        + ("all decode exactly" if rep.all_exact else f"worst residual {rep.worst_residual:.3g}")
    )
    out.print(
        f"worst conditioning: cond(B_K) = {rep.worst_cond:.3g}, "
        f"max |a_i| = {rep.worst_max_weight:.3g}"
    )


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
    for name in stateless_names():
        with user_errors():
            try:
                code = make_code(
                    name, n, 0 if name == "dgd" else s, rng=np.random.default_rng(seed)
                )
            except ValueError as exc:
                out.print(f"[dim]{name}: skipped ({exc})[/dim]")
                continue
            for k in (s, min(s + 1, n - 1)):
                row = robustness(code, k, np.random.default_rng(seed + k), trials)
                table.add_row(
                    name,
                    str(code.load),
                    str(k),
                    f"{row.exact_fraction:.1%}",
                    f"{row.mean_residual:.3f}",
                    "n/a" if np.isnan(row.worst_cond) else f"{row.worst_cond:.3g}",
                )
    out.print(table)


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
    from .experiments.tandon2017 import Tandon2017Config, run

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
    from .experiments.ramamoorthy2024 import config_from_options, run

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


def _show_stateful(scheme) -> None:
    """Placement and the per-round rotation of a pipelined scheme."""
    if getattr(scheme, "sequential", False):
        return _show_sequential(scheme)
    if getattr(scheme, "chunked", False):
        return _show_chunked(scheme)
    out.print(f"[bold]{scheme.name}[/bold]  n={scheme.n}  s={scheme.s}  partitions k={scheme.k}")
    with np.printoptions(precision=3, suppress=True, linewidth=160):
        out.print("placement (row = worker, column = partition stored):")
        out.print(str(scheme.B), markup=False)
    r = scheme.s + 1
    out.print(f"partition computed in round t (steady state, rounds 0..{r - 1}):")
    for w in range(scheme.n):
        plan = [scheme.rotation(w, t)[0] for t in range(r)]
        out.print(f"  worker {w:>3}: {plan}")
    out.print(
        f"load: 1 partition per worker per round ({len(scheme.placement[0])} in the warm-up); "
        f"staleness cap {scheme.staleness_cap} rounds"
    )


def _show_sequential(scheme) -> None:
    inner = scheme.code
    out.print(
        f"[bold]{scheme.name}[/bold]  n={scheme.n}  lambda={scheme.s}  B={scheme.B}  "
        f"W={scheme.W}  partitions k={scheme.k}"
    )
    out.print(
        f"inner code: {inner.name} tolerating s'={scheme.s_code} per round; every job decodes "
        f"exactly within T={scheme.delay} rounds under any (B, W, lambda) pattern"
    )
    with np.printoptions(precision=3, suppress=True, linewidth=160):
        out.print("encoding matrix B (row = worker, column = partition):")
        out.print(str(inner.B), markup=False)
    out.print(
        f"load: {scheme.load} partitions per worker per round "
        f"(plain GC for lambda={scheme.s} stragglers: {scheme.s + 1})"
    )


def _show_chunked(scheme) -> None:
    from .codes.ordering import qmax, qmax_lower_bound

    if hasattr(scheme, "describe"):  # e.g. tandon_partial
        for line in scheme.describe():
            out.print(line, markup=False)
        return
    out.print(
        f"[bold]{scheme.name}[/bold]  n={scheme.n}  s={scheme.s}  l={scheme.l}  "
        f"delta={scheme.delta}  chunks N={scheme.k}"
    )
    out.print("processing order (row = worker, chunks in the order it computes them):")
    for w, order in enumerate(scheme.placement):
        out.print(f"  worker {w:>3}: {list(order)}")
    q = qmax(scheme.assignment, scheme.l)
    line = f"load: {scheme.load} chunks per worker per round; Qmax {q:g}"
    if scheme.l == 1:
        line += f" (lower bound {qmax_lower_bound(scheme.n, scheme.delta)})"
    out.print(line)


@app.command("train")
def train_cmd(
    scheme: str = typer.Option("pgc", "--scheme", help="Scheme (see `gradcode codes list`)."),
    workers: int = typer.Option(12, "--workers", "-n", help="Number of workers n."),
    stragglers: int = typer.Option(2, "--stragglers", "-s", help="Stragglers to tolerate s."),
    delay: str = typer.Option(
        "shifted-exp",
        "--delay",
        help="Delay model: shifted-exp[:a=1,mu=1], pause:..., "
        "pareto:alpha=2.5, trace:path=FILE.csv.",
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
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd or adam."),
    momentum: float = typer.Option(0.0, "--momentum"),
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
        help="Continue the run in OUT from its checkpoint; only --rounds (upward), "
        "--eval-every, --checkpoint-every and --address may differ from the run's config.json.",
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
) -> None:
    """Train a model with a straggler-resilient scheme (one JSON line per round)."""
    from .runtime.config import DelaySpec, RunConfig
    from .runtime.loop import TrainingStopped
    from .runtime.run import build_scheme, run

    with user_errors():
        cfg = RunConfig(
            scheme=scheme,
            workers=workers,
            stragglers=stragglers,
            dataset=dataset,
            model=model,
            partitioning=partitioning,
            delay=DelaySpec(delay, persistent, bursty, crash),
            rounds=rounds,
            optimizer=optimizer,
            lr=lr,
            momentum=momentum,
            deadline=deadline,
            seed=seed,
            backend=backend,
            device=device,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            on_undecodable=on_undecodable,
            data_dir=data_dir,
            verify=not no_verify,
            address=address,
            time_scale=time_scale,
            scheme_options=_scheme_options(scheme, scheme_opt),
            batch_size=batch_size,
            dtype=dtype,
            threads=threads,
            lr_schedule=lr_schedule,
            target_accuracy=target_accuracy,
            stale_correction=stale_correction,
        )
        cfg.delay.build()  # validate before starting anything
        build_scheme(cfg)
        try:
            with _progress(rounds, quiet) as advance:
                result = run(cfg, out_dir, resume=resume, progress=advance)
        except TrainingStopped as exc:
            raise CLIError(f"training stopped: {exc} (checkpoint in {out_dir})") from None
    fin = result.final()
    out.print(
        f"{cfg.scheme}: {result.rounds} rounds, time {result.wall_clock:.2f}, "
        f"train loss {fin.get('train_loss', float('nan')):.4f}, "
        f"test accuracy {fin.get('test_accuracy', float('nan')):.3f} -> {out_dir}"
    )


def _scheme_options(scheme: str, items: list[str] | None) -> tuple[tuple[str, object], ...]:
    """``--scheme-opt key=value`` items, typed by the scheme's constructor signature."""
    from .runtime.config import _number, typed_options

    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--scheme-opt expects key=value, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    if scheme not in REGISTRY:  # the unknown scheme is reported by make_scheme
        return tuple((k, _number(v)) for k, v in pairs)
    with user_errors():
        what = f"--scheme-opt for {scheme}"
        return typed_options(pairs, REGISTRY[scheme].factory, what, skip=("n", "s", "rng"))


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
                last.update(loss=rec["train_loss"], acc=rec["test_accuracy"])
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
    from .experiments.demo import DemoConfig, run_demo

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
    from .experiments.pgc import PGCStudyConfig, run

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
) -> None:
    """Run (or resume) an experiment grid; finished cells are skipped.

    Exit status 1 when any cell (or tuning run) failed; the others still ran, rerun to retry.
    """
    from .cli_experiment import experiment_run

    if not config.is_file():
        raise CLIError(f"no such experiment config: {config}")
    with user_errors():
        res = experiment_run(config, out_dir, quiet=quiet)
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
