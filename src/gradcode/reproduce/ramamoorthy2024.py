"""Reproduction: partial-straggler gradient coding (Ramamoorthy, Meng, Girimaji, NeurIPS 2024).

"Leveraging partial stragglers within gradient coding".  A reconstruction
(see :mod:`gradcode.codes.partial`): the paper's figures are re-derived from
its stated setting, not copied.  Settings (:class:`Config`, CLI flags of
``gradcode reproduce ramamoorthy2024``): ``m`` workers, ``N`` chunks (a
multiple of ``m``: each vertex chunk of the graph is split in ``N / m``),
``delta`` holders per chunk, ``l`` parts; chunk compute times ``1 + Exp(1)``
per chunk of size ``1 / m`` (``iid``: a fresh draw per chunk; ``persistent``:
one speed per worker and trial); failures ``uniform`` (``f`` failed workers,
``f`` uniform on ``0 .. round(max_fail m)``), ``bernoulli`` (each worker
fails with probability ``max_fail``) or ``none``; an optional per-message
communication time (:class:`~gradcode.comm.CommModel`).  Assignments are
``adjacency + I`` of a ``(delta - 1)``-regular graph (circulant, or random
regular) in the matching-based optimal order unless stated otherwise.

Protocols and their transports: :mod:`gradcode.reproduce.partial_protocols`;
the setting (draws, graphs): :mod:`gradcode.reproduce.ramamoorthy2024_setting`;
the panels: :mod:`gradcode.reproduce.ramamoorthy2024_panels`.
The proposed protocol's curves use the streaming transport (V2); the
original protocol uses a *fixed* code (Tandon's ``B`` for ``l = 1``, the
Ye-Abbe polynomial code for ``l > 1``) decoded by least squares on the
finished workers; Tandon et al.'s two-message scheme (``tandon_partial``,
``s = delta - 1``) is a second baseline.

Panels (PNG + CSV each; means with standard deviations over trials):

(a) ``a_mse_vs_deadline``: NMSE vs deadline ``T`` for each ``l``.
(b) ``b_completion_vs_l``: exact completion time vs ``l`` on two graphs.
(c) ``c_ordering``: ``Qmax_l`` and completion time, optimal vs random order.
(d) ``d_vandermonde``: the instability of real Vandermonde interpolation.
(e) ``e_mse_ordering``: NMSE vs ``T``, optimal vs random order, two graphs.
``traffic.csv``: uplink messages and volume per round and extra rounds,
every protocol, at the exact completion time.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ..report.plotting import plt
from .ramamoorthy2024_panels import panel_a, panel_b, panel_c, panel_d, panel_e
from .ramamoorthy2024_setting import Config, chunk_times, config_from_options, graphs


def run(out_dir: pathlib.Path, trials=None, rng=None, cfg: Config | None = None) -> dict:
    """Write panels (a)-(e) and ``traffic.csv`` into ``out_dir``; return headline numbers.

    ``run(out_dir, trials, rng)`` keeps the old call form (default settings).
    """
    if cfg is None:
        if not isinstance(trials, (int, np.integer)) or trials < 2:
            raise ValueError(f"trials must be an integer >= 2, got {trials!r}")
        cfg = Config(trials=int(trials))
    rng = np.random.default_rng(0) if rng is None else rng
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict = {"trials": cfg.trials, "settings": _settings(cfg)}
    try:
        for panel in (panel_a, panel_b, panel_c, panel_e):
            summary.update(panel(out_dir, cfg, rng, plt))
        summary.update(panel_d(out_dir, rng, plt))
    finally:
        plt.close("all")
    summary["files"] = sorted(p.name for p in out_dir.iterdir() if p.suffix in (".png", ".csv"))
    return summary


def _settings(cfg: Config) -> dict:
    return {
        "m": cfg.m,
        "N": cfg.N,
        "deltas": list(cfg.deltas),
        "failures": f"{cfg.failures} (max_fail={cfg.max_fail})",
        "chunk_model": cfg.chunk_model,
        "latency": cfg.comm.latency,
        "bandwidth": cfg.comm.bandwidth,
    }


__all__ = ["Config", "chunk_times", "config_from_options", "graphs", "run"]
