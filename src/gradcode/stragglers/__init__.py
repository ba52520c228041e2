"""Seeded straggler models: each worker's time per (round, worker[, chunk]), and faults.

Every model is a :class:`DelayModel`: ``sample(rng, rounds, n, load)`` gives
``(rounds, n)`` finishing times of workers that compute ``load`` partitions
(``inf`` = never reports), ``chunk_times`` the per-chunk times of streaming
schemes.  Random draws never depend on the load, so one seed gives every scheme
the same straggler schedule.

* :mod:`.models` -- parametric models linear in load (shifted exponential,
  additive pause, Pareto) and the wrappers (persistent slow workers, bursty
  Markov stragglers, crashes), which compose with every base model;
* :mod:`.traces` -- measured traces: the wide table (time ∝ load) and the long
  table ``round,worker,load,seconds`` (measured load dependence);
* :mod:`.parts` -- the clock model with parts: latency + load x compute +
  message bytes / bandwidth + a per-round common shift + rare stalls;
* :mod:`.fit` -- fitting the parts model to a long-format trace.
"""

from .fit import ClockFit, ClockSamples, fit_clock
from .models import (
    AdditivePause,
    Bursty,
    CrashStop,
    DelayModel,
    Pareto,
    PersistentSlow,
    ShiftedExponential,
)
from .parts import ClockModel, Stall, read_model, write_model
from .traces import LoadTrace, TraceReplay, read_trace

__all__ = [
    "AdditivePause",
    "Bursty",
    "ClockFit",
    "ClockModel",
    "ClockSamples",
    "CrashStop",
    "DelayModel",
    "LoadTrace",
    "Pareto",
    "PersistentSlow",
    "ShiftedExponential",
    "Stall",
    "TraceReplay",
    "fit_clock",
    "read_model",
    "read_trace",
    "write_model",
]
