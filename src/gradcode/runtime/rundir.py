"""A run folder belongs to one run: its lock, its ownership rule and its only writer.

A run writes :data:`RUN_FILES` into its folder: ``config.json``,
``rounds.jsonl``, ``summary.json``, ``model.pt`` and ``checkpoint.pt``.  Three
rules keep two runs from ever mixing there:

1. **One run at a time.**  :meth:`RunFolder.claim` holds an exclusive
   ``fcntl.flock`` on ``.gradcode.lock`` in the folder for the whole run; a
   second run into a held folder is refused in one line.  The kernel drops
   the lock when the process dies (``kill -9`` included), so a crashed run
   never leaves the folder locked.
2. **A fresh run never lands on another run's files.**  A folder holding any
   run file is refused unless the caller says ``overwrite`` (``--overwrite``,
   ``fit(..., overwrite=True)``), which first deletes *every* run file of the
   old run -- the checkpoint too, so a later ``--resume`` cannot continue the
   old run.  Files that are not run files (yours, a grid's ``cell.json``)
   are left alone.
3. **Resuming validates before touching.**  The whole checkpoint and the log
   are checked (:mod:`gradcode.runtime.resume`) before any file changes; then
   log lines past the checkpoint are dropped and the old run's
   ``summary.json`` / ``model.pt`` removed (they are rewritten at the end).

Every file is written atomically (temporary file + rename), ``rounds.jsonl``
line by line, flushed.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:  # doctest: +ELLIPSIS
...     folder = RunFolder(d)
...     with folder.claim():
...         with RunFolder(d).claim():
...             pass
Traceback (most recent call last):
...
gradcode.runtime.rundir.FolderInUse: ... is in use by another gradcode run; wait for it ...
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from .checkpoint import (
    atomic_torch_save,
    atomic_write_text,
    dumps_strict,
    load_checkpoint,
    strict,
)
from .config import RunConfig
from .loop import JsonLinesLog, read_json_lines
from .resume import check_checkpoint, check_log, check_resume

#: The files a run writes into its folder (and ``overwrite`` deletes).
RUN_FILES = ("config.json", "rounds.jsonl", "summary.json", "model.pt", "checkpoint.pt")
#: The lock file held for the whole run (never deleted: see :meth:`RunFolder.claim`).
LOCK = ".gradcode.lock"


class FolderInUse(ValueError):
    """Another run holds the folder's lock."""


def check_out_folder(path, what: str = "out") -> Path:
    """``path`` as a :class:`~pathlib.Path` that is, or can be created as, a writable
    folder; a one-line ``ValueError`` naming ``what`` otherwise (touches nothing).

    >>> check_out_folder("/dev/null")
    Traceback (most recent call last):
    ...
    ValueError: out: /dev/null exists and is not a folder
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"{what} must be a folder path (str or Path), got {type(path).__name__}")
    if str(path).strip() == "" or "\x00" in str(path):
        raise ValueError(f"{what} must be a folder path, got {str(path)!r}")
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe == path and not path.is_dir():
        raise ValueError(f"{what}: {path} exists and is not a folder")
    if not probe.is_dir():
        raise ValueError(f"{what}: cannot create {path}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: {probe} is not writable")
    return path


class RunFolder:
    """The folder of one run: checks, lock, and the writes (see the module docstring)."""

    def __init__(self, path) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / "checkpoint.pt"
        self.log = self.path / "rounds.jsonl"

    # ------------------------------------------------------------ reading

    def run_files(self) -> list[Path]:
        """Run files present, with leftover temporary files of interrupted writes."""
        if not self.path.is_dir():
            return []
        found = [self.path / n for n in RUN_FILES if (self.path / n).exists()]
        for name in RUN_FILES:
            found += sorted(self.path.glob(f".{name}.*.tmp"))
        return found

    def precheck(self, cfg: RunConfig, resume: bool, overwrite: bool) -> None:
        """Refusals that need no lock and create nothing (the folder may not exist):
        resuming a folder without this run's ``config.json`` or a checkpoint, or
        starting afresh on another run's files without ``overwrite``."""
        if resume:
            check_resume(cfg, self.path)
            if not self.checkpoint.is_file():
                raise ValueError(
                    f"--resume: no checkpoint in {self.path} (the run saved none: "
                    "--checkpoint-every 0?)"
                )
        elif not overwrite:
            self.refuse_foreign()

    def refuse_foreign(self) -> None:
        files = self.run_files()
        if files:
            names = ", ".join(sorted({p.name for p in files}))
            raise ValueError(
                f"{self.path} holds another run ({names}); pass --overwrite "
                "(overwrite=True) to delete it and start afresh, or --resume to continue it"
            )

    # ------------------------------------------------------------ the lock

    @contextlib.contextmanager
    def claim(self) -> Iterator[RunFolder]:
        """Create the folder and hold its lock for the block (one run at a time)."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FolderInUse(
                    f"{self.path} is in use by another gradcode run; wait for it to end "
                    "or choose another output folder"
                ) from None
            try:
                yield self
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    # ------------------------------------------------------------ starting (lock held)

    def start_fresh(self, cfg: RunConfig, overwrite: bool) -> None:
        """Refuse another run's files (or delete them all with ``overwrite``); write
        ``config.json``."""
        if overwrite:
            for p in self.run_files():
                p.unlink(missing_ok=True)
        self.refuse_foreign()  # again, under the lock: another run may have finished here
        self.write_config(cfg)

    def start_resume(self, cfg: RunConfig, expect: dict, map_location=None) -> dict:
        """Validate config, checkpoint and log (nothing touched on refusal), then drop
        log lines past the checkpoint and the old outputs; return the checkpoint.

        ``expect``: the keyword arguments of
        :func:`~gradcode.runtime.resume.check_checkpoint` but ``path``.
        """
        check_resume(cfg, self.path)
        ck = load_checkpoint(self.checkpoint, map_location=map_location)
        check_checkpoint(ck, path=self.checkpoint, **expect)
        records = read_json_lines(self.log) if self.log.is_file() else None
        check_log(records, ck["history"], self.log)
        # -- every check passed: from here on the folder changes
        keep = (records or [])[: ck["round"]]
        atomic_write_text(self.log, "".join(json.dumps(rec) + "\n" for rec in keep))
        for name in ("summary.json", "model.pt"):
            (self.path / name).unlink(missing_ok=True)
        self.write_config(cfg)
        return ck

    # ------------------------------------------------------------ writing

    def write_config(self, cfg: RunConfig) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(asdict(cfg), indent=2, default=str))

    def open_log(self, append: bool) -> JsonLinesLog:
        return JsonLinesLog(self.log, mode="a" if append else "w")

    def finish(self, summary: dict, state_dict: dict | None) -> None:
        """Write ``summary.json`` and (when there are weights) ``model.pt``."""
        atomic_write_text(self.path / "summary.json", dumps_strict(strict(summary), indent=2))
        if state_dict is not None:
            atomic_torch_save(state_dict, self.path / "model.pt")
