"""Fixtures and settings every test package shares."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

# One Hypothesis profile for the whole suite. A property test checks properties, not speed: on a
# loaded machine (CI runs beside other jobs, on 2 cores) generating inputs can take seconds, and
# neither the per-example deadline nor the "too slow" health check may turn that into a failure.
# A test that needs other settings builds on this profile (``settings(parent=settings.default)``
# is implicit; a ``suppress_health_check`` of its own must keep these).
LOAD_TOLERANT: tuple[HealthCheck, ...] = (HealthCheck.too_slow,)
settings.register_profile("fabrichost", deadline=None, suppress_health_check=LOAD_TOLERANT)
settings.load_profile("fabrichost")


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio: the agent and the runtime are asyncio."""
    return "asyncio"
