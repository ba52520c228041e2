"""Brute-force oracles for the advisor's tests, written apart from :mod:`gradcode.advisor`.

* :func:`at_load` -- the replay rule (docs/clock.md) from scratch: measured at
  a measured load, linear between, extrapolated from the two nearest beyond.
* :func:`replay_mean` -- a scheme's mean round time over every block of ``n``
  trace workers, through :func:`gradcode.sim.simulate` (not :mod:`gradcode.clock`).
* :func:`model_mean` -- a scheme's mean round time over ``rounds`` draws of a
  delay model, through :func:`gradcode.sim.simulate_model`.
* :func:`brute_force` -- every buildable ``(scheme, s)``'s time to target
  (mean round time x the documented convergence factor), and the best.
"""

from __future__ import annotations

import numpy as np

from gradcode.advisor import factor_for
from gradcode.codes import REGISTRY, make_code
from gradcode.sim import simulate, simulate_model


def at_load(table: np.ndarray, loads, L: float) -> np.ndarray:
    """``table[..., k]`` measured at ``loads[k]`` read at load ``L`` (the replay rule)."""
    loads = list(loads)
    if L in loads:
        return table[..., loads.index(L)].copy()
    j = max(0, min(int(np.searchsorted(loads, L)) - 1, len(loads) - 2))
    a, b = table[..., j], table[..., j + 1]
    w = (L - loads[j]) / (loads[j + 1] - loads[j])
    with np.errstate(invalid="ignore"):
        out = np.maximum(a + w * (b - a), 0.0)
    return np.where(np.isinf(a) | np.isinf(b), np.inf, out)


def worker_times(code, table: np.ndarray, loads) -> np.ndarray:
    """``(rounds, n)`` times at the code's load, or per-chunk ``(rounds, n, chunks)``."""
    if getattr(code, "chunked", False):
        width = max(len(p) for p in code.placement)
        step = getattr(code, "chunk_load", 1.0)
        finish = np.stack([at_load(table, loads, c * step) for c in range(1, width + 1)], -1)
        finish = np.maximum.accumulate(finish, axis=-1)
        with np.errstate(invalid="ignore"):
            inc = np.diff(finish, axis=-1, prepend=0.0)
        inc[np.isinf(finish)] = np.inf
        return inc
    return at_load(table, loads, float(code.load))


def replay_times(code, table: np.ndarray, loads) -> np.ndarray:
    """Round times over every block of ``code.n`` workers of ``table`` ``(R, W, K)``."""
    n = code.n
    out = []
    for b in range(table.shape[1] // n):
        out.append(simulate(code, worker_times(code, table[:, b * n : (b + 1) * n], loads)).times)
    return np.concatenate(out)


def replay_mean(code, table, loads) -> float:
    t = replay_times(code, table, loads)
    return float(t[np.isfinite(t)].mean())


def model_times(code, model, rounds: int, seed: int = 0) -> np.ndarray:
    return simulate_model(code, model, np.random.default_rng(seed), rounds).times


def brute_force(n: int, max_s: int, times_of, seed: int = 0) -> dict:
    """``{(scheme, s): time to target}`` of every recommendable buildable pair.

    ``times_of(code)`` gives the pair's round times; pairs with a round that
    never ends, no factor or a factor caveat are left out.
    """
    out = {}
    for name in REGISTRY:
        for s in range(max_s + 1):
            try:
                code = make_code(name, n, s, rng=np.random.default_rng(seed))
            except ValueError:
                continue
            t = times_of(code)
            f = factor_for(name, s)
            if f.value is None or f.caveat or not np.isfinite(t).all():
                continue
            out[name, s] = float(t.mean()) * f.value
    return out


def argmin_set(costs: dict, rtol: float = 1e-9) -> tuple[float, set]:
    best = min(costs.values())
    return best, {k for k, v in costs.items() if v <= best * (1 + rtol)}
