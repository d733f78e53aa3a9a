"""A cluster dies with the process that started it: ``kill -9`` of a script using
``LocalCluster``, or of ``fabrichost run``, leaves no process and no temporary state directory
(the pytest plugin's case is in tests/testing/test_plugin.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import agents_serving, marked_processes, write_guest_package
from tests.integration.leftovers import DEADLINE, wait_nothing_left

pytestmark = pytest.mark.integration

# A guest has no channel to the agent: only the agent's stop ends it.
GUEST = "import signal\nprint('guest up', flush=True)\nsignal.pause()\n"

SCRIPT = """
import sys, time
from fabrichost import LocalCluster

cluster = LocalCluster()
cluster.deploy(sys.argv[1], name="fabric:/Guest")
print("state directory", cluster.state_dir, flush=True)
time.sleep(600)
"""


def _wait_for_output(path: Path, pattern: str) -> re.Match[str]:
    deadline = time.monotonic() + DEADLINE
    while (found := re.search(pattern, path.read_text())) is None:
        assert time.monotonic() < deadline, f"{pattern!r} not printed:\n{path.read_text()}"
        time.sleep(0.05)  # another process writes the file: bounded poll
    return found


@pytest.mark.parametrize("owner", ["script", "run"])
def test_kill_9_of_the_owner_leaves_nothing(owner: str, tmp_path: Path) -> None:
    package = write_guest_package(tmp_path / "Guest", script=GUEST, default_service=True)
    if owner == "script":
        argv = [sys.executable, "-c", SCRIPT, str(package)]
    else:
        argv = [sys.executable, "-m", "fabrichost", "run", str(package)]
    output = tmp_path / "output"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    try:
        state_dir = Path(_wait_for_output(output, r"state directory (\S+?)\.?\s").group(1))
        assert state_dir.name.startswith("fabrichost-")  # a temporary one
        (agent,) = agents_serving(state_dir)
        assert len(marked_processes(state_dir)) == 1  # the guest runs
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_nothing_left(state_dir, agent.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
