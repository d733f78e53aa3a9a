"""Waiting for a killed owner's cluster to vanish, by pid and by folder, with a deadline."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import psutil

from tests.integration.conftest import agents_serving, marked_processes

if TYPE_CHECKING:
    from pathlib import Path

# Generous: CI runs on 2 busy cores. The goal (docs/testing.md) is a couple of seconds.
DEADLINE = 30.0


def wait_nothing_left(state_dir: Path, agent_pid: int, timeout: float = DEADLINE) -> float:
    """Wait until no process of ``state_dir``'s cluster is alive (its marked processes and
    its agent, by pid) and the folder is gone; return the seconds it took. On the deadline,
    kill what is left (so the suite stays clean) and fail, naming it."""
    start = time.monotonic()
    while True:
        left = [*marked_processes(state_dir), *agents_serving(state_dir)]
        agent_alive = _alive(agent_pid)
        if not left and not agent_alive and not state_dir.exists():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            raise AssertionError(
                f"{timeout:.0f} s after its owner's death: processes {left}, agent "
                f"{agent_pid} {'alive' if agent_alive else 'gone'}, state dir "
                f"{'still there' if state_dir.exists() else 'gone'}"
            )
        time.sleep(0.05)  # nothing to wait on for another session's processes: bounded poll


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_file_line(path: Path, timeout: float = DEADLINE) -> str:
    """The first complete line written to ``path`` (another process writes it), waited for."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text.endswith("\n"):
                return text.splitlines()[0]
        assert time.monotonic() < deadline, f"nothing written to {path} in {timeout:.0f} s"
        time.sleep(0.05)
