"""Timing every candidate ``(scheme, s)`` on the user's cluster: trace replay or model draws.

A :class:`Timing` source holds what the advisor knows about the cluster:

* ``measured`` -- measured worker times as a long-format trace
  (:class:`~gradcode.stragglers.LoadTrace`: time at each measured load; a
  single-load table becomes one with time ∝ load, :func:`~.core.as_measured`);
* ``model`` -- a delay model to draw rounds from: the user's ``--delay`` spec,
  or the clock model fitted to the measurements
  (:func:`~gradcode.stragglers.fit_clock`) for rounds beyond the measured ones.

:func:`time_candidate` gives one candidate's round times by the rules of
:mod:`gradcode.clock`: the measured rounds are replayed exactly (every block
of ``n`` trace workers, :func:`gradcode.clock.replay`), further rounds are
drawn from the model (:func:`gradcode.clock.model_mean`'s draws), and the
estimate says which was used.

>>> import numpy as np
>>> from gradcode.codes import make_code
>>> from gradcode.stragglers import LoadTrace
>>> t = LoadTrace(np.tile([1.0, 1.2], (1, 4, 1)) * [[[1], [1], [1], [3]]], loads=(1.0, 2.0))
>>> est = time_candidate(make_code("frc", 4, 1), Timing(measured=t))
>>> est.times.tolist(), est.how
([1.2], 'replay: 1 measured round (1 block of 4 workers)')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..clock import replay, round_times
from ..codes import REGISTRY
from ..sim import simulate
from ..stragglers import DelayModel, LoadTrace

#: Worker-rounds drawn per candidate from a model when no round count is given.
MODEL_CELLS = 200_000
#: Bounds of the default number of model rounds.
MODEL_ROUNDS = (200, 20_000)


@dataclass(frozen=True)
class Timing:
    """What candidates are timed on (module docstring).

    Attributes:
        measured: measured worker times, replayed exactly (``None``: none).
        model: a delay model for rounds beyond the measured ones, or for all
            rounds when there are no measurements.
        rounds: rounds per candidate (``None``: every measured round; with
            only a model, ``MODEL_CELLS / n`` within ``MODEL_ROUNDS``).
        message_bytes: message size fed to a model with a communication part.
        master: seconds added to every round (the master's receive/decode,
            or a runtime's measured per-round overhead).
        seed: seeds the model draws and randomised constructions (CRC).
    """

    measured: LoadTrace | None = None
    model: DelayModel | None = None
    rounds: int | None = None
    message_bytes: float | None = None
    master: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.measured is None and self.model is None:
            raise ValueError("nothing to time the schemes on: give measured times or a model")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")
        if not (np.isfinite(self.master) and self.master >= 0):
            raise ValueError(f"master time must be a finite number >= 0, got {self.master}")

    @property
    def workers(self) -> int | None:
        """Workers measured (``None``: no measurements)."""
        return None if self.measured is None else self.measured.workers

    def measured_rounds(self, n: int) -> int:
        """Rounds a block replay gives at ``n`` workers (0: no usable measurements)."""
        W = self.workers
        if W is None or W < n:
            return 0
        return self.measured.table.shape[0] * (W // n)

    def model_for_run(self) -> DelayModel | None:
        if self.model is None or self.message_bytes is None:
            return self.model
        return self.model.with_message_bytes(self.message_bytes)


@dataclass(frozen=True)
class Estimate:
    """One candidate's round times and how they were obtained."""

    times: np.ndarray
    how: str
    measured_rounds: int
    model_rounds: int


def _plural(k: int, word: str) -> str:
    return f"{k} {word}{'' if k == 1 else 's'}"


def time_candidate(code, timing: Timing) -> Estimate:
    """Round times of ``code``: measured rounds replayed, then model draws (module docstring)."""
    n = code.n
    have = timing.measured_rounds(n)
    want = timing.rounds if timing.rounds is not None else have
    if want == 0:  # model only
        want = int(np.clip(MODEL_CELLS // n, *MODEL_ROUNDS))
    parts, how = [], []
    used = 0
    if have:
        t = replay(code, timing.measured, blocks=True)[:want]
        used = t.size
        parts.append(t + timing.master)
        blocks = timing.workers // n
        how.append(
            f"replay: {_plural(used, 'measured round')} ({_plural(blocks, 'block')} of {n} workers)"
        )
    extra = want - used
    if extra > 0:
        model = timing.model_for_run()
        if model is None:
            raise ValueError(
                f"{extra} rounds beyond the {used} measured need a model to draw from "
                "(the clock model fitted to them, which failed here, or give one)"
            )
        rng = np.random.default_rng(timing.seed)
        times = round_times(code, _worker_times(code, model, extra, rng))
        parts.append(times + model.master_time + timing.master)
        how.append(f"model: {_plural(extra, 'drawn round')}")
    return Estimate(np.concatenate(parts), " + ".join(how), used, max(extra, 0))


def _worker_times(code, model: DelayModel, rounds: int, rng) -> np.ndarray:
    """Per-worker times (per chunk for chunked schemes) at the scheme's load, drawn as the
    simulator draws them."""
    if getattr(code, "chunked", False):
        width = max(len(p) for p in code.placement)
        return model.chunk_times(rng, rounds, code.n, width, getattr(code, "chunk_load", 1.0))
    return model.sample(rng, rounds, code.n, load=code.load)


def mean_residual(name: str, code, timing: Timing, rounds: int = 200) -> float | None:
    """Mean decoding residual ``||a B - 1||`` of an approximate one-matrix code over at most
    ``rounds`` rounds (the first ``n`` measured workers, else model draws); ``None`` for exact
    or stateful schemes."""
    info = REGISTRY[name]
    if info.exact or info.stateful:
        return None
    if timing.measured_rounds(code.n):
        R = min(rounds, timing.measured_rounds(code.n) // max(timing.workers // code.n, 1))
        T = timing.measured.sample(None, R, code.n, load=code.load)
    else:
        T = _worker_times(code, timing.model_for_run(), rounds, np.random.default_rng(timing.seed))
    res = simulate(code, T)
    ok = res.decodable
    return round(float(res.residual[ok].mean()), 6) if ok.any() else None
