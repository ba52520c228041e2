"""Which scheme should I use?  The advisor behind ``gradcode advise`` and ``gradcode.advise``.

Given measured worker times (a trace, a run's own measurements) or a delay
model, and ``n``, the advisor characterises the cluster (:mod:`.regime`),
times every registered scheme at every ``s`` in ``0..max_s`` by exact trace
replay or model draws (:mod:`.candidates`), turns round times into time to
target with convergence factors (:mod:`.factors`), and recommends the fastest
with the reason (:mod:`.core`, :mod:`.reason`).

Layer: imports :mod:`gradcode.codes`, :mod:`gradcode.stragglers`,
:mod:`gradcode.sim` and :mod:`gradcode.clock` only, so a runtime can call
:func:`advise` on the times it has measured so far.
"""

from .candidates import Timing
from .core import MAX_N, Advice, Candidate, advise, as_measured
from .factors import STUDY_FACTORS, STUDY_FILES, factor_for, read_factors
from .regime import Regime, characterise

__all__ = [
    "MAX_N",
    "STUDY_FACTORS",
    "STUDY_FILES",
    "Advice",
    "Candidate",
    "Regime",
    "Timing",
    "advise",
    "as_measured",
    "characterise",
    "factor_for",
    "read_factors",
]
