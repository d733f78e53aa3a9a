"""The pytest plugin, run in real pytest processes (pytester): two xdist workers with a
cluster each, the logs in a failing test's report, and a SIGKILLed pytest leaving nothing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import marked_processes
from tests.integration.leftovers import wait_for_file_line, wait_nothing_left

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "testing"

# Beside the example's passing tests: one that fails (its report must carry the logs) and
# records where its worker's cluster lives.
FAILING = """
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "WebApp"


def test_fails_after_a_deploy(fabric_cluster):
    fabric_cluster.deploy(PACKAGE, name="fabric:/Failing")
    assert fabric_cluster.endpoints("fabric:/Failing/Web")["Web"].startswith("http://")
    assert False, "on purpose"


def test_gets_a_cluster_of_its_own(fabric_cluster, fabric_cluster_factory):
    own = fabric_cluster_factory()
    assert own.state_dir != fabric_cluster.state_dir
    assert own.client.applications() == []
"""

# Every test records its worker's cluster.
RECORDING = """
import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _record(fabric_cluster):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    Path(os.environ["RECORD_DIR"], worker).write_text(f"{fabric_cluster.state_dir}\\n")
"""

BLOCKING = """
import os, time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "WebApp"


def test_blocks(fabric_cluster):
    fabric_cluster.deploy(PACKAGE, name="fabric:/Web")
    Path(os.environ["RECORD"]).write_text(
        f"{fabric_cluster.state_dir} {fabric_cluster.agent_pid}\\n"
    )
    time.sleep(600)
"""


def _example_project(pytester: pytest.Pytester, test_file: str, source: str) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    (pytester.path / "tests" / test_file).write_text(source)


def test_two_workers_get_a_cluster_each_and_a_failure_carries_the_logs(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _example_project(pytester, "test_other.py", FAILING)
    (pytester.path / "conftest.py").write_text(RECORDING)
    monkeypatch.setenv("RECORD_DIR", str(tmp_path))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "load", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    out = result.stdout.str()
    # The failing test's report: the agent's log and the service's console output.
    assert "fabrichost logs of" in out
    assert "agent serving" in out  # the agent's log
    assert "serving on port" in out  # the service's stdout (web.py)
    state_dirs = [Path(line) for p in tmp_path.iterdir() for line in p.read_text().split()]
    assert len(set(state_dirs)) == len(state_dirs) == 2  # a cluster per worker
    for state_dir in state_dirs:  # stopped at the session's end, temp folder removed
        assert not state_dir.exists()
        assert marked_processes(state_dir) == []


def test_a_sigkilled_pytest_leaves_nothing(pytester: pytest.Pytester, tmp_path: Path) -> None:
    _example_project(pytester, "test_blocks.py", BLOCKING)
    (pytester.path / "tests" / "test_web.py").unlink()
    record = tmp_path / "record"
    with (tmp_path / "pytest.out").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_blocks.py"],
            cwd=pytester.path,
            env={**os.environ, "RECORD": str(record)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        state, pid = wait_for_file_line(record, timeout=60).split()
        state_dir = Path(state)
        assert marked_processes(state_dir) != []  # the service runs
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        wait_nothing_left(state_dir, int(pid))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
