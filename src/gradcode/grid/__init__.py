"""Experiment grid TOML in -> cells -> training runs -> ``results.csv`` / ``rounds.csv`` out.

:mod:`~gradcode.grid.schema` (what a grid is: settings, axes, cells),
:mod:`~gradcode.grid.parse` (TOML -> :class:`~gradcode.grid.schema.ExperimentConfig`),
:mod:`~gradcode.grid.checks` (values and names, every cell before it runs),
:mod:`~gradcode.grid.size` (cells counted without expanding them),
:mod:`~gradcode.grid.harness` (:func:`~gradcode.grid.harness.run_experiment`),
:mod:`~gradcode.grid.pool` (worker processes), :mod:`~gradcode.grid.reuse`
(train each trajectory once, re-time the rest), :mod:`~gradcode.grid.tuning`
(per-scheme learning rates) and :mod:`~gradcode.grid.results` (the results folder).
"""
