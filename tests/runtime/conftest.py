"""Shared fixtures for the runtime tests."""

import pytest


@pytest.fixture(scope="module")
def ray_session():
    """A local 2-CPU Ray instance for one test module (an already running one is reused
    and left running)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()
