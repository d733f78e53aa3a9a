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
PY_HOST_TYPES = 14

#: The close bounds every host starts with. They are far longer than any stall of a loaded CI
#: machine, so no test depends on the host being scheduled in time, and they cost nothing: each
#: wait ends as soon as what it waits for (a run, a close) does. A test that needs a bound to
#: expire passes a short one itself, e.g. ``FABRICHOST_RUN_GRACE`` for a run that ignores its
#: token, ``FABRICHOST_CLOSE_TIMEOUT`` for a replica that can never close.
GENEROUS_BOUNDS = {"FABRICHOST_CLOSE_TIMEOUT": "20", "FABRICHOST_RUN_GRACE": "10"}


@pytest.fixture
def start_host(tmp_path: Path) -> Iterator[Callable[..., AgentSide]]:
    """Start a host process (argv, default: the Python test host); killed at teardown."""
    started: list[AgentSide] = []

    def start(argv: Sequence[str] | None = None, **env: str) -> AgentSide:
        argv = argv or [sys.executable, str(HOSTS / "py_host.py")]
        side = spawn_host(argv, tmp_path, {**GENEROUS_BOUNDS, **env})
        started.append(side)
        return side

    try:
        yield start
    finally:
        for side in started:
            side.close()


@pytest.fixture
def start_py_host(start_host: Callable[..., AgentSide]) -> Callable[..., AgentSide]:
    """Start the Python test host with extra environment (``**env``), past the handshake."""

    def start(**env: str) -> AgentSide:
        side = start_host(**env)
        assert len(side.handshake(PY_HOST_TYPES)) == PY_HOST_TYPES
        return side

    return start


@pytest.fixture
def host(start_py_host: Callable[..., AgentSide]) -> AgentSide:
    """The Python test host, past the handshake with every type registered."""
    return start_py_host()
