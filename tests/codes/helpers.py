"""Shared helpers for the code tests: which (scheme, n, s) exist, and a decode check."""

from __future__ import annotations

import numpy as np

from gradcode.codes import GradientCode, make_code

EXACT_SCHEMES = ("dgd", "frc", "crc", "cyclic_mds")
APPROX_SCHEMES = ("is_sgd", "erasurehead", "sgc", "lstsq")


def build(name: str, n: int, s: int, seed: int = 0) -> GradientCode | None:
    """The code, or ``None`` where the scheme does not exist for (n, s)."""
    try:
        return make_code(name, n, s, rng=np.random.default_rng(seed))
    except ValueError:
        return None


def decoded_error(code: GradientCode, arrived, rng: np.random.Generator, dim: int = 7) -> float:
    """Relative error of the decoded sum of random partial gradients (float64)."""
    G = rng.standard_normal((code.k, dim))
    messages = np.stack([code.encode(i, G[list(code.placement[i])]) for i in range(code.n)])
    out = code.decode(arrived).combine(messages)
    truth = G.sum(axis=0)
    return float(np.linalg.norm(out - truth) / np.linalg.norm(truth))
