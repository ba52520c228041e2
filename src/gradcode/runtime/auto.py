"""``--scheme auto``: measure the workers, let the advisor choose the scheme and ``s``, switch.

The policy (issue 25, item 2)::

    rounds 0 .. warmup-1    run the warm-up scheme and measure every worker's time
    round warmup            decide: take the advisor's pick on the measured times
    every `every` rounds    re-check on the last `window` rounds; switch only when the
                            pick predicts >= `margin` less time to target than the
                            scheme in force, or that scheme no longer decodes every
                            measured round (a worker died)

**The decision** (:func:`decide`) is :func:`gradcode.advisor.advise` on the
measured per-worker times: every candidate ``(scheme, s)`` with ``s`` in
``0..max_s`` (``max_s`` = the run's ``--stragglers``) is replayed on the
measured rounds and ranked by predicted time to target, ``round time x
rounds factor`` (seconds per DGD-equivalent round; the factor is 1 for exact,
fresh schemes and the project's measured study value for approximate or stale
ones, :mod:`gradcode.advisor.factors`).  Candidates the advisor flags
(``caveat``, e.g. PGC, which missed the target in the study) or that would
not decode every measured round are never chosen.

**Hysteresis.**  Checks happen only at round ``warmup`` and every ``every``
rounds after it, so there is at most one switch per ``every`` rounds; a
re-check switches only when the pick is predicted ``margin`` (default 10 %)
faster than the scheme in force *on the same measured window*, so two
candidates within the noise of each other never alternate.  The check at the
end of the warm-up takes the pick outright: the warm-up scheme is a
measurement, not a choice.

**The warm-up scheme** defaults to IS-SGD at ``s = max_s``: load 1, so its
per-worker times are exactly what DGD would measure, and it never waits for
the slowest ``s`` workers, so measuring costs little (DGD waits for a 5x-slow
worker every warm-up round).  The local backend's clock knows every worker's
finishing time, including the ``s`` the round did not wait for.
``warmup_scheme="dgd"`` measures with DGD instead.

**Assumptions about what is measured.**  A round record carries
``worker_times`` at ``worker_load`` partitions (:func:`~gradcode.runtime.cluster.worker_fields`).
Rounds run under different schemes are put on one footing, time at load 1:

* with ``worker_compute`` (time spent computing, measured on Ray, in clock units):
  fixed part ``time - compute`` plus ``compute / load`` per partition, and the
  advisor is given that decomposition, so cheap redundancy on a latency-bound
  cluster is seen as cheap;
* without it (the local backend): time is assumed proportional to load,
  ``time / load``.  Exact for delay models that scale with load
  (``shifted-exp``, ``pareto``: ``time = load x unit``); for models with a
  fixed part (``pause``, ``parts:``) it overstates what redundancy costs, so
  auto leans towards low-load schemes there;
* a streaming scheme's worker (``partial``) draws one time per chunk, so its
  time over its load averages the chunks' noise and understates the tail a
  load-1 scheme would see (at a re-check under ``partial``, IS-SGD looks faster
  than it is);
* a worker with no time (``null``: crashed, or a stateful scheme's worker that
  was busy for the whole round) counts as never reporting in that round.

**Switching** happens at a round boundary: the new scheme is built by the
registry with the run's seed, with a new cluster on the same task and the
same seeded straggler schedule (its draws are keyed by (round, worker), not
by scheme); the master state starts afresh; the optimizer and the weights are
kept; work in flight under the old scheme (late messages, busy stateful
workers) is abandoned.  On the local backend the new placement is all a
worker needs.  On the Ray backend the cluster is not rebuilt: the running
actors get the new scheme, and those whose placement stores other partitions
are sent them (:mod:`gradcode.runtime.ray.switch`: no actor restarts; the
time scale, calibration, schedule and dead workers are kept; the next
record logs ``"reload"``).  Ray logs a straggler's time after its round
(``late_times``); decisions merge those in.  Stale corrections are refused
(``none`` only).

**Logged**: every round record carries ``"scheme"`` and ``"s"`` (the scheme
in force); a switch round carries ``"switch": {"from": "is_sgd/3", "to":
"frc/3", "reason": "..."}``, a check that keeps the scheme ``"auto_check"``
(why).  The checkpoint records the scheme in force, so a resume continues bit
for bit on the local backend (on Ray it switches the actors to that scheme).

>>> import numpy as np
>>> times = np.full((6, 6), 1.0)
>>> times[:, [0, 3]] = 5.0                  # two workers persistently 5x slower
>>> recs = [{"worker_times": list(r), "worker_load": [1.0] * 6} for r in times]
>>> d = decide(recs, Choice("dgd", 0), AutoConfig(candidates=("dgd", "frc")), max_s=2)
>>> str(d.choice), d.reason.split(":")[0]      # DGD waits 5 s a round, FRC at s=1 2 s
('frc/1', 're-check')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..advisor import advise
from ..clock import merge_late_times
from ..codes import REGISTRY, effective_stragglers, make_scheme

#: The schemes auto chooses from by default (the issue's list; the advisor times them all).
DEFAULT_CANDIDATES = ("dgd", "is_sgd", "frc", "crc", "partial", "pgc")


@dataclass(frozen=True)
class AutoConfig:
    """How ``--scheme auto`` decides (module docstring).

    Attributes:
        warmup: rounds run with ``warmup_scheme`` before the first decision.
        every: rounds between re-checks (``K``; at most one switch per ``every`` rounds).
        window: the last ``window`` rounds' worker times feed each decision.
        margin: a re-check switches only for a predicted time-to-target gain >= this.
        warmup_scheme: the scheme measured with first (built at ``s = max_s``).
        candidates: the schemes auto may choose (``a+b+c`` on the command line).
    """

    warmup: int = 5
    every: int = 10
    window: int = 10
    margin: float = 0.1
    warmup_scheme: str = "is_sgd"
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES

    def __post_init__(self) -> None:
        for name in ("warmup", "every", "window"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"auto: {name} must be an integer >= 1, got {v!r}")
        m = self.margin
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0 <= m < 1:
            raise ValueError(f"auto: margin must be a number in [0, 1), got {m!r}")
        if isinstance(self.candidates, str) or not isinstance(self.candidates, Sequence):
            raise ValueError(f"auto: candidates must be scheme names, got {self.candidates!r}")
        object.__setattr__(self, "candidates", tuple(self.candidates))  # a list from JSON
        for name in (self.warmup_scheme, *self.candidates):
            if name not in REGISTRY:
                raise ValueError(f"auto: unknown scheme {name!r}; known: {', '.join(REGISTRY)}")
        if not self.candidates:
            raise ValueError("auto: candidates must name at least one scheme")


@dataclass(frozen=True)
class Choice:
    """A scheme and its ``s``, written ``"frc/3"`` in the logs."""

    scheme: str
    s: int

    def __str__(self) -> str:
        return f"{self.scheme}/{self.s}"

    @classmethod
    def parse(cls, label: str) -> Choice:
        """``"frc/3"`` -> ``Choice("frc", 3)`` (a checkpoint's record of the scheme in force)."""
        name, _, s = str(label).partition("/")
        if name not in REGISTRY or not s.isdigit():
            raise ValueError(f"not a scheme/s label: {label!r}")
        return cls(name, int(s))


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` concluded: the scheme to run, why it switches (``None``: it
    keeps the scheme in force), and one sentence either way."""

    choice: Choice
    reason: str | None
    note: str


def warmup_choice(cfg: AutoConfig, max_s: int) -> Choice:
    """The scheme of the first rounds: ``cfg.warmup_scheme`` at ``max_s`` (0 for DGD)."""
    return Choice(cfg.warmup_scheme, effective_stragglers(cfg.warmup_scheme, max_s))


def build_choice(choice: Choice, n: int, seed: int):
    """The round-protocol scheme of ``choice`` (the registry's, seeded like a fixed run)."""
    return make_scheme(choice.scheme, n, choice.s, rng=np.random.default_rng(seed))


def at_load_one(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-worker times of ``records`` brought to load 1 (``(rounds, workers)``), and the
    per-partition compute seconds when every record measured them (module docstring).

    >>> t, c = at_load_one([{"worker_times": [4.0, None], "worker_load": [4.0, 4.0]}])
    >>> t.tolist(), c
    ([[1.0, inf]], None)
    >>> t, c = at_load_one([{"worker_times": [5.0], "worker_load": [4.0],
    ...                      "worker_compute": [4.0]}])
    >>> t.tolist(), c.tolist()
    ([[2.0]], [[1.0]])
    """
    T = np.array([[np.inf if x is None else x for x in r["worker_times"]] for r in records])
    L = np.array([r["worker_load"] for r in records], dtype=float)
    T = np.where(L > 0, T, np.inf)  # a worker that computed nothing says nothing
    L = np.where(L > 0, L, 1.0)
    if records and all(r.get("worker_compute") is not None for r in records):
        C = np.array([[0.0 if x is None else x for x in r["worker_compute"]] for r in records])
        per = C / L
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(T), np.inf, T - C + per), per
    return T / L, None


def decide(
    records: Sequence[dict],
    current: Choice,
    cfg: AutoConfig,
    max_s: int,
    *,
    first: bool = False,
    allowed: Callable[[str, int], bool] | None = None,
    seed: int = 0,
) -> Decision:
    """Which scheme to run next, from the round records measured so far (pure).

    ``records``: earlier rounds' records (``worker_times``, ``worker_load`` and,
    where measured, ``worker_compute``; Ray's ``late_times`` are merged in,
    :func:`gradcode.clock.merge_late_times`); the last ``cfg.window`` are used.
    ``current``: the scheme in force.  ``first``: the end of the warm-up (no
    margin).  ``allowed(scheme, s)``: pairs this run can build (default: all).
    """
    window = merge_late_times(list(records))[-cfg.window :]  # Ray: stragglers logged later
    times, compute = at_load_one(window)
    n = times.shape[1]
    advice = advise(times, n, loads=1.0, compute=compute, max_s=max_s,
                    schemes=cfg.candidates, seed=seed)  # fmt: skip
    ok = [
        c
        for c in advice.candidates
        if c.recommendable
        and c.scheme in cfg.candidates
        and (allowed is None or allowed(c.scheme, c.s))
    ]
    cur = next(
        (c for c in advice.candidates if (c.scheme, c.s) == (current.scheme, current.s)), None
    )
    if cur is None and current.s == 0:  # the advisor times any scheme at s = 0 as DGD
        cur = next(c for c in advice.candidates if c.scheme == "dgd")
    where = f"on the last {len(window)} rounds' worker times"
    if not ok:
        note = f"kept {current}: no candidate decodes every measured round ({where})"
        return Decision(current, None, note)
    best = ok[0]
    pick = Choice(best.scheme, best.s)

    def cost(c) -> str:
        return (
            f"{c.scheme}/{c.s} at {c.round_time:.3g} s per round x rounds factor "
            f"{c.rounds_factor:.3g} = {c.time_to_target:.3g} s"
        )

    broken = cur is None or not cur.recommendable
    if pick == current or (cur is not None and (cur.scheme, cur.s) == (best.scheme, best.s)):
        return Decision(current, None, f"kept {current}: still the advisor's pick, {cost(best)} "
                        f"per DGD-equivalent round ({where})")  # fmt: skip
    if first or broken:
        if first:
            why = "end of warm-up"
        elif cur is None:
            why = f"{current} was not timed"
        else:
            why = f"{current} no longer decodes every measured round (a worker stopped reporting)"
        against = "" if broken else f", against {cost(cur)}"
        reason = (
            f"{why}: the advisor predicts {cost(best)} per DGD-equivalent round{against} ({where})"
        )
        return Decision(pick, reason, reason)
    gain = 1 - best.time_to_target / cur.time_to_target
    vs = f"{cost(best)} against {cost(cur)} per DGD-equivalent round ({gain:.0%} less)"
    if gain >= cfg.margin:
        return Decision(pick, f"re-check: the advisor predicts {vs} ({where})", vs)
    note = f"kept {current}: {vs}, under the {cfg.margin:.0%} margin ({where})"
    return Decision(current, None, note)


class AutoSwitch:
    """The loop's side of ``--scheme auto``: the scheme and cluster in force, when to
    check, and switching.  ``make_cluster(scheme)`` builds a cluster for a scheme on the
    run's task and straggler schedule; ``deadline``: sequential schemes have no
    deadline mode, so they are left out when one is set."""

    def __init__(self, cfg: AutoConfig, n: int, max_s: int, seed: int, make_cluster,
                 deadline: float | None = None) -> None:  # fmt: skip
        self.cfg, self.n, self.max_s, self.seed = cfg, n, max_s, seed
        self.make_cluster, self.deadline = make_cluster, deadline
        self.choice = warmup_choice(cfg, max_s)
        self.scheme = build_choice(self.choice, n, seed)
        self.cluster = make_cluster(self.scheme)
        self._allowed: dict[tuple[str, int], bool] = {}

    def allowed(self, name: str, s: int) -> bool:
        """Can this run switch to ``name`` at ``s`` (it builds, on this run's partitions)?"""
        key = (name, s)
        if key not in self._allowed:
            try:
                sch = build_choice(Choice(name, s), self.n, self.seed)
                ok = sch.k == self.scheme.k
                ok = ok and not (getattr(sch, "sequential", False) and self.deadline is not None)
            except ValueError:
                ok = False
            self._allowed[key] = ok
        return self._allowed[key]

    def due(self, t: int) -> bool:
        """Is round ``t`` a decision round (the end of the warm-up, then every ``every``)?"""
        return t >= self.cfg.warmup and (t - self.cfg.warmup) % self.cfg.every == 0

    def step(self, t: int, history: Sequence[dict]) -> dict:
        """At the start of round ``t``: decide when due, switch if so; the record fields."""
        extra: dict = {}
        if self.due(t) and history:
            d = decide(history, self.choice, self.cfg, self.max_s, first=t == self.cfg.warmup,
                       allowed=self.allowed, seed=self.seed)  # fmt: skip
            if d.reason is not None:
                extra["switch"] = {"from": str(self.choice), "to": str(d.choice),
                                   "reason": d.reason}  # fmt: skip
                self._use(d.choice)
            else:
                extra["auto_check"] = d.note
        return {"scheme": self.choice.scheme, "s": self.choice.s, **extra}

    def _use(self, choice: Choice) -> None:
        scheme = build_choice(choice, self.n, self.seed)
        move = getattr(self.cluster, "switch", None)
        if move is not None:  # Ray: the running actors load the scheme and new partitions
            move(scheme)
        else:  # local: a new cluster is all a new placement needs
            self.cluster.close()
            self.cluster = self.make_cluster(scheme)
        self.scheme, self.choice = scheme, choice

    def state(self) -> dict:
        """What a checkpoint records: the scheme in force."""
        return {"choice": str(self.choice)}

    def restore(self, state) -> None:
        """Continue with the scheme in force of a checkpoint's ``state``."""
        self._use(Choice.parse(state["choice"]))

    def close(self) -> None:
        self.cluster.close()


def scheme_in_force(ck: dict, n: int, seed: int):
    """The scheme an auto run's checkpoint ``ck`` was running (``ValueError`` if unrecorded)."""
    state = ck.get("auto") if isinstance(ck, dict) else None
    if not isinstance(state, dict) or "choice" not in state:
        raise ValueError("records no scheme in force for --scheme auto")
    return build_choice(Choice.parse(state["choice"]), n, seed)


def check_auto(scheme: str, auto, *, scheme_options, stale_correction: str, workers: int,
               stragglers: int) -> AutoConfig | None:  # fmt: skip
    """The run's :class:`AutoConfig` (``None`` unless ``scheme == "auto"``), or one line
    saying why this combination is refused.  ``auto``: an ``AutoConfig``, its fields as
    a dict (a ``config.json``), or ``None`` (the defaults)."""
    if scheme != "auto":
        if auto is not None:
            raise ValueError(f"auto options need --scheme auto (the scheme is {scheme!r})")
        return None
    if isinstance(auto, dict):
        auto = AutoConfig(**auto)
    auto = AutoConfig() if auto is None else auto
    if not isinstance(auto, AutoConfig):
        raise ValueError(f"auto must be an AutoConfig, got {type(auto).__name__}")
    if scheme_options:
        raise ValueError("--scheme auto chooses its own schemes: --scheme-opt cannot be given")
    if stale_correction != "none":
        raise ValueError("--scheme auto takes no --stale-correction (it may switch schemes)")
    if workers < 2:
        raise ValueError("--scheme auto needs at least 2 workers")
    if stragglers >= workers:
        raise ValueError(f"--scheme auto: stragglers must be < workers, got {stragglers}")
    return auto
