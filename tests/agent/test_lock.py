"""Incarnation locks: held exactly as long as the process that inherited them lives."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._lock import acquire_nowait, is_held
from fabrichost.errors import ActivationError

if TYPE_CHECKING:
    from pathlib import Path


def test_a_lock_passed_to_a_child_is_held_until_the_child_dies(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "slot.lock"
    fd = acquire_nowait(path)
    child = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.pause()"], pass_fds=(fd,)
    )
    try:
        os.close(fd)  # as the agent does once the child runs
        assert is_held(path)
        with pytest.raises(ActivationError, match="still locked by a live process"):
            acquire_nowait(path)
    finally:
        child.kill()
        child.wait()
    assert not is_held(path), "the kernel released it when the child died"
    os.close(acquire_nowait(path))


def test_a_missing_lock_file_is_not_held(tmp_path: Path) -> None:
    assert not is_held(tmp_path / "nothing.lock")
