"""Settings in -> figures and CSVs out: one module per ``gradcode reproduce X``, and the demo.

:mod:`~gradcode.reproduce.tandon2017` (Tandon et al. 2017, simulator),
:mod:`~gradcode.reproduce.ramamoorthy2024` (partial stragglers; its
``_setting``, ``_panels`` and :mod:`~gradcode.reproduce.partial_protocols`),
:mod:`~gradcode.reproduce.pgc_study` (``gradcode reproduce pgc``: PGC on logistic
regression, trained) and :mod:`~gradcode.reproduce.demo` (``gradcode demo``).
Figures and tables go through :mod:`gradcode.report`.
"""
