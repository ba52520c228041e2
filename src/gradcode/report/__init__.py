"""Results directory in -> tables, figures and ``report.html`` out (``gradcode report``).

Reads what :mod:`gradcode.grid` wrote (``results.csv``, ``rounds.csv``, ``tuning.csv``)
and nothing else.  :mod:`~gradcode.report.tables` (targets, statistics, writers, scheme
order, the baseline) is a leaf shared with the grid's tuner and the reproductions;
:mod:`~gradcode.report.analysis`, :mod:`~gradcode.report.study`,
:mod:`~gradcode.report.wallclock`, :mod:`~gradcode.report.fidelity` and
:mod:`~gradcode.report.sections` compute tables without matplotlib;
:mod:`~gradcode.report.plotting`, :mod:`~gradcode.report.figures` and
:mod:`~gradcode.report.study_figures` draw; :mod:`~gradcode.report.page` writes it all
(:func:`~gradcode.report.page.render_report`).
"""
