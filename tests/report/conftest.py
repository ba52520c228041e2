"""The grids the report tests render: the same session-wide runs as ``tests/grid``."""

from tests.grid.conftest import ci_config, ci_results, tuned_results  # noqa: F401
