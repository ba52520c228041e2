"""The ``gradcode train`` line that reproduces one grid cell: the ``command`` column.

Every row of a grid's ``results.csv`` (and of the report's
``<grid>_results.csv``) carries ``command``, a shell line that trains that cell
on its own, on the local backend, with the virtual clock::

    >>> from gradcode.runtime.config import DelaySpec, RunConfig
    >>> rc = RunConfig(scheme="frc", workers=6, stragglers=2, rounds=12, lr=0.5,
    ...                delay=DelaySpec("shifted-exp:a=1,mu=1", persistent="k=1,kappa=5"))
    >>> print(train_command(rc, "out/cell"))  # doctest: +NORMALIZE_WHITESPACE
    gradcode train --scheme frc --workers 6 --stragglers 2 --dataset breast_cancer
      --model logreg --partitioning iid --delay shifted-exp:a=1,mu=1 --persistent k=1,kappa=5
      --rounds 12 --optimizer sgd --lr 0.5 --momentum 0.0 --seed 0 --eval-every 10
      --stale-correction none --backend local --out out/cell

What it holds.  Every option that decides the trajectory or the clock is
written out, even at its default, so the line does not depend on the CLI's
defaults: scheme, ``n``, ``s``, dataset, model, partitioning, the delay spec
and its wrappers, rounds, optimizer, learning rate, momentum, seed, evaluation
period, stale-gradient correction; the rest (minibatch, weight decay, deadline,
accuracy target, learning-rate schedule, dtype, threads, scheme options, data
folder, ``--no-verify``, ``--on-undecodable``) when the cell sets them.
Floats are written with :func:`repr`, which reads back to the same float.

Ray cells get the local line too (``--backend local``; ``--time-scale`` and
``--address`` dropped): the local run reproduces the cell's trajectory and its
simulated clock, not the wall clock a Ray run measures.  A re-timed cell
(:mod:`gradcode.grid.reuse`) gets its own line, which trains it for real.

The line parses back into the cell's :class:`~gradcode.runtime.config.RunConfig`
(``tests/grid/test_command.py`` parses it with the CLI's own parser and
:func:`gradcode.cli_common.train_config`).  A setting the CLI cannot express
(``clip_grad_norm``) is a :class:`ValueError`.
"""

from __future__ import annotations

import shlex
from dataclasses import replace

from ..runtime.config import RunConfig

#: (RunConfig field, option) written on every line.
ALWAYS = (
    ("scheme", "--scheme"),
    ("workers", "--workers"),
    ("stragglers", "--stragglers"),
    ("dataset", "--dataset"),
    ("model", "--model"),
    ("partitioning", "--partitioning"),
)
#: Written after the delay spec, on every line.
ALWAYS_AFTER = (
    ("rounds", "--rounds"),
    ("optimizer", "--optimizer"),
    ("lr", "--lr"),
    ("momentum", "--momentum"),
    ("seed", "--seed"),
    ("eval_every", "--eval-every"),
    ("stale_correction", "--stale-correction"),
)
#: Written when they differ from the RunConfig default.
WHEN_SET = (
    ("batch_size", "--batch-size"),
    ("weight_decay", "--weight-decay"),
    ("deadline", "--deadline"),
    ("target_accuracy", "--target-accuracy"),
    ("lr_schedule", "--lr-schedule"),
    ("on_undecodable", "--on-undecodable"),
    ("dtype", "--dtype"),
    ("threads", "--threads"),
    ("device", "--device"),
    ("data_dir", "--data-dir"),
)


def local_config(rc: RunConfig) -> RunConfig:
    """``rc`` on the local backend (what :func:`train_command` reproduces)."""
    return replace(rc, backend="local", time_scale=None, address=None, checkpoint_every=0)


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return "+".join(_text(v) for v in value)
    return str(value)


def train_args(rc: RunConfig, out: str) -> list[str]:
    """The arguments after ``gradcode`` (``["train", "--scheme", ...]``) for ``rc``."""
    if rc.clip_grad_norm is not None:
        raise ValueError("clip_grad_norm has no gradcode train option; the cell has no command")
    default = RunConfig()
    args = ["train"]
    for name, opt in ALWAYS:
        args += [opt, _text(getattr(rc, name))]
    args += ["--delay", rc.delay.base]
    for name in ("persistent", "bursty", "crash"):
        if getattr(rc.delay, name) is not None:
            args += [f"--{name}", getattr(rc.delay, name)]
    for name, opt in ALWAYS_AFTER:
        args += [opt, _text(getattr(rc, name))]
    for name, opt in WHEN_SET:
        value = getattr(rc, name)
        if value is not None and value != getattr(default, name):
            args += [opt, _text(value)]
    for key, value in rc.scheme_options:
        args += ["--scheme-opt", f"{key}={_text(value)}"]
    if not rc.verify:
        args.append("--no-verify")
    return [*args, "--backend", "local", "--out", str(out)]


def train_command(rc: RunConfig, out: str) -> str:
    """The shell line ``gradcode train ...`` that trains ``rc`` locally into ``out``."""
    return shlex.join(["gradcode", *train_args(rc, out)])


__all__ = ["local_config", "train_args", "train_command"]
