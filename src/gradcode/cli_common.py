"""What every ``gradcode`` command shares: the console, size bounds, one-line errors.

Commands raise :class:`CLIError` for a user mistake; :func:`gradcode.cli.main`
prints it as one ``gradcode: error: ...`` line and exits with status 2.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
