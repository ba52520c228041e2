"""Trace files for tests: a small long-format trace of our own, and the shared measured ones.

The shared AWS Lambda traces live outside the repository (``../shared/traces``
next to the checkout, or the folder named by ``GRADCODE_TRACES``); tests that
use them skip cleanly where they are absent (a clean CI checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_NAMES = ("aws_lambda_sydney_256w_20r.csv", "aws_lambda_tokyo_256w_10r.csv")


def shared_dir() -> Path:
    return Path(os.environ.get("GRADCODE_TRACES", REPO.parent / "shared" / "traces"))


def shared_trace(name: str) -> Path:
    """Path of a shared trace, or skip the test."""
    path = shared_dir() / name
    if not path.is_file():
        pytest.skip(f"shared trace {name} not found in {shared_dir()} (set GRADCODE_TRACES)")
    return path


def own_table(rounds=3, workers=8, loads=(0.0, 1.0, 2.0, 4.0), seed=0) -> np.ndarray:
    """A made-up ``(rounds, workers, loads)`` table: latency-heavy, noisy, one slow cell."""
    rng = np.random.default_rng(seed)
    L = np.asarray(loads)
    t = (
        1.0
        + 0.5 * rng.random((rounds, workers, 1))
        + 0.1 * L
        + 0.05 * rng.random((rounds, workers, len(L)))
    )
    t[1, 2, 1:] += 7.0  # a stall at every load > 0
    return np.round(t, 6)


def write_long(path: Path, table: np.ndarray, loads, shuffle_seed: int | None = 1) -> Path:
    """Write ``table`` in the long format (columns shuffled, rows shuffled, one extra column)."""
    rows = [
        f"{s!r},{r},{w},x,{L!r}"
        for r in range(table.shape[0])
        for w in range(table.shape[1])
        for (k, L) in enumerate(loads)
        for s in [float(table[r, w, k])]
    ]
    if shuffle_seed is not None:
        np.random.default_rng(shuffle_seed).shuffle(rows)
    path.write_text("seconds,round,worker,note,load\n" + "\n".join(rows) + "\n")
    return path
