"""A real ``JobsCode`` host (started through its launcher) driven from the agent's end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.runtime.agent_side import REPO, AgentSide, spawn_host

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

LAUNCHER = REPO / "manifests/SingletonJobs/JobsPackage/JobsCode/launch.sh"


@pytest.fixture
def jobs_host(tmp_path: Path) -> Iterator[AgentSide]:
    """The jobs host past the handshake (every type registered); killed at teardown."""
    # A short run grace keeps a test of a run that ignores cancellation quick.
    side = spawn_host(
        [str(LAUNCHER)], tmp_path, {"FABRICHOST_CLOSE_TIMEOUT": "2", "FABRICHOST_RUN_GRACE": "1"}
    )
    try:
        assert sorted(side.handshake(3)) == ["ApprovalJob", "EchoJob", "EternalJob"]
        yield side
    finally:
        side.close()
