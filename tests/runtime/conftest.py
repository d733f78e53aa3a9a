"""Fixtures that start real runtime hosts and always kill them."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import pytest

from .agent_side import HOSTS, AgentSide, spawn_host

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

#: Every service type the Python test host registers, in order.
PY_HOST_TYPES = 12


@pytest.fixture
def start_host(tmp_path: Path) -> Iterator[Callable[..., AgentSide]]:
    """Start a host process (argv, default: the Python test host); killed at teardown."""
    started: list[AgentSide] = []

    def start(argv: Sequence[str] | None = None, **env: str) -> AgentSide:
        argv = argv or [sys.executable, str(HOSTS / "py_host.py")]
        # Short close bounds keep the tests that exercise them quick.
        side = spawn_host(
            argv, tmp_path, {"FABRICHOST_CLOSE_TIMEOUT": "1", "FABRICHOST_RUN_GRACE": "0.5", **env}
        )
        started.append(side)
        return side

    try:
        yield start
    finally:
        for side in started:
            side.close()


@pytest.fixture
def host(start_host: Callable[..., AgentSide]) -> AgentSide:
    """The Python test host, past the handshake with every type registered."""
    side = start_host()
    assert len(side.handshake(PY_HOST_TYPES)) == PY_HOST_TYPES
    return side
