"""Seeded straggler models whose time is linear in load, and the fault wrappers.

Every model is a frozen dataclass with two methods that draw everything from
one :class:`numpy.random.Generator`:

* ``sample(rng, rounds, n, load=1.0)`` -> ``(rounds, n)`` times for a worker
  that processes ``load`` partitions in one go;
* ``sample_chunks(rng, rounds, n, chunks)`` -> ``(rounds, n, chunks)`` times of
  each unit-load chunk (for streaming / partial-straggler protocols).

``inf`` means the worker never reports (crashed).  The random draws do not
depend on ``load``, so the same seed gives every scheme the same underlying
schedule, only scaled by each scheme's load.

Base delay models:

* :class:`ShiftedExponential` -- ``time = load * (a + Exp(mu))``, the model of
  Tandon et al. (ICML 2017) and Lee et al. ("Speeding up distributed machine
  learning using codes", IEEE TIT 2018).  Mean ``load (a + 1/mu)``.
* :class:`AdditivePause` -- ``time = load * base + B * Exp(mean=pause)`` with
  ``B ~ Bernoulli(prob)``: a fixed-cost job plus an occasional pause.
* :class:`Pareto` -- ``time = load * xm * (1 + Lomax(alpha))``: Pareto(alpha,
  xm) tails; mean ``load xm alpha / (alpha - 1)`` for ``alpha > 1``.

Measured traces are in :mod:`gradcode.stragglers.traces`, the clock model with
parts (latency + compute + communication) in :mod:`gradcode.stragglers.parts`.

Wrappers (take a base model): :class:`PersistentSlow`, :class:`Bursty`
(two-state Markov), :class:`CrashStop`.

Example::

    >>> import numpy as np
    >>> m = PersistentSlow(ShiftedExponential(a=1.0, mu=2.0), k=2, kappa=5.0)
    >>> t = m.sample(np.random.default_rng(0), rounds=3, n=6)
    >>> t.shape, bool((t[:, 0] > 5).all())
    ((3, 6), True)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np


def _positive(name: str, value: float, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (np.isfinite(value) and ok):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")


def _prob(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


class DelayModel:
    """Base class: subclasses implement :meth:`unit` (times of one unit of load).

    Three hooks let models that are not linear in load (a measured trace with
    several loads, the clock model with parts) plug into the same callers;
    the defaults keep every linear model's numbers as they were:

    * :attr:`load_aware` -- ``False``: time is proportional to load, so a
      chunk of ``chunk_load`` partitions takes ``chunk_load`` unit chunks' time;
    * :meth:`with_message_bytes` -- the model for messages of that many bytes
      (models without a communication part ignore it);
    * :attr:`master_time` -- the master's receive and decode time per round
      (``0``), added to every round's duration.
    """

    load_aware = False

    def unit(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, rounds: int, n: int, load=1.0) -> np.ndarray:
        """Times of ``n`` workers over ``rounds`` rounds for ``load`` partitions each.

        ``load`` is a scalar or a length-``n`` array (per-worker load).
        """
        check_shape(rounds, n)
        return np.asarray(load, dtype=float) * self.unit(rng, (rounds, n))

    def sample_chunks(
        self, rng: np.random.Generator, rounds: int, n: int, chunks: int
    ) -> np.ndarray:
        """Per-chunk times, shape ``(rounds, n, chunks)``; each chunk is one unit of load."""
        check_shape(rounds, n)
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        return self.unit(rng, (rounds, n, chunks))

    def chunk_times(
        self, rng: np.random.Generator, rounds: int, n: int, chunks: int, chunk_load=1.0
    ) -> np.ndarray:
        """Per-chunk times ``(rounds, n, chunks)`` of chunks of ``chunk_load`` partitions.

        Linear models: ``sample_chunks(...) * chunk_load``.  Load-aware models
        return the increments of a worker's time as its load grows by
        ``chunk_load`` per chunk.
        """
        return self.sample_chunks(rng, rounds, n, chunks) * chunk_load

    def with_message_bytes(self, nbytes: float) -> DelayModel:
        """This model for messages of ``nbytes`` bytes (here: unchanged)."""
        return self

    @property
    def master_time(self) -> float:
        """Seconds the master spends receiving and decoding per round (here: 0)."""
        return 0.0


def check_shape(rounds: int, n: int) -> None:
    if rounds < 1 or n < 1:
        raise ValueError(f"need rounds >= 1 and n >= 1, got rounds={rounds}, n={n}")


@dataclass(frozen=True)
class ShiftedExponential(DelayModel):
    """``time = load * (a + Exp(mu))`` (rate ``mu``, so the tail mean is ``1/mu``)."""

    a: float = 1.0
    mu: float = 1.0

    def __post_init__(self) -> None:
        _positive("shift a", self.a, allow_zero=True)
        _positive("rate mu", self.mu)

    def unit(self, rng, shape):
        return self.a + rng.exponential(1.0 / self.mu, shape)

    def mean(self, load: float = 1.0) -> float:
        return load * (self.a + 1.0 / self.mu)


@dataclass(frozen=True)
class AdditivePause(DelayModel):
    """``time = load * base + Bernoulli(prob) * Exp(mean=pause)``."""

    base: float = 1.0
    pause: float = 1.0
    prob: float = 0.1

    def __post_init__(self) -> None:
        _positive("base", self.base)
        _positive("pause", self.pause, allow_zero=True)
        _prob("prob", self.prob)

    def _pause(self, rng, shape):
        hit = rng.random(shape) < self.prob
        return hit * rng.exponential(self.pause, shape) if self.pause else np.zeros(shape)

    def unit(self, rng, shape):
        return self.base + self._pause(rng, shape)

    def sample(self, rng, rounds, n, load=1.0):
        check_shape(rounds, n)
        return np.asarray(load, dtype=float) * self.base + self._pause(rng, (rounds, n))

    def mean(self, load: float = 1.0) -> float:
        return load * self.base + self.prob * self.pause


@dataclass(frozen=True)
class Pareto(DelayModel):
    """``time = load * xm * (1 + Lomax(alpha))``: Pareto with scale ``xm``, index ``alpha``."""

    alpha: float = 2.5
    xm: float = 1.0

    def __post_init__(self) -> None:
        _positive("alpha", self.alpha)
        _positive("xm", self.xm)

    def unit(self, rng, shape):
        return self.xm * (1.0 + rng.pareto(self.alpha, shape))

    def mean(self, load: float = 1.0) -> float:
        return load * self.xm * self.alpha / (self.alpha - 1) if self.alpha > 1 else np.inf


# --- wrappers -----------------------------------------------------------------


class _Wrapper(DelayModel):
    base: DelayModel

    def factors(self, rng: np.random.Generator, rounds: int, n: int) -> np.ndarray:
        """Multiplicative factor per (round, worker); ``inf`` for crashed."""
        raise NotImplementedError

    def sample(self, rng, rounds, n, load=1.0):
        times = self.base.sample(rng, rounds, n, load)
        return times * self.factors(rng, rounds, n)

    def sample_chunks(self, rng, rounds, n, chunks):
        times = self.base.sample_chunks(rng, rounds, n, chunks)
        return times * self.factors(rng, rounds, n)[:, :, None]

    @property
    def load_aware(self) -> bool:
        return self.base.load_aware

    def chunk_times(self, rng, rounds, n, chunks, chunk_load=1.0):
        if not self.base.load_aware:  # linear: exactly the old product order
            return super().chunk_times(rng, rounds, n, chunks, chunk_load)
        times = self.base.chunk_times(rng, rounds, n, chunks, chunk_load)
        return times * self.factors(rng, rounds, n)[:, :, None]

    def with_message_bytes(self, nbytes):
        base = self.base.with_message_bytes(nbytes)
        return self if base is self.base else replace(self, base=base)

    @property
    def master_time(self) -> float:
        return self.base.master_time


@dataclass(frozen=True)
class PersistentSlow(_Wrapper):
    """``k`` workers are slower by ``kappa`` in every round.

    ``layout="spread"`` picks evenly spaced workers (0, n/k, 2n/k, ...), which
    hits different FRC groups; ``"aligned"`` picks workers ``0..k-1``, i.e. the
    same FRC group when ``k <= s + 1`` -- the worst case for FRC.
    """

    base: DelayModel = field(default_factory=ShiftedExponential)
    k: int = 1
    kappa: float = 5.0
    layout: str = "spread"

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"k (slow workers) must be >= 0, got {self.k}")
        if self.kappa < 1:
            raise ValueError(f"kappa (slow-down factor) must be >= 1, got {self.kappa}")
        if self.layout not in ("spread", "aligned"):
            raise ValueError(f"layout must be 'spread' or 'aligned', got {self.layout!r}")

    def slow_workers(self, n: int) -> np.ndarray:
        if self.k > n:
            raise ValueError(f"cannot slow k={self.k} workers out of n={n}")
        if self.layout == "aligned":
            return np.arange(self.k)
        return (np.arange(self.k) * n) // max(self.k, 1)

    def factors(self, rng, rounds, n):
        f = np.ones((rounds, n))
        f[:, self.slow_workers(n)] = self.kappa
        return f


@dataclass(frozen=True)
class Bursty(_Wrapper):
    """Two-state Markov stragglers: a worker enters the slow state with probability
    ``p_slow`` per round, leaves it with ``p_recover``; slow times are ``kappa`` x.

    Each worker starts in the stationary distribution, so the fraction of slow
    (round, worker) cells is ``p_slow / (p_slow + p_recover)`` and bursts last
    ``1 / p_recover`` rounds on average.
    """

    base: DelayModel = field(default_factory=ShiftedExponential)
    p_slow: float = 0.05
    p_recover: float = 0.3
    kappa: float = 5.0

    def __post_init__(self) -> None:
        _prob("p_slow", self.p_slow)
        _prob("p_recover", self.p_recover)
        if self.p_slow + self.p_recover == 0:
            raise ValueError("p_slow and p_recover cannot both be 0")
        if self.kappa < 1:
            raise ValueError(f"kappa must be >= 1, got {self.kappa}")

    @property
    def stationary_slow(self) -> float:
        return self.p_slow / (self.p_slow + self.p_recover)

    def states(self, rng, rounds, n) -> np.ndarray:
        """Boolean ``(rounds, n)``: is the worker slow?  Vectorised over workers."""
        u = rng.random((rounds, n))
        slow = np.empty((rounds, n), dtype=bool)
        slow[0] = u[0] < self.stationary_slow
        for t in range(1, rounds):  # a loop over rounds only; workers are vectorised
            slow[t] = np.where(slow[t - 1], u[t] >= self.p_recover, u[t] < self.p_slow)
        return slow

    def factors(self, rng, rounds, n):
        return np.where(self.states(rng, rounds, n), self.kappa, 1.0)


@dataclass(frozen=True)
class CrashStop(_Wrapper):
    """Workers ``workers`` crash at round ``at_round`` (never report: time ``inf``).

    With ``rejoin_after=R`` they come back ``R`` rounds later.  ``count`` picks
    that many distinct workers at random (from ``rng``) instead of ``workers``.
    """

    base: DelayModel = field(default_factory=ShiftedExponential)
    workers: tuple[int, ...] = ()
    count: int | None = None
    at_round: int = 0
    rejoin_after: int | None = None

    def __post_init__(self) -> None:
        if self.at_round < 0:
            raise ValueError(f"at_round must be >= 0, got {self.at_round}")
        if self.rejoin_after is not None and self.rejoin_after < 1:
            raise ValueError(f"rejoin_after must be >= 1 round, got {self.rejoin_after}")
        if self.count is not None and self.count < 0:
            raise ValueError(f"count must be >= 0, got {self.count}")
        object.__setattr__(self, "workers", tuple(int(w) for w in self.workers))

    def crashed(self, rng, n: int) -> np.ndarray:
        if self.count is not None:
            if self.count > n:
                raise ValueError(f"cannot crash count={self.count} of n={n} workers")
            return np.sort(rng.choice(n, self.count, replace=False))
        bad = [w for w in self.workers if not 0 <= w < n]
        if bad:
            raise ValueError(f"crash workers {bad} out of range 0..{n - 1}")
        return np.array(self.workers, dtype=int)

    def factors(self, rng, rounds, n):
        f = np.ones((rounds, n))
        stop = rounds if self.rejoin_after is None else self.at_round + self.rejoin_after
        f[self.at_round : stop, self.crashed(rng, n)] = np.inf
        return f
