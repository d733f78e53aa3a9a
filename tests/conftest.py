"""Fixtures every test package shares."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio: the agent and the runtime are asyncio."""
    return "asyncio"
