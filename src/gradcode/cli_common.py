"""What every ``gradcode`` command shares: the console, size bounds, one-line errors,
the output-folder check.

Commands raise :class:`CLIError` for a user mistake; :func:`gradcode.cli.main`
prints it as one ``gradcode: error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console

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


def out_folder(path: Path | None) -> Path | None:
    """``--out`` (and ``--tensorboard``) callback: the folder must be (or be creatable as)
    a writable folder."""
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
