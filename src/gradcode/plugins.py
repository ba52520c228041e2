"""Registries for user-defined datasets and models (:mod:`gradcode.datasets`, :mod:`.models`).

Two ways to add a name that CLI runs and TOML grids accept:

* from Python, in the process that trains: ``gradcode.register_dataset(name, loader)`` or
  ``gradcode.register_model(name, factory)``;
* for ``gradcode`` commands (and every process of a grid), an *entry point* in the
  installed package that holds your code, e.g. in its ``pyproject.toml``::

      [project.entry-points."gradcode.datasets"]
      my_data = "my_package.data:load"

      [project.entry-points."gradcode.models"]
      my_net = "my_package.nets:build"

  then ``pip install -e .``; ``gradcode train --dataset my_data --model my_net`` finds
  them.  An entry point is imported only when its name is used.

A registered callable is called with the keyword arguments it names among those
offered (a dataset loader: ``rng``, ``data_dir``, ``test_fraction``, ``verify``;
a model factory: ``input_shape``, ``n_classes``, ``rng``), so
``def load(rng): ...`` is a valid loader.

    >>> call_accepting(lambda rng, n=1: (rng, n), rng=5, data_dir=None)
    (5, 1)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from importlib import metadata

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


def call_accepting(fn: Callable, **offered):
    """Call ``fn`` with those of ``offered`` that it accepts (all of them for ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: offer everything
        return fn(**offered)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return fn(**offered)
    return fn(**{k: v for k, v in offered.items() if k in params})


class Registry:
    """Names -> callables, with built-in names reserved and entry points loaded lazily."""

    def __init__(self, kind: str, group: str, builtin: tuple[str, ...]) -> None:
        self.kind, self.group, self.builtin = kind, group, builtin
        self._entries: dict[str, Callable] = {}

    def register(self, name: str, fn: Callable, *, replace: bool = False) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must be a plain identifier, got {name!r}")
        if not callable(fn):
            raise ValueError(f"{self.kind} {name!r}: expected a callable, got {type(fn).__name__}")
        if name in self.builtin:
            raise ValueError(f"{self.kind} {name!r} is built in; choose another name")
        if name in self._entries and self._entries[name] is not fn and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True)")
        self._entries[name] = fn

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _entry_points(self) -> dict[str, metadata.EntryPoint]:
        return {ep.name: ep for ep in metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """Built-in names, then registered ones, then installed entry points (sorted)."""
        extra = sorted((set(self._entries) | set(self._entry_points())) - set(self.builtin))
        return list(self.builtin) + extra

    def get(self, name: str) -> Callable | None:
        """The callable registered as ``name`` (loading its entry point), or None."""
        if name in self._entries:
            return self._entries[name]
        ep = self._entry_points().get(name)
        if ep is None:
            return None
        try:
            fn = ep.load()
        except Exception as exc:  # a broken plugin is the user's one-line error
            raise ValueError(
                f"{self.kind} {name!r}: entry point {ep.value!r} failed to load: {exc}"
            ) from None
        if not callable(fn):
            raise ValueError(f"{self.kind} {name!r}: entry point {ep.value!r} is not callable")
        self._entries[name] = fn
        return fn
