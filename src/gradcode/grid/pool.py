"""Running cells: in this process or in a pool of worker processes that die with the grid.

:func:`execute` runs a list of ``(cell, RunConfig)`` pairs (``kind="run"``: train,
:func:`run_cell`; ``"sketch"``: replay, :func:`gradcode.grid.reuse.write_sketch`;
:data:`JOBS` maps a kind to its function) in ``jobs`` spawned processes with
one torch thread each, yielding ``(cell, (status, error, seconds))`` as cells
finish.  With ``jobs > 1`` the pool's workers exit when the grid's process dies
(even by ``kill -9``), so no cell keeps running as an orphan; Ctrl-C stops the
running cells.  :class:`Progress` is the rich progress bar.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress

from ..runtime import run as run_module
from ..runtime.config import RunConfig
from ..runtime.ray import RayActorPool
from . import reuse
from .results import schedule_digest


def run_cell(rc: RunConfig, run_dir: Path, actor_pool=None) -> tuple[str, str, float]:
    """Run one cell into ``run_dir``; never raises.  Returns (status, error, seconds).
    ``actor_pool``: a :class:`~gradcode.runtime.ray.RayActorPool` shared by Ray cells."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    err_file = run_dir / "error.txt"
    t0 = time.perf_counter()
    try:
        run_module.run(rc, run_dir, actor_pool=actor_pool, overwrite=True)
    except Exception as exc:  # one failing cell must not stop the grid
        err_file.write_text(traceback.format_exc())
        return "error", f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    if err_file.exists():
        err_file.unlink()
    (run_dir / "cell.json").write_text(
        json.dumps({"seconds": seconds, "schedule_digest": schedule_digest(rc)}, allow_nan=False)
    )
    return "ok", "", seconds


def _pool_init(parent: int) -> None:  # pragma: no cover - runs in worker processes
    torch.set_num_threads(1)
    _exit_with_parent(parent)


def _exit_with_parent(parent: int, poll: float = 0.5) -> None:
    """Make this worker process die when the grid's process ``parent`` dies.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` kills it at once.  Everywhere: a
    daemon thread polls ``os.getppid()`` and exits when the worker has been
    re-parented (so even ``kill -9`` of the grid leaves no orphan running cells).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _pool_run(rc: RunConfig, run_dir: str) -> tuple[str, str, float]:  # pragma: no cover
    return run_cell(rc, Path(run_dir))


def _pool_sketch(rc: RunConfig, path: str) -> tuple[str, str, float]:  # pragma: no cover
    return reuse.write_sketch(rc, Path(path + ".npz"))


#: How each kind of job runs one cell: ``(RunConfig, path) -> (status, error, seconds)``.
JOBS = {"run": _pool_run, "sketch": _pool_sketch}


def execute(todo: list[tuple], runs: Path, jobs: int, kind: str = "run") -> Iterable:
    """Run (``kind="run"``) or replay (``"sketch"``) the ``(cell, RunConfig)`` pairs in
    ``todo`` into ``runs/<cell id>``, in ``jobs`` processes; yields ``(cell, outcome)``."""
    if jobs <= 1 or len(todo) <= 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: intra-op threads only add contention
        actors = RayActorPool()  # Ray cells in a row start their worker actors once
        try:
            for c, rc in todo:
                if kind == "run" and rc.backend == "ray":
                    yield c, run_cell(rc, runs / c.cell_id, actors)
                else:
                    yield c, JOBS[kind](rc, str(runs / c.cell_id))
        finally:
            actors.close()
            torch.set_num_threads(threads)
        return
    ctx = mp.get_context("spawn")  # no fork after torch threads exist
    pool = ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_pool_init, initargs=(os.getpid(),)
    )
    try:
        fn = JOBS[kind]
        futs = {pool.submit(fn, rc, str(runs / c.cell_id)): c for c, rc in todo}
        for fut in as_completed(futs):
            c = futs[fut]
            try:
                out = fut.result()
            except Exception as exc:  # e.g. a worker process died
                (runs / c.cell_id).mkdir(parents=True, exist_ok=True)
                (runs / c.cell_id / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
                out = ("error", f"{type(exc).__name__}: {exc}", 0.0)
            yield c, out
    except BaseException:  # Ctrl-C, or the caller stopped early: stop the cells now
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in workers:
            proc.terminate()
        raise
    pool.shutdown(wait=True)


class Progress:
    """A rich progress bar over the grid, or a callable hook, or nothing."""

    def __init__(self, progress, total: int, done: int, label: str = "cells") -> None:
        self.progress, self.total, self.done = progress, total, done
        self.label = label
        self.bar = None

    def __enter__(self):
        if self.progress is True:
            self.bar = RichProgress(
                TextColumn(self.label),
                MofNCompleteColumn(),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.bar.__enter__()
            self.task = self.bar.add_task("grid", total=self.total, completed=self.done, info="")
        return self._report

    def _report(self, cell, status: str, failed: int) -> None:
        if self.bar is not None:
            info = f"{cell.cell_id} {status}" + (f" ({failed} failed)" if failed else "")
            self.bar.update(self.task, advance=1, info=info)
        elif callable(self.progress):
            self.progress(cell, status)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)


__all__ = ["JOBS", "Progress", "execute", "run_cell"]
