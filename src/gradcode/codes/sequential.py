"""Sequential gradient coding with selective reattempts (SR-SGC).

Krishnan, Ebrahimi, Khisti, "Sequential Gradient Coding for Straggler
Mitigation", ICLR 2023.  A training run computes a *sequence* of gradients
(jobs): job ``t`` starts in round ``t`` at the weights ``w_t`` and must be
decoded by the end of round ``t + T``.  Allowing ``T > 0`` lets a code spread
redundancy over time as well as over workers.

**Straggler model** ``(B, W, lambda)``: in every window of ``W`` consecutive
rounds at most ``lambda`` distinct workers straggle, and each of them
straggles only within one burst of at most ``B`` consecutive rounds
(:func:`conforms` checks a pattern; :func:`random_pattern` draws one).

**SR-SGC** (the paper's first scheme, reconstructed here from its stated
definitions).  Every worker holds an ``(n, s')`` gradient code's partitions
(Tandon et al.) with the *smaller* tolerance ``s' = ceil(B lambda / (W - 1 +
B))`` and ``T = B``.  In round ``t`` each worker computes its coded task for
job ``t``, except the workers asked to *reattempt* job ``t - B``:

* if at most ``s'`` of job ``t``'s results are missing (stragglers, plus
  workers busy reattempting), job ``t`` decodes at once;
* otherwise ``|missing| - s'`` of the missing workers (actual stragglers
  first) recompute their job-``t`` task in round ``t + B``, which completes
  job ``t`` exactly.  A worker that straggled in round ``t`` cannot straggle
  in ``t + B`` under the model (one burst of length ``<= B`` per window,
  ``W > B``), and the choice of ``s'`` keeps the cascade of reattempts within
  budget.  The load is ``(s' + 1)`` partitions per worker instead of GC's
  ``lambda + 1``.

In training the update of round ``t`` is the exact gradient of job ``t - T``,
i.e. SGD with a fixed delay ``T = B`` (the first ``T`` rounds take no step).

Master policy used by the simulator and the local backend (our choice; the
paper's model has no clock): round ``t`` ends once every worker reattempting
job ``t - B`` has answered and either job ``t`` is decodable (``n - s'`` of its
results) or every worker within ``patience`` (default 1.5) x the time of the
``(n - lambda)``-th arrival has answered; later ones are this round's stragglers.  Under
patterns outside the model a reattempt may be slow: the round then waits for
it, so every job is still delivered exactly ``T`` rounds late; a reattempter
that crashed makes its job undecodable, which is reported, never a hang.

Example (n = 4, lambda = 2, B = 1, W = 2 gives s' = 1 and an FRC code)::

    >>> sch = SRSGC(4, 2, B=1, W=2)
    >>> sch.s_code, sch.delay, sch.load
    (1, 1, 2)
    >>> plan = sch.init_plan()
    >>> plan = sch.advance(plan, 0, {0: {0, 1}})         # workers 2, 3 straggled in round 0
    >>> sch.jobs(plan, 1).tolist()                      # worker 2 reattempts job 0
    [1, 1, 0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .base import GradientCode, matrix_lines
from .crc import CRC
from .cyclic_mds import CyclicMDS, is_real_valued
from .frc import FRC
from .protocol import Message, Update, encode

#: The inner codes SR-SGC builds by name without a registry (exact codes only).
EXACT_INNER_CODES = {"frc": FRC, "cyclic_mds": CyclicMDS, "crc": CRC}


def exact_inner_code(
    name: str, n: int, s: int, rng: np.random.Generator | None = None
) -> GradientCode:
    """The exact code ``name`` of :data:`EXACT_INNER_CODES` for ``(n, s)``."""
    if name not in EXACT_INNER_CODES:
        raise ValueError(
            f"sr_sgc: unknown inner code {name!r}; choose {', '.join(EXACT_INNER_CODES)}"
        )
    return CRC(n, s, rng=rng) if name == "crc" else EXACT_INNER_CODES[name](n, s)


def conforms(straggled: np.ndarray, B: int, W: int, lam: int) -> bool:
    """Does a ``(rounds, n)`` boolean straggler pattern obey the ``(B, W, lambda)`` model?"""
    S = np.asarray(straggled, dtype=bool)
    rounds = S.shape[0]
    for a in range(max(1, rounds - W + 1)):
        win = S[a : a + W]
        hit = win.any(axis=0)
        if hit.sum() > lam:
            return False
        for i in np.flatnonzero(hit):
            idx = np.flatnonzero(win[:, i])
            if idx[-1] - idx[0] + 1 > B:
                return False
    return True


def random_pattern(
    rng: np.random.Generator, rounds: int, n: int, B: int, W: int, lam: int, p: float = 0.5
) -> np.ndarray:
    """A random straggler pattern obeying ``(B, W, lambda)``: each (round, worker)
    straggles with probability ``p`` unless that would break the model."""
    S = np.zeros((rounds, n), dtype=bool)
    for t in range(rounds):
        for w in rng.permutation(n):
            if rng.random() >= p:
                continue
            S[t, w] = True
            if not conforms(S[max(0, t - 2 * W + 1) : t + 1], B, W, lam):
                S[t, w] = False
    return S


@dataclass(frozen=True)
class Plan:
    """Who owes what (sets only; the master adds vectors on top).

    ``received[j]``: workers whose job-``j`` result arrived, for jobs not yet
    decoded; ``reattempt[j]``: workers asked to recompute job ``j`` in round
    ``j + B``; ``decoded`` / ``lost``: jobs decoded / given up in the last
    :meth:`SRSGC.advance` call.
    """

    received: Mapping[int, frozenset] = field(default_factory=dict)
    reattempt: Mapping[int, tuple[int, ...]] = field(default_factory=dict)
    decoded: tuple[int, ...] = ()
    lost: tuple[int, ...] = ()


@dataclass(frozen=True)
class MasterState:
    plan: Plan = field(default_factory=Plan)
    vectors: Mapping[int, Mapping[int, np.ndarray]] = field(default_factory=dict)
    ready: Mapping[int, tuple] = field(default_factory=dict)  # job -> (gradient, used, stats)


class SRSGC:
    """SR-SGC over an inner ``(n, s')`` gradient code; ``s`` is the model's ``lambda``.

    ``code`` names the inner code (``"auto"``: FRC when ``s' + 1`` divides ``n``,
    else the real cyclic MDS code when it exists, else CRC), built by
    ``make_code(name, n, s', rng=rng)``: the registry passes its own
    :func:`~gradcode.codes.make_code` (any registered code); by default
    :func:`exact_inner_code`.
    """

    name = "sr_sgc"
    stateful = True
    sequential = True
    uses_late = False

    def __init__(
        self,
        n: int,
        s: int,
        *,
        B: int = 1,
        W: int | None = None,
        code: str = "auto",
        patience: float = 1.5,
        rng: np.random.Generator | None = None,
        make_code: Callable[..., GradientCode] | None = None,
    ) -> None:
        W = B + 1 if W is None else int(W)
        if B < 1:
            raise ValueError(f"sr_sgc: burst length B must be >= 1, got {B}")
        if W <= B:
            raise ValueError(f"sr_sgc: window W must exceed the burst length B={B}, got W={W}")
        if not 1 <= s < n:
            raise ValueError(f"sr_sgc: need 1 <= s (lambda) < n, got s={s}, n={n}")
        if not patience >= 1:
            raise ValueError(f"sr_sgc: patience must be >= 1, got {patience}")
        self.n, self.s, self.B, self.W = n, s, int(B), W
        self.patience = float(patience)
        self.s_code = math.ceil(B * s / (W - 1 + B))
        self.delay = self.B  # T
        if code == "auto":
            if n % (self.s_code + 1) == 0:
                code = "frc"
            elif is_real_valued(n, self.s_code):
                code = "cyclic_mds"
            else:
                code = "crc"
        build = exact_inner_code if make_code is None else make_code
        self.code: GradientCode = build(code, n, self.s_code, rng=rng)
        self.k = self.code.k
        self.placement = self.code.placement

    @property
    def load(self) -> int:
        return self.code.load

    @property
    def staleness_profile(self) -> tuple[float, ...]:
        """Every update is the exact gradient ``B`` rounds late: ``(0, .., 0, 1)``."""
        return (0.0,) * self.delay + (1.0,)

    # ---------------------------------------------------------------- the plan

    def init_plan(self) -> Plan:
        return Plan()

    def busy(self, plan: Plan, t: int) -> tuple[int, ...]:
        """Workers recomputing job ``t - B`` in round ``t``."""
        return tuple(plan.reattempt.get(t - self.B, ()))

    def jobs(self, plan: Plan, t: int) -> np.ndarray:
        """The job each worker computes in round ``t``."""
        out = np.full(self.n, t)
        out[list(self.busy(plan, t))] = t - self.B
        return out

    def by_job(self, plan: Plan, t: int, workers) -> dict[int, set]:
        """The workers that answered in round ``t``, grouped by the job they computed."""
        jobs = self.jobs(plan, t)
        out: dict[int, set] = {}
        for w in workers:
            out.setdefault(int(jobs[w]), set()).add(int(w))
        return out

    def stop(self, plan: Plan, t: int, times: np.ndarray) -> tuple[float, bool]:
        """When round ``t`` ends given finishing times, and whether job ``t - B`` completes.

        The round ends once every owed reattempt has arrived and either job ``t``
        is decodable or every worker not slower than ``patience`` x the
        ``(n - lambda)``-th arrival has answered (the others count as stragglers).
        """
        times = np.asarray(times, dtype=float)
        finite = np.sort(times[np.isfinite(times)])
        if finite.size == 0:
            return 0.0, not self.busy(plan, t)
        busy = list(self.busy(plan, t))
        quorum = finite[min(self.n - self.s, finite.size) - 1]
        on_time = finite[finite <= self.patience * quorum]
        end = on_time[-1]
        fresh = np.sort(np.delete(times, busy))
        need = self.n - self.s_code  # job t's results for an immediate decode
        if need <= fresh.size and np.isfinite(fresh[need - 1]):
            end = min(end, fresh[need - 1])
        owed = times[busy]
        if np.all(np.isfinite(owed)):
            return float(max(end, owed.max(initial=0.0))), True
        return float(finite[-1]), False

    def advance(self, plan: Plan, t: int, arrived: Mapping[int, set]) -> Plan:
        """Record round ``t``'s arrivals (``job -> workers``); decide decodes and reattempts."""
        received = {j: set(v) for j, v in plan.received.items()}
        for job, workers in arrived.items():
            received.setdefault(job, set()).update(workers)
        received.setdefault(t, set())
        reattempt = {j: v for j, v in plan.reattempt.items() if j > t - self.B}
        decoded, lost = [], []
        busy = set(self.busy(plan, t))
        for job in sorted(received):
            missing = set(range(self.n)) - received[job]
            if len(missing) <= self.s_code:
                decoded.append(job)
            elif job == t:  # defer: the fewest stragglers needed recompute it in t + B
                order = sorted(missing - busy) + sorted(missing & busy)
                reattempt[t] = tuple(order[: len(missing) - self.s_code])
            elif job <= t - self.B:
                lost.append(job)
        keep = {j: frozenset(v) for j, v in received.items() if j not in decoded + lost}
        return Plan(keep, reattempt, tuple(decoded), tuple(lost))

    # ---------------------------------------------------------------- round protocol

    def init_worker(self, worker: int):
        return None

    def compute_plan(self, state, worker: int, t: int) -> tuple[int, ...]:
        return self.code.placement[worker]

    def worker_message(self, state, worker: int, job: int, grads):
        """Worker's coded result for ``job`` (gradients taken at ``w_job``)."""
        parts = self.code.placement[worker]
        vec = encode(self.code.coefficients(worker), [grads[p] for p in parts])
        return state, Message(worker, job, vec, parts, (job,) * len(parts))

    def init_master(self) -> MasterState:
        return MasterState()

    def master_update(
        self, state: MasterState, t: int, messages: Sequence[Message], late=()
    ) -> tuple[MasterState, Update]:
        arrived: dict[int, set] = {}
        vectors = {j: dict(v) for j, v in state.vectors.items()}
        for m in messages:
            arrived.setdefault(m.round, set()).add(m.worker)
            vectors.setdefault(m.round, {})[m.worker] = m.vector
        plan = self.advance(state.plan, t, arrived)
        ready = dict(state.ready)
        notes = [f"job {j} not decodable (a reattempt did not arrive); dropped" for j in plan.lost]
        for job in plan.decoded:
            dec = self.code.decode(sorted(vectors[job]))
            stats = {"cond": dec.cond, "max_abs_weight": dec.max_abs_weight}
            ready[job] = (dec.combine(vectors[job]), dec.used, stats, t - job)
        for job in plan.decoded + plan.lost:
            vectors.pop(job, None)
        job = t - self.delay
        got = ready.pop(job, None)
        pending = len(plan.received)  # jobs waiting for a reattempt (decoded ones are gone)
        if got is None:
            why = "pipeline filling" if job < 0 else f"job {job} unavailable"
            grad, used, stats, fallbacks = None, (), {}, (*notes, why)
            weights, residual, age = np.zeros(self.k), math.sqrt(self.k), 0
        else:
            grad, used, stats, waited = got
            stats = {**stats, "job": job, "decode_wait": waited}
            fallbacks, weights, residual, age = tuple(notes), np.ones(self.k), 0.0, self.delay
        upd = Update(
            gradient=grad,
            used=used,
            exact=False,  # exact gradient, but of w_{t-B}: staleness B
            covered=grad is not None,
            residual=residual,
            staleness_max=age,
            staleness_mean=float(age),
            decoder=self.name,
            partition_weights=weights,
            fallbacks=fallbacks,
            stats={**stats, "deferred_jobs": pending},
        )
        return replace(state, plan=plan, vectors=vectors, ready=ready), upd

    # ---------------------------------------------------------------- simulation

    def simulate_rounds(self, worker_times: np.ndarray, deadline: float | None = None):
        """``(times, used, exact, residual)`` for worker times ``(..., rounds, n)``.

        Leading axes are independent trials: each starts from a fresh plan.
        The same rule as :meth:`stop` and :meth:`advance` (tested against them),
        on arrays: everything that does not depend on the plan (order
        statistics, the round end when nobody owes a reattempt, arrival counts)
        is computed for all rounds at once; the loop over rounds keeps only
        integers and small tuples, and touches a row of ``T`` only in rounds
        that defer a job or owe a reattempt.  ``exact[t]`` is False when job
        ``t - B`` is lost in round ``t``.
        """
        if deadline is not None:
            raise ValueError("sr_sgc has no deadline mode (its rounds wait for reattempts)")
        T = np.asarray(worker_times, dtype=float)
        n = self.n
        if T.shape[-1] != n:
            raise ValueError(f"worker_times has {T.shape[-1]} columns but the code has n={n}")
        rounds = T.shape[-2] if T.ndim >= 2 else 1
        T = T.reshape(-1, n)
        if np.isnan(T).any() or (T < 0).any():
            raise ValueError("worker times must be non-negative numbers (inf = never reports)")
        pre = _precompute(T, n - self.s, n - self.s_code, self.patience)
        dur = pre["dur0"].copy()
        ok = np.ones(len(T), dtype=bool)
        for start in range(0, len(T), max(rounds, 1)):
            self._trial(T, pre, start, min(start + rounds, len(T)), dur, ok)
        used = T <= dur[:, None]
        return dur, used, ok, np.where(ok, 0.0, 1.0)

    def _trial(self, T, pre, start, stop, dur, ok) -> None:
        """One trial (rounds ``start .. stop - 1``), from a fresh plan; fills ``dur``, ``ok``."""
        n, sc, B = self.n, self.s_code, self.B
        count0, cnt, end0, maxf = pre["count0"], pre["cnt"], pre["end0"], pre["maxf"]
        pending: dict[int, int] = {}  # deferred job -> results received so far
        reattempt: dict[int, tuple[int, ...]] = {}  # deferred job -> who recomputes it
        for g in range(start, stop):
            t = g - start
            busy = reattempt.pop(t - B, ())
            if not busy:  # the common case: nothing owed, everything precomputed
                got = count0[g]
            else:
                row = T[g]
                owed = row[list(busy)]
                if cnt[g] == 0:
                    d = 0.0
                elif np.isfinite(owed).all():
                    end = end0[g]
                    rest = np.delete(row, list(busy))  # job t's own results
                    k = n - sc - 1  # job t decodes at its (n - s')-th result
                    fresh = np.partition(rest, k)[k] if k < rest.size else np.inf
                    if np.isfinite(fresh):
                        end = min(end, fresh)
                    d = max(end, float(owed.max()))
                else:
                    d = maxf[g]
                dur[g] = d
                answered = int(np.count_nonzero(owed <= d))
                got = int(np.count_nonzero(row <= d)) - answered
                job = t - B
                if n - (pending.pop(job) + answered) > sc:
                    ok[g] = False  # job t - B lost: its reattempts did not all arrive
            missing = n - got
            if missing > sc:  # defer job t: the fewest needed recompute it in round t + B
                late = np.flatnonzero(T[g] > dur[g]).tolist()
                if busy:
                    late = sorted(set(late) - set(busy)) + sorted(busy)
                reattempt[t] = tuple(late[: missing - sc])
                pending[t] = got

    def describe(self) -> list[str]:
        """Model parameters, the inner code and the load, for ``gradcode codes show``."""
        return [
            f"{self.name}  n={self.n}  lambda={self.s}  B={self.B}  W={self.W}  "
            f"partitions k={self.k}",
            f"inner code: {self.code.name} tolerating s'={self.s_code} per round; every job "
            f"decodes exactly within T={self.delay} rounds under any (B, W, lambda) pattern",
            "encoding matrix B (row = worker, column = partition):",
            *matrix_lines(self.code.B),
            f"load: {self.load} partitions per worker per round "
            f"(plain GC for lambda={self.s} stragglers: {self.s + 1})",
        ]

    def completion_time(self, times):
        raise TypeError("sr_sgc rounds depend on past rounds: use SRSGC.simulate")

    def ready(self, arrived) -> bool:
        raise TypeError("sr_sgc rounds depend on past rounds: drive it with SRSGC.stop")


def _precompute(T: np.ndarray, quorum_at: int, need: int, patience: float) -> dict:
    """Per-round quantities of :meth:`SRSGC.stop` that do not depend on the plan.

    ``dur0``/``count0``: the round end and the number of arrivals by then when
    nobody owes a reattempt (the common case); ``end0``: the end by patience
    alone; ``maxf``: the last finite arrival; ``cnt``: finite arrivals.
    Computed in blocks of rows so that the temporaries stay in cache.
    """
    R = len(T)
    out = {key: np.empty(R) for key in ("dur0", "end0", "maxf", "cnt", "count0")}
    for lo in range(0, R, 4096):
        X = T[lo : lo + 4096]
        sl = slice(lo, lo + len(X))
        finite = np.isfinite(X)
        cnt = np.count_nonzero(finite, axis=1)
        maxf = np.where(finite, X, -np.inf).max(axis=1)
        a, b = quorum_at - 1, need - 1  # b >= a as s' <= lambda
        part = np.partition(X, a, axis=1)  # one pass; the b-th lies in the short tail after a
        fresh = (
            part[:, a]
            if b == a
            else np.partition(part[:, a + 1 :], b - a - 1, axis=1)[:, b - a - 1]
        )
        quorum = np.where(cnt >= quorum_at, part[:, a], maxf)
        end0 = np.where(X <= patience * quorum[:, None], X, -np.inf).max(axis=1)
        dur0 = np.where(np.isfinite(fresh), np.minimum(end0, fresh), end0)
        dur0 = np.where(cnt > 0, dur0, 0.0)
        out["dur0"][sl], out["end0"][sl], out["maxf"][sl], out["cnt"][sl] = dur0, end0, maxf, cnt
        out["count0"][sl] = np.count_nonzero(X <= dur0[:, None], axis=1)
    return {
        "dur0": out["dur0"],
        **{key: out[key].tolist() for key in ("end0", "maxf")},
        **{key: out[key].astype(int).tolist() for key in ("cnt", "count0")},
    }
