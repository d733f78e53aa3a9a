"""Messages a new user sees when a name is wrong or a command found less than expected: each
says what exists instead, or what was done."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent import ENV_MARKER
from fabrichost.cli import main
from tests.integration.conftest import MANIFESTS, cluster, fh, marked_processes

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

__all__ = ("cluster",)  # the fixture, re-exported for the tests below

pytestmark = pytest.mark.integration


def test_restarting_a_code_package_that_is_not_there_names_the_node_and_what_is(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = fh(
        cluster, capsys, "app", "deploy", str(MANIFESTS / "MyApp"), "--name", "fabric:/A"
    )
    assert code == 0, err
    create = ["service", "create", "fabric:/A/S", "--type", "MyServiceType", "--stateful"]
    code, _, err = fh(cluster, capsys, *create, "--replicas", "1", "--wait")
    assert code == 0, err

    restart = ["code-package", "restart", "--node", "_Node_0", "--app", "fabric:/A"]
    code, _, err = fh(
        cluster, capsys, *restart, "--manifest", "MyServicePackage", "--code-package", "Cod"
    )

    assert code != 0
    assert "MyServicePackage/Cod" in err  # what was asked for
    assert "_Node_0" in err
    assert "MyServicePackage/MyCodePackage" in err  # what is there


def test_logs_of_an_application_that_does_not_exist_says_so(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = fh(
        cluster, capsys, "app", "deploy", str(MANIFESTS / "MyApp"), "--name", "fabric:/A"
    )
    assert code == 0, err

    code, _, err = fh(cluster, capsys, "logs", "--node", "_Node_0", "--app", "fabric:/Nope")

    assert code != 0
    assert "application fabric:/Nope does not exist; applications: fabric:/A" in err
    assert "activation" not in err
    # An application that exists but runs nothing on the node is told apart.
    code, _, err = fh(cluster, capsys, "logs", "--node", "_Node_0", "--app", "fabric:/A")
    assert code != 0
    assert "fabric:/A has no activation on _Node_0" in err


def test_down_says_what_it_swept_when_no_agent_was_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = (tmp_path / "state").resolve()
    state.mkdir()
    # A process an agent that was killed left behind: it carries the state directory's marker.
    stray = subprocess.Popen(
        [sys.executable, "-c", "import signal; signal.pause()"],
        env={**os.environ, ENV_MARKER: str(state)},
    )
    try:
        assert [p.pid for p in marked_processes(state)] == [stray.pid]
        capsys.readouterr()
        code = main(["down", "--state-dir", str(state)])
        out, _ = capsys.readouterr()

        assert code == 0
        assert stray.wait(timeout=30) is not None
        assert f"stopped 1 process(es) an earlier agent of {state} left behind" in out
        assert f"(pids {stray.pid})" in out
        assert "no agent was running" not in out
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()
