"""Gradient codes: placement, per-round work, encoding and decoding (pure NumPy).

Every scheme is a :class:`GradientCode` and is registered in :data:`REGISTRY`,
the one explicit table of scheme names.  Build one with :func:`make_code`::

    >>> from gradcode.codes import make_code
    >>> code = make_code("frc", n=6, s=2)
    >>> code.load, code.decode([0, 4]).exact
    (3, True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .approximate import SGC, OptimalLstsq
from .base import EXACT_TOL, Decoding, GradientCode, LinearCode, lstsq_decoding
from .crc import CRC
from .cyclic_mds import CyclicMDS, is_real_valued
from .frc import FRC, ErasureHead
from .partial_scheme import PartialScheme
from .pgc import PGC
from .pgc_variants import ISLateFold, PGCMemory, PGCReference
from .sequential import SRSGC
from .simple import DGD, ISSGD
from .tandon_partial import TandonPartial


@dataclass(frozen=True)
class SchemeInfo:
    """One row of the registry."""

    name: str
    factory: Callable[..., GradientCode]
    exact: bool
    summary: str
    citation: str
    takes_rng: bool = False
    stateful: bool = False  # speaks the round protocol itself (not a GradientCode)
    #: Builds inner codes by name: :func:`make_code` passes itself as ``make_code=``.
    takes_codes: bool = False
    #: ``False``: waits for every worker (``dgd``), so it is built with ``s = 0``.
    tolerates_stragglers: bool = True

    def effective_s(self, s: int) -> int:
        """The ``s`` this scheme is built with when ``s`` stragglers are asked for."""
        return s if self.tolerates_stragglers else 0


REGISTRY: dict[str, SchemeInfo] = {
    info.name: info
    for info in (
        SchemeInfo(
            "dgd", DGD, True, "wait for all n workers", "synchronous GD", tolerates_stragglers=False
        ),
        SchemeInfo(
            "is_sgd",
            ISSGD,
            False,
            "first n-s gradients, rescaled n/(n-s)",
            "Chen et al. 2016 (backup workers)",
        ),
        SchemeInfo(
            "frc", FRC, True, "fractional repetition, groups of s+1", "Tandon et al. ICML 2017"
        ),
        SchemeInfo(
            "crc",
            CRC,
            True,
            "cyclic repetition, random null-space B",
            "Tandon et al. ICML 2017",
            takes_rng=True,
        ),
        SchemeInfo(
            "cyclic_mds",
            CyclicMDS,
            True,
            "real cyclic MDS code (n+s odd), stable",
            "Raviv et al. ICML 2018 / IEEE TIT 2020",
        ),
        SchemeInfo(
            "erasurehead",
            ErasureHead,
            False,
            "FRC placement, one message per covered group",
            "Wang et al. 2019 (ErasureHead)",
        ),
        SchemeInfo(
            "sgc",
            SGC,
            False,
            "stochastic GC: scaled sums, add all arrivals",
            "Bitar et al. IEEE JSAIT 2020",
        ),
        SchemeInfo(
            "pgc",
            PGC,
            True,
            "pipelined GC: 1 partition/round, sum of latest s+1 (stale)",
            "gradcode (flagship)",
            stateful=True,
        ),
        SchemeInfo(
            "pgc_reference",
            PGCReference,
            False,
            "PGC, CR placement, uniform decoder",
            "public PGC reference script",
            stateful=True,
        ),
        SchemeInfo(
            "pgc_memory",
            PGCMemory,
            True,
            "fresh gradient only; master keeps latest per part",
            "gradcode (PGC variant)",
            stateful=True,
        ),
        SchemeInfo(
            "is_latefold",
            ISLateFold,
            False,
            "IS-SGD with late results folded in",
            "gradcode (ablation)",
            stateful=True,
        ),
        SchemeInfo(
            "partial",
            PartialScheme,
            True,
            "partial stragglers: streamed chunks, l parts",
            "Ramamoorthy, Meng, Girimaji NeurIPS 2024",
            takes_rng=True,
            stateful=True,
        ),
        SchemeInfo(
            "tandon_partial",
            TandonPartial,
            True,
            "partial stragglers: unique part uncoded + GC shared part, 2 messages",
            "Tandon et al. ICML 2017 (partial stragglers)",
            takes_rng=True,
            stateful=True,
        ),
        SchemeInfo(
            "sr_sgc",
            SRSGC,
            True,
            "sequential GC: exact gradient B rounds late, load ceil(B s/(W-1+B))+1",
            "Krishnan, Ebrahimi, Khisti ICLR 2023",
            takes_rng=True,
            stateful=True,
            takes_codes=True,
        ),
        SchemeInfo(
            "lstsq",
            OptimalLstsq,
            False,
            "any B, optimal least-squares decoder",
            "Glasgow & Wootters IEEE JSAIT 2021",
        ),
    )
}


#: Constructor arguments :func:`make_code` supplies itself (so they are not user options).
BUILDER_ARGUMENTS = ("n", "s", "rng", "make_code")


def scheme_info(name: str) -> SchemeInfo:
    """The registry row of ``name``; an unknown name is a one-line :class:`ValueError`."""
    info = REGISTRY.get(name)
    if info is None:
        raise ValueError(f"unknown scheme {name!r}; known schemes: {', '.join(REGISTRY)}")
    return info


def effective_stragglers(name: str, s: int) -> int:
    """The straggler count scheme ``name`` is built with when ``s`` are asked for: ``0``
    for a scheme that waits for every worker (``dgd``), else ``s`` (unknown names: ``s``;
    building them reports the name).

    >>> effective_stragglers("dgd", 3), effective_stragglers("frc", 3)
    (0, 3)
    """
    info = REGISTRY.get(name)
    return s if info is None else info.effective_s(s)


def stateless_names() -> list[str]:
    """Schemes that are plain :class:`GradientCode` objects (one encoding matrix)."""
    return [name for name, info in REGISTRY.items() if not info.stateful]


def make_scheme(name: str, n: int, s: int, rng: np.random.Generator | None = None, **options):
    """Any registered scheme as a round-protocol object (codes are wrapped)."""
    from .protocol import as_scheme

    return as_scheme(make_code(name, n, s, rng=rng, **options))


def make_code(
    name: str, n: int, s: int, rng: np.random.Generator | None = None, **options
) -> GradientCode:
    """Build the scheme ``name`` for ``n`` workers tolerating ``s`` stragglers.

    ``rng`` seeds randomised constructions (``crc``); other options are passed
    to the scheme (e.g. ``d=`` for approximate codes).  Unknown names and bad
    parameters raise :class:`ValueError` with a one-line explanation.
    """
    info = scheme_info(name)
    if info.takes_rng:
        options["rng"] = rng
    if info.takes_codes:
        options["make_code"] = make_code
    try:
        return info.factory(n, s, **options)
    except TypeError as exc:  # unexpected option names
        raise ValueError(f"bad options for scheme {name!r}: {exc}") from None


__all__ = [
    "BUILDER_ARGUMENTS",
    "CRC",
    "DGD",
    "EXACT_TOL",
    "FRC",
    "ISSGD",
    "REGISTRY",
    "SGC",
    "CyclicMDS",
    "Decoding",
    "ErasureHead",
    "GradientCode",
    "LinearCode",
    "OptimalLstsq",
    "PartialScheme",
    "PGC",
    "ISLateFold",
    "PGCMemory",
    "PGCReference",
    "SRSGC",
    "TandonPartial",
    "effective_stragglers",
    "scheme_info",
    "stateless_names",
    "make_scheme",
    "SchemeInfo",
    "is_real_valued",
    "lstsq_decoding",
    "make_code",
]
