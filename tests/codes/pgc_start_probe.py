"""Probe: the applied update vs the full gradient at the same weights, round by round.

Drives the real training loop (``runtime.loop.train``) on the local backend and, in each
round, compares the scheme's decoded update with ``sum_j g_j(w_t)`` at the weights the
round was broadcast with.  Used by tests/codes/test_pgc_start.py.
"""

from __future__ import annotations

import numpy as np

from gradcode.runtime.config import RunConfig
from gradcode.runtime.loop import train
from gradcode.runtime.run import build_cluster, build_scheme, build_task, loop_config


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64).ravel()


def update_vs_gradient(rc: RunConfig, **scheme_opts) -> list[tuple[float, float]]:
    """Per round: (||update|| / ||full gradient||, cosine(update, full gradient))."""
    if scheme_opts:
        rc = RunConfig(**{**rc.__dict__, "scheme_options": tuple(scheme_opts.items())})
    scheme = build_scheme(rc)
    task = build_task(rc, scheme.k)
    cluster = build_cluster(rc, scheme, task)
    seen: dict = {}
    run_round, master_update = cluster.run_round, scheme.master_update

    def probe_round(t, w):
        seen["w"] = w
        return run_round(t, w)

    out = []

    def probe_update(state, t, messages, late=()):
        state, upd = master_update(state, t, messages, late)
        full = sum(_np(task.partition_gradient(p, seen["w"])) for p in range(scheme.k))
        g = _np(upd.gradient)[: full.size]
        ratio = float(np.linalg.norm(g) / np.linalg.norm(full))
        cos = float(g @ full / (np.linalg.norm(g) * np.linalg.norm(full)))
        out.append((ratio, cos))
        return state, upd

    cluster.run_round, scheme.master_update = probe_round, probe_update
    train(scheme, cluster, task, loop_config(rc))
    return out
