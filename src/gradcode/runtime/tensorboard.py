"""TensorBoard output: each round's record as scalars, beside ``rounds.jsonl``.

``gradcode train --tensorboard DIR`` (``gradcode.fit(..., tensorboard=DIR)``)
writes the run's per-round records as TensorBoard scalars into ``DIR``; watch
them while the run trains with ``tensorboard --logdir DIR``.  The writer is
:class:`torch.utils.tensorboard.SummaryWriter`, which needs the optional
``tensorboard`` package (``pip install 'gradcode[tensorboard]'``); without it
the run is refused before it starts (:func:`require`).

:class:`TensorBoardLog` is called with each record, like
:class:`~gradcode.runtime.loop.JsonLinesLog` (the composition root tees the
two: :func:`tee`), and maps it with :func:`scalars`.  The x-axis is the round
(the step of every scalar in ``DIR``):

* ``eval/train_loss``, ``eval/test_accuracy``, ``eval/test_loss``, ... (every
  ``eval_every`` rounds);
* ``round/time`` (the run's clock: virtual time on the local backend, seconds
  on Ray), ``round/duration``, ``round/arrived`` and ``round/late`` (counts),
  ``round/lr``, ``round/epoch``, and any other number a record carries (a
  decoder's statistics, Ray's ``predicted_duration``) as ``round/<name>``;
* ``decode/exact``, ``decode/covered``, ``decode/ready`` (1 or 0),
  ``decode/used`` (messages decoded), ``decode/residual``, ``decode/fallback``
  (1 when the round logged a note: a fallback, a dropped message, a skipped
  step);
* ``staleness/max``, ``staleness/mean``;
* with a scheme that changes during the run (records carrying ``scheme`` and
  ``s``): ``scheme/s``, and ``scheme/switch`` = 1 on a switch round (0
  otherwise) with a text summary ``scheme/switch`` saying from which scheme
  to which and why.

**Time on the x-axis.**  Schemes are compared by accuracy against *time*, not
rounds, and the clock is not TensorBoard's wall time.  So the evaluation
scalars are written a second time into the sub-run ``DIR/clock`` as
``clock/train_loss``, ``clock/test_accuracy``, ... (and ``clock/round``),
with step = the clock x :data:`CLOCK_STEPS` (integer steps: thousandths of a
clock unit, i.e. milliseconds on Ray).  Several runs' ``clock/*`` charts
then line up on one time axis (``tensorboard --logdir`` a parent folder of
several ``DIR``).  Wall times are TensorBoard's own (when each value was
written).

**Fresh runs and resumes.**  Each writer opens with a purge step
(``SummaryWriter(purge_step=...)``): a fresh run purges from step 0, a resumed
run from its checkpoint's round (and clock), so what an interrupted run logged
past its checkpoint (or an earlier run in the same ``DIR``) is hidden, not
shown beside the resumed rounds.  TensorBoard's Python event loader applies
purges (``tensorboard --logdir DIR --load_fast=false``; its
``EventAccumulator`` reads the files back in tests/runtime/test_tensorboard.py);
its default fast loader (TensorBoard 2.21) does not, so after a resume view
with ``--load_fast=false``, and give each run its own ``DIR``.

>>> sorted(scalars({"round": 3, "time": 7.5, "exact": True, "arrived": [0, 2],
...                 "staleness_mean": 0.5, "decoder": "frc", "notes": []}).items())
[('decode/exact', 1.0), ('decode/fallback', 0.0), ('round/arrived', 2.0), \
('round/time', 7.5), ('staleness/mean', 0.5)]
"""

from __future__ import annotations

import json
import numbers
from pathlib import Path

#: Steps per unit of the run's clock in the ``DIR/clock`` sub-run (integer steps).
CLOCK_STEPS = 1000
#: The one-line refusal when the optional dependency is missing (``what``: the option).
MISSING = "{what} needs the tensorboard package: pip install 'gradcode[tensorboard]'"

#: Record field -> tag; lists are written as their length, booleans as 1 or 0.
TAGS = {
    "time": "round/time",
    "duration": "round/duration",
    "arrived": "round/arrived",
    "late": "round/late",
    "lr": "round/lr",
    "epoch": "round/epoch",
    "ready": "decode/ready",
    "exact": "decode/exact",
    "covered": "decode/covered",
    "used": "decode/used",
    "residual": "decode/residual",
    "staleness_max": "staleness/max",
    "staleness_mean": "staleness/mean",
    "s": "scheme/s",
}
#: Fields that are no scalar: the step itself, per-worker lists, names, the switch.
SKIP = {"round", "notes", "worker_times", "worker_load", "decoder", "scheme", "switch",
        "stale_correction", "nonfinite"}  # fmt: skip


