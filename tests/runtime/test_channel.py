"""How a runtime host starts, reports, and ends: handshake, EOF, Shutdown, faults, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.protocol import (
    AbortReplica,
    ConfigChanged,
    Error,
    ErrorCode,
    Fault,
    HealthState,
    Hello,
    OpenReplica,
    Ping,
    Pong,
    ReplicaFaulted,
    ReplicaOpened,
    ReplicaRole,
    ReportHealth,
    ReportLoad,
    RunCompleted,
    RunStatus,
    ServiceKind,
    Shutdown,
    ShutdownComplete,
    State,
)

from .agent_side import DEADLINE, HOSTS, error_text, host_environment
from .conftest import PY_HOST_TYPES
from .test_lifecycle import SHORT_GRACE, events, open_replica, wait_for_event

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .agent_side import AgentSide


def test_the_host_says_hello_with_its_pid_and_registers_every_type(
    start_host: Callable[..., AgentSide],
) -> None:
    side = start_host()
    hello = side.receive(Hello)
    assert hello.pid == side.process.pid
    assert hello.versions == (1, 2, 3)
    assert hello.runtime.startswith("python/3.")
    side.backlog.insert(0, hello)
    assert "SyncStatefulType" in side.handshake(PY_HOST_TYPES)


def test_a_refused_handshake_makes_the_host_exit_non_zero(
    start_host: Callable[..., AgentSide],
) -> None:
    side = start_host()
    hello = side.receive(Hello)
    side.send(Error(re=hello.id, code=ErrorCode.UNSUPPORTED_VERSION, message="speaks [9]"))
    assert side.conn.state is State.DONE
    side.sock.shutdown(1)  # SHUT_WR: the agent closes its end after refusing
    assert side.wait_exit() == 1


def test_eof_closes_every_replica_and_the_host_exits_zero(host: AgentSide, tmp_path: Path) -> None:
    for replica_id in (1, 2):
        assert isinstance(
            open_replica(host, "SyncStatefulType", replica_id=replica_id), ReplicaOpened
        )
    # Every run here honours its token (one that does not is the next test's): with the generous
    # grace, each run is seen cancelled before its close() however late its thread is scheduled.
    assert isinstance(open_replica(host, "AsyncStatefulType", replica_id=3), ReplicaOpened)
    host.sock.shutdown(1)
    assert host.wait_exit() == 0
    closed = {
        f"{replica_id} {event}" for replica_id in (1, 2, 3) for event in ("run-cancelled", "close")
    }
    assert closed <= set(events(tmp_path))
    assert not psutil.pid_exists(host.process.pid)


def test_eof_cancels_a_run_that_ignores_its_token_then_closes_the_replica(
    start_py_host: Callable[..., AgentSide], tmp_path: Path
) -> None:
    host = start_py_host(**SHORT_GRACE)
    assert isinstance(open_replica(host, "AsyncStatelessType", replica_id=3), ReplicaOpened)
    host.sock.shutdown(1)
    assert host.wait_exit() == 0
    assert events(tmp_path) == ["3 open", "3 run-start", "3 run-task-cancelled", "3 close"]


def test_shutdown_closes_replicas_answers_then_closes_the_channel(
    host: AgentSide, tmp_path: Path
) -> None:
    assert isinstance(open_replica(host, "AsyncStatefulType", replica_id=4), ReplicaOpened)
    reply = host.request(Shutdown)
    assert isinstance(reply, ShutdownComplete)
    assert "4 close" in events(tmp_path)
    assert host.expect_eof() == []
    assert host.wait_exit() == 0


def test_garbage_from_the_agent_gets_a_fault_and_a_non_zero_exit(host: AgentSide) -> None:
    host.send_raw(b"\x00\x00\x00\x05nope!")
    fault = host.receive(Fault)
    assert fault.code == ErrorCode.PROTOCOL_VIOLATION
    assert "not valid JSON" in fault.message
    assert host.expect_eof() == []
    assert host.wait_exit() == 1


def test_an_oversized_frame_faults_the_host(host: AgentSide) -> None:
    host.send_raw((64 * 1024 * 1024).to_bytes(4, "big"))
    assert "exceeds the maximum frame size" in host.receive(Fault).message
    assert host.wait_exit() == 1


def test_a_fault_from_the_agent_makes_the_host_exit_non_zero(host: AgentSide) -> None:
    host.send(Fault(code=ErrorCode.PROTOCOL_VIOLATION, message="you did something"))
    assert host.wait_exit() == 1


def test_ping_is_answered_with_pong(host: AgentSide) -> None:
    assert isinstance(host.request(Ping), Pong)


def test_sigterm_closes_replicas_and_exits_zero(host: AgentSide, tmp_path: Path) -> None:
    assert isinstance(open_replica(host, "SyncStatefulType", replica_id=8), ReplicaOpened)
    host.process.terminate()
    assert host.wait_exit() == 0
    assert "8 close" in events(tmp_path)


@pytest.mark.parametrize("service_type", ["JobType", "SyncJobType"])
def test_a_run_that_returns_is_reported_completed_with_its_output(
    host: AgentSide, service_type: str
) -> None:
    opened = open_replica(host, service_type, replica_id=9, init_data='return:{"answer": 42}')
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    done = host.receive(RunCompleted)
    assert (done.replica_id, done.status, done.output, done.error) == (
        9,
        RunStatus.COMPLETED,
        {"answer": 42},
        None,
    )


@pytest.mark.parametrize(
    ("service_type", "error"),
    [("JobType", "RuntimeError: it broke"), ("SyncJobType", "ValueError: it broke")],
)
def test_a_run_that_raises_is_reported_failed_with_the_exception(
    host: AgentSide, service_type: str, error: str
) -> None:
    assert isinstance(open_replica(host, service_type, init_data="raise:it broke"), ReplicaOpened)
    done = host.receive(RunCompleted)
    assert (done.status, done.output, done.error) == (RunStatus.FAILED, None, error)


def test_a_run_returning_something_that_is_not_json_is_reported_failed(host: AgentSide) -> None:
    assert isinstance(open_replica(host, "JobType", init_data="not-json"), ReplicaOpened)
    done = host.receive(RunCompleted)
    assert done.status is RunStatus.FAILED
    assert done.error is not None
    assert done.error.startswith("run() returned a value that is not JSON")


def test_reports_from_services_reach_the_agent(host: AgentSide) -> None:
    partition = str(uuid.uuid4())
    assert isinstance(open_replica(host, "ReporterType", partition_id=partition), ReplicaOpened)
    health = host.receive(ReportHealth)
    assert (health.partition_id, health.state, health.property) == (
        partition,
        HealthState.WARNING,
        "disk",
    )
    assert host.receive(ReportLoad).metrics == {"cpu": 5}
    assert host.receive(ReplicaFaulted).reason == "from a thread"


def test_abort_drops_the_replica_without_a_reply(host: AgentSide, tmp_path: Path) -> None:
    partition = str(uuid.uuid4())
    assert isinstance(open_replica(host, "BadCloseType", partition_id=partition), ReplicaOpened)
    host.send(AbortReplica(partition_id=partition, replica_id=1))
    assert wait_for_event(tmp_path, "1 abort") == ["1 abort"]
    assert isinstance(host.request(Ping), Pong)  # the host is still fine
    assert host.conn.owned_replicas() == frozenset()


def test_the_context_comes_from_the_environment_and_the_open_request(
    start_host: Callable[..., AgentSide],
) -> None:
    side = start_host(Fabric_ServicePackageActivationId="0c0e1a6f-2b9b-4d7e-9b0e-6d1c1f4b7a10")
    side.handshake(12, node_name="_Node_2")
    side.send(ConfigChanged(package="Config", settings={"Section": {"Key": "Value"}}))
    partition = str(uuid.uuid4())
    reply = side.request(
        OpenReplica,
        service_name="fabric:/App1/Ctx",
        service_type="ConfiguredType",
        service_kind=ServiceKind.STATELESS,
        partition_id=partition,
        replica_id=77,
        role=ReplicaRole.NONE,
        init_data="hello",
        endpoints={},
    )
    assert isinstance(reply, ReplicaOpened), error_text(reply)
    context = json.loads(reply.address)
    assert context == {
        "node_name": "_Node_2",
        "application_name": "fabric:/App1",
        "service_name": "fabric:/App1/Ctx",
        "service_type": "ConfiguredType",
        "partition_id": partition,
        "replica_id": 77,
        "role": "None",
        "activation_id": "0c0e1a6f-2b9b-4d7e-9b0e-6d1c1f4b7a10",
        "code_package_name": "Code",
        "service_package_name": "Pkg",
        "endpoints": {"ServiceEndpoint": {"port": 31001, "protocol": "tcp", "type": "Internal"}},
        "config": {"Section": {"Key": "Value"}},
        "config_packages": {"Config": {"Section": {"Key": "Value"}}},
        "work_folder": context["work_folder"],
        "init_data": "hello",
    }


def test_config_changes_reach_open_replicas(host: AgentSide, tmp_path: Path) -> None:
    assert isinstance(open_replica(host, "ConfiguredType", replica_id=5), ReplicaOpened)
    host.send(ConfigChanged(package="Config", settings={"S": {"K": "2"}}))
    assert wait_for_event(tmp_path, "5 config") == ['5 config Config {"S": {"K": "2"}}']


def test_without_a_channel_run_host_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(HOSTS / "py_host.py")],
        env=host_environment(tmp_path),
        capture_output=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 1
    assert b"FABRICHOST_CHANNEL_FD is None" in result.stderr
