"""`fabrichost up` on a state directory that already holds a cluster, or that several `up`s
race for: the node count it keeps, and who reports which agent.

Every test drives the real command line (in-process through ``main`` or as subprocesses) with
a temporary ``--state-dir`` and stops the agent in a ``finally``, asserting that no process
carrying the directory's marker is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.cli import main
from fabrichost.client import FabricClient
from fabrichost.daemon import StateDirLock, stop_background
from fabrichost.wire import AgentRecord
from tests.integration.conftest import (
    MANIFESTS,
    agents_serving,
    marked_processes,
    write_guest_package,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A fresh state directory whose agent (if any) is stopped afterwards, leaving nothing."""
    path = (tmp_path / "state").resolve()
    try:
        yield path
    finally:
        record = AgentRecord.read(path)
        stop_background(path)
        left = marked_processes(path)
        for proc in left:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        assert not left, f"processes left behind: {left}"
        if record is not None:
            with contextlib.suppress(psutil.Error):
                assert psutil.Process(record.AgentProcessId).status() == psutil.STATUS_ZOMBIE


def fh(capsys: pytest.CaptureFixture[str], state: Path, *argv: str) -> tuple[int, str, str]:
    """``fabrichost <argv> --state-dir <state>`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([*argv, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def node_names(state: Path) -> list[str]:
    with FabricClient.for_state_dir(state, timeout=30) as client:
        return [n["Name"] for n in client.nodes()]


def test_up_without_nodes_keeps_the_node_count_the_cluster_had(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fh(capsys, state, "up", "--nodes", "3", "--port", "0")[0] == 0
    assert (
        fh(capsys, state, "app", "deploy", str(MANIFESTS / "MyApp"), "--name", "fabric:/A")[0] == 0
    )
    create = ["service", "create", "fabric:/A/S", "--type", "MyServiceType", "--stateful"]
    code, _, err = fh(capsys, state, *create, "--replicas", "3", "--wait", "--timeout", "30")
    assert code == 0, err
    assert fh(capsys, state, "down")[0] == 0

    code, out, err = fh(capsys, state, "up", "--port", "0")
    assert code == 0, err
    assert "(3 node(s)" in out
    assert node_names(state) == ["_Node_0", "_Node_1", "_Node_2"]
    with FabricClient.for_state_dir(state, timeout=60) as client:
        client.wait_service_ready("fabric:/A/S", 30)
        (partition,) = client.partitions("fabric:/A/S")
        replicas = client.replicas(partition["PartitionInformation"]["Id"])
        assert len({r["NodeName"] for r in replicas}) == 3, replicas
        assert client.service("fabric:/A/S")["HealthWarnings"] == []


def test_a_state_dir_from_before_the_node_count_was_recorded_is_judged_by_its_store(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fh(capsys, state, "up", "--nodes", "3", "--port", "0")[0] == 0
    with FabricClient.for_state_dir(state, timeout=60) as client:
        client.deploy(MANIFESTS / "MyApp", "fabric:/A")
    create = ["service", "create", "fabric:/A/S", "--type", "MyServiceType", "--stateful"]
    assert fh(capsys, state, *create, "--replicas", "3", "--wait", "--timeout", "30")[0] == 0
    assert fh(capsys, state, "down")[0] == 0
    (state / "cluster.json").unlink(missing_ok=True)  # as an older fabrichost left it
    assert fh(capsys, state, "up", "--port", "0")[0] == 0
    assert len(node_names(state)) == 3


def test_an_explicit_node_count_resizes_the_cluster_and_is_kept(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fh(capsys, state, "up", "--nodes", "2", "--port", "0")[0] == 0
    assert fh(capsys, state, "down")[0] == 0
    code, _, err = fh(capsys, state, "up", "--nodes", "1", "--port", "0")
    assert code == 0, err
    assert "had 2 node(s) and now has 1" in err
    assert fh(capsys, state, "down")[0] == 0
    assert fh(capsys, state, "up", "--port", "0")[0] == 0
    assert node_names(state) == ["_Node_0"]


def test_up_against_a_running_agent_says_so_and_refuses_another_node_count(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = fh(capsys, state, "up", "--nodes", "3", "--port", "0")
    assert code == 0
    pid = AgentRecord.read(state).AgentProcessId  # type: ignore[union-attr]

    code, out, err = fh(capsys, state, "up", "--nodes", "5", "--port", "0")
    assert code == 1, out
    assert "already serves" in err
    assert "3 node(s)" in err
    assert "--nodes 5 was not applied" in err

    code, out, err = fh(capsys, state, "up", "--port", "0")
    assert code == 0, err
    assert f"agent {pid} already serves" in out
    assert "(3 node(s)" in out
    assert fh(capsys, state, "up", "--nodes", "3", "--port", "0")[0] == 0
    assert len(node_names(state)) == 3
    assert AgentRecord.read(state).AgentProcessId == pid  # type: ignore[union-attr]


def test_concurrent_ups_of_one_fresh_state_dir_all_report_the_one_agent(state: Path) -> None:
    argv = [sys.executable, "-m", "fabrichost", "up", "--port", "0", "--json"]
    procs = [
        subprocess.Popen(
            [*argv, "--state-dir", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert [code for code, _, _ in results] == [0, 0, 0], results
    answers = [json.loads(out) for _, out, _ in results]
    assert len({a["AgentProcessId"] for a in answers}) == 1, answers
    assert sorted(a["Started"] for a in answers) == [False, False, True]


def test_down_while_up_restores_the_cluster_stops_the_agent_once_it_serves(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A guest that ignores SIGTERM outlives a SIGKILLed agent, and the next agent's fence must
    # wait out its grace before it may serve: a restore that takes a second at least.
    stubborn = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    stubborn += "while True:\n    time.sleep(60)\n"
    package = write_guest_package(tmp_path / "Stubborn", script=stubborn, default_service=True)
    assert fh(capsys, state, "up", "--port", "0")[0] == 0
    assert fh(capsys, state, "app", "deploy", str(package), "--name", "fabric:/S")[0] == 0
    first = AgentRecord.read(state)
    assert first is not None
    deadline = time.monotonic() + 30
    while not marked_processes(state):
        assert time.monotonic() < deadline, "the guest never started"
        time.sleep(0.05)
    os.kill(first.AgentProcessId, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(first.AgentProcessId).wait(10)

    up = subprocess.Popen(
        [sys.executable, "-m", "fabrichost", "up", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not StateDirLock(state).is_held_elsewhere():  # the new agent is restoring
            assert up.poll() is None, up.communicate()
            assert time.monotonic() < deadline, "the new agent never took the state directory"
            time.sleep(0.01)
        assert stop_background(state) is True  # it waited for the agent, then stopped it
        _, err = up.communicate(timeout=60)
        assert up.returncode == 0, err
        assert not agents_serving(state)
        assert not marked_processes(state)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
        for agent in agents_serving(state):
            with contextlib.suppress(psutil.Error):
                agent.kill()


def test_down_kills_an_agent_that_never_starts_serving_and_sweeps_its_processes(
    state: Path,
) -> None:
    # A stand-in for an agent stuck before it serves (say, in a restore that hangs): it holds
    # the directory's lock the way the agent does, and one process carries the marker.
    hung = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from fabrichost.daemon import StateDirLock\n"
            "lock = StateDirLock(Path(sys.argv[1]))\n"
            "lock.acquire()\n"
            "print('locked', flush=True)\n"
            "time.sleep(3600)\n",
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    stray = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)"],
        env={**os.environ, "FABRICHOST_AGENT_STATE_DIR": str(state)},
    )
    try:
        assert hung.stdout is not None
        assert hung.stdout.readline() == "locked\n"
        told: list[str] = []
        assert stop_background(state, timeout=2, on_wait=told.append) is True
        assert hung.wait(10) is not None
        assert stray.wait(10) is not None
        assert any("did not start serving" in message for message in told), told
    finally:
        for proc in (hung, stray):
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        if hung.stdout is not None:
            hung.stdout.close()


def test_down_stops_the_agent_even_without_its_turn_lock(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fh(capsys, state, "up", "--port", "0")[0] == 0
    record = AgentRecord.read(state)
    assert record is not None
    # `down` cannot take up.lock (as in a directory it may not write): it stops the agent anyway.
    (state / "up.lock").unlink()
    (state / "up.lock").mkdir()
    code, out, err = fh(capsys, state, "down")
    assert code == 0, err
    assert "stopped the agent" in out
    assert not agents_serving(state)


def _fork_servers(agent_pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(agent_pid).children()
        if "serve_forks" in " ".join(child.cmdline())
    ]


@pytest.mark.parametrize("fork", [True, False])
def test_up_no_fork_server_spawns_every_host(
    state: Path, capsys: pytest.CaptureFixture[str], fork: bool
) -> None:
    option = "--fork-server" if fork else "--no-fork-server"
    assert fh(capsys, state, "up", "--port", "0", option)[0] == 0
    create = ["service", "create", "fabric:/A/S", "--type", "MyServiceType", "--stateful"]
    create += ["--replicas", "1", "--activation-mode", "ExclusiveProcess", "--wait"]
    with FabricClient.for_state_dir(state, timeout=60) as client:
        client.deploy(MANIFESTS / "MyApp", "fabric:/A")
    code, _, err = fh(capsys, state, *create, "--timeout", "30")
    assert code == 0, err
    record = AgentRecord.read(state)
    assert record is not None
    assert len(_fork_servers(record.AgentProcessId)) == (1 if fork else 0)


def test_a_local_cluster_without_a_fork_server_spawns_every_host(tmp_path: Path) -> None:
    from fabrichost import LocalCluster

    with LocalCluster(state_dir=tmp_path / "state", fork_server=False) as cluster:
        cluster.deploy(MANIFESTS / "MyApp", "fabric:/A")
        create = ["service", "create", "fabric:/A/S", "--type", "MyServiceType", "--stateful"]
        create += ["--replicas", "1", "--activation-mode", "ExclusiveProcess", "--wait"]
        assert main([*create, "--state-dir", str(cluster.state_dir)]) == 0
        assert _fork_servers(cluster.agent_pid) == []
        assert "--no-fork-server" in psutil.Process(cluster.agent_pid).cmdline()
    assert marked_processes(tmp_path / "state") == []