def is_eval(key: str) -> bool:
    """Fields of the periodic evaluation: ``train_loss`` and every ``test_*`` metric."""
    return key == "train_loss" or key.startswith("test_")


def scalars(rec: dict) -> dict[str, float]:
    """The scalars of one round's record, tag -> value (see the module docstring)."""
    out: dict[str, float] = {}
    for key, value in rec.items():
        if key in SKIP:
            continue
        if isinstance(value, list | tuple) and key in TAGS:
            out[TAGS[key]] = float(len(value))
        elif isinstance(value, numbers.Real):  # bool, int, float, numpy scalars
            tag = f"eval/{key}" if is_eval(key) else TAGS.get(key, f"round/{key}")
            out[tag] = float(value)
    if "notes" in rec:
        out["decode/fallback"] = float(bool(rec["notes"]))
    if "scheme" in rec or "switch" in rec:
        out["scheme/switch"] = float("switch" in rec)
    return out


def summary_writer():
    """``torch.utils.tensorboard.SummaryWriter``; an ``ImportError`` without the
    ``tensorboard`` package."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter


def require(what: str = "--tensorboard") -> None:
    """Refuse, in one line (``ValueError``), when the ``tensorboard`` package is missing."""
    try:
        summary_writer()
    except ImportError:
        raise ValueError(MISSING.format(what=what)) from None


def clock_step(clock: float) -> int:
    """The integer step of clock value ``clock`` in ``DIR/clock``.

    >>> clock_step(12.3456789)
    12346
    """
    return int(round(clock * CLOCK_STEPS))


class TensorBoardLog:
    """Write each round's record into TensorBoard event files under ``path``.

    ``start_round`` and ``clock``: where a resumed run continues (its checkpoint's
    round and clock; 0 for a fresh run); later events of an earlier run are purged
    from there.  ``config``: the run's configuration, written once as a text summary.
    """

    def __init__(self, path, start_round: int = 0, clock: float = 0.0, config=None) -> None:
        writer = summary_writer()
        path = Path(path)
        self.rounds = writer(str(path), purge_step=int(start_round), flush_secs=10)
        purge = clock_step(clock) + 1 if clock > 0 else 0  # keep the checkpoint's own step
        self.clock = writer(str(path / "clock"), purge_step=purge, flush_secs=10)
        self.scheme: str | None = None
        if config is not None:
            text = json.dumps(config, indent=2, default=str)
            self.rounds.add_text("run/config", f"```\n{text}\n```", int(start_round))

    def __call__(self, rec: dict) -> None:
        t = int(rec["round"])
        for tag, value in scalars(rec).items():
            self.rounds.add_scalar(tag, value, t)
        if "scheme" in rec:
            name = f"{rec['scheme']}/{rec['s']}" if "s" in rec else str(rec["scheme"])
            if name != self.scheme:
                self.rounds.add_text("scheme/name", f"round {t}: {name}", t)
                self.scheme = name
        if "switch" in rec:
            sw = rec["switch"]
            text = f"round {t}: {sw.get('from')} -> {sw.get('to')}: {sw.get('reason', '')}"
            self.rounds.add_text("scheme/switch", text, t)
        evals = {k: v for k, v in rec.items() if is_eval(k) and isinstance(v, numbers.Real)}
        if evals and "time" in rec:
            step = clock_step(rec["time"])
            self.clock.add_scalar("clock/round", float(t), step)
            for key, value in evals.items():
                self.clock.add_scalar(f"clock/{key}", float(value), step)

    def flush(self) -> None:
        self.rounds.flush()
        self.clock.flush()

    def close(self) -> None:
        try:
            self.rounds.close()
        finally:
            self.clock.close()


class Tee:
    """Several logs as one: each record goes to every log, ``close`` closes them all.

    >>> seen = []
    >>> log = Tee(seen.append, None, lambda rec: seen.append(rec["round"]))
    >>> log({"round": 0}); seen
    [{'round': 0}, 0]
    """

    def __init__(self, *logs) -> None:
        self.logs = [log for log in logs if log is not None]

    def __call__(self, rec: dict) -> None:
        for log in self.logs:
            log(rec)

    def close(self) -> None:
        errors = []
        for log in self.logs:
            try:
                if hasattr(log, "close"):
                    log.close()
            except Exception as exc:  # close the others, then raise the first
                errors.append(exc)
        if errors:
            raise errors[0]
