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

from .codes import BUILDER_ARGUMENTS, scheme_info

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


def train_config(params: dict):
    """The :class:`~gradcode.runtime.config.RunConfig` of ``gradcode train``'s parsed
    options (``params``: the click context's ``params``).

    Options named like a ``RunConfig`` field are that field; the rest are
    translated (``--delay`` and its wrappers, ``--no-verify``, ``--scheme-opt``,
    ``--tensorboard``).
    The grid's ``command`` column (:mod:`gradcode.grid.command`) is checked
    against this function: a cell's command parses back into the cell's config.
    """
    from dataclasses import fields

    from .runtime.config import DelaySpec, RunConfig

    translated = {"delay", "verify", "scheme_options", "tensorboard"}
    named = {f.name for f in fields(RunConfig)} - translated
    p = params
    tb = p.get("tensorboard")
    return RunConfig(
        **{name: p[name] for name in named & p.keys()},
        delay=DelaySpec(p["delay"], p.get("persistent"), p.get("bursty"), p.get("crash")),
        verify=not p.get("no_verify", False),
        scheme_options=scheme_options(p["scheme"], p.get("scheme_opt")),
        tensorboard=None if tb is None else str(tb),
    )


def scheme_options(scheme: str, items: list[str] | None) -> tuple[tuple[str, object], ...]:
    """``--scheme-opt key=value`` items, typed by the scheme's constructor signature
    (``--scheme auto`` takes none: the run refuses them in one line)."""
    from .runtime.config import typed_options

    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--scheme-opt expects key=value, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    if scheme == "auto":
        return tuple(pairs)
    with user_errors():
        info = scheme_info(scheme)  # an unknown scheme: one line naming the known ones
        what = f"--scheme-opt for {scheme}"
        return typed_options(pairs, info.factory, what, skip=BUILDER_ARGUMENTS)
