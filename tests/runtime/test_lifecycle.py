"""A real runtime host process, driven from the agent's end of a real socketpair."""

from __future__ import annotations

import os
import time
import uuid
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.protocol import (
    ChangeRole,
    CloseReplica,
    Endpoint,
    EndpointProtocol,
    EndpointType,
    Error,
    ErrorCode,
    OpenReplica,
    ReplicaClosed,
    ReplicaOpened,
    ReplicaRole,
    RoleChanged,
    ServiceKind,
)

from .agent_side import DEADLINE, error_text

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from fabrichost.protocol import Reply

    from .agent_side import AgentSide

#: For a host whose only run ignores its token, so the grace must expire before close(). It can be
#: short because the fixture's generous close budget holds the margin. Do not check in such a host
#: that a run honouring its token saw it: a loaded machine may not schedule its thread in time.
SHORT_GRACE = {"FABRICHOST_RUN_GRACE": "0.5"}


def open_replica(
    host: AgentSide,
    service_type: str,
    *,
    replica_id: int = 1,
    partition_id: str | None = None,
    role: ReplicaRole = ReplicaRole.PRIMARY,
    init_data: str | None = None,
) -> Reply:
    stateful = "Stateful" in service_type or service_type == "BadOpenType"
    return host.request(
        OpenReplica,
        service_name="fabric:/App1/ServiceA",
        service_type=service_type,
        service_kind=ServiceKind.STATEFUL if stateful else ServiceKind.STATELESS,
        partition_id=partition_id or str(uuid.uuid4()),
        replica_id=replica_id,
        role=role if stateful else ReplicaRole.NONE,
        init_data=init_data,
        endpoints={
            "ServiceEndpoint": Endpoint(
                port=31001, protocol=EndpointProtocol.TCP, type=EndpointType.INPUT
            )
        },
    )


def events(work: Path) -> list[str]:
    path = work / "events.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_for_event(work: Path, prefix: str, deadline: float = DEADLINE) -> list[str]:
    """Lines of the events log starting with ``prefix``, once there is one (or a timeout).

    Services write the log from the host process, which has nothing to notify us with, so this
    looks again every 20 ms until the deadline.
    """
    end = time.monotonic() + deadline
    while not (lines := [line for line in events(work) if line.startswith(prefix)]):
        if time.monotonic() > end:
            raise TimeoutError(f"no {prefix!r} in the events log after {deadline} s")
        time.sleep(0.02)
    return lines


@pytest.mark.parametrize("kind", ["SyncStatefulType", "AsyncStatefulType"])
def test_a_stateful_replica_opens_changes_role_and_closes_in_order(
    host: AgentSide, tmp_path: Path, kind: str
) -> None:
    partition = str(uuid.uuid4())
    opened = open_replica(host, kind, replica_id=5, partition_id=partition)
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    assert (opened.partition_id, opened.replica_id) == (partition, 5)
    prefix = "sync" if kind.startswith("Sync") else "async"
    assert opened.address == (f"{prefix}://5/Primary" if prefix == "sync" else "async://Primary")
    changed = host.request(
        ChangeRole, partition_id=partition, replica_id=5, role=ReplicaRole.ACTIVE_SECONDARY
    )
    assert isinstance(changed, RoleChanged), error_text(changed)
    # The async service returns None for ActiveSecondary: the previous address stays.
    assert changed.address == ("sync://5/ActiveSecondary" if prefix == "sync" else opened.address)
    closed = host.request(CloseReplica, partition_id=partition, replica_id=5)
    assert isinstance(closed, ReplicaClosed), error_text(closed)
    # run() runs only while Primary, and is cancelled (and waited for) before the demotion.
    assert events(tmp_path) == [
        "5 open",
        "5 role Primary",
        "5 run-start",
        "5 run-cancelled",
        "5 role ActiveSecondary",
        "5 close",
    ]


def test_changing_to_the_same_role_calls_nothing(host: AgentSide, tmp_path: Path) -> None:
    partition = str(uuid.uuid4())
    assert isinstance(open_replica(host, "SyncStatefulType", partition_id=partition), ReplicaOpened)
    same = host.request(ChangeRole, partition_id=partition, replica_id=1, role=ReplicaRole.PRIMARY)
    assert isinstance(same, RoleChanged)
    assert same.address == "sync://1/Primary"
    assert events(tmp_path).count("1 role Primary") == 1


@pytest.mark.parametrize(
    ("kind", "env"),
    [
        # The generous grace: "1 run-cancelled" must come before close() however late the run
        # thread is scheduled.
        pytest.param("SyncStatelessType", {}, id="SyncStatelessType"),
        # This run ignores its token, so the grace must expire; nothing else in the host races it.
        pytest.param("AsyncStatelessType", SHORT_GRACE, id="AsyncStatelessType"),
    ],
)
def test_a_stateless_instance_runs_until_closed(
    start_py_host: Callable[..., AgentSide], tmp_path: Path, kind: str, env: dict[str, str]
) -> None:
    host = start_py_host(**env)
    partition = str(uuid.uuid4())
    opened = open_replica(host, kind, partition_id=partition)
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    if kind == "SyncStatelessType":
        assert opened.address == f"tcp://127.0.0.1:31001/{host.process.pid}"
    closed = host.request(CloseReplica, partition_id=partition, replica_id=1)
    assert isinstance(closed, ReplicaClosed), error_text(closed)
    seen = events(tmp_path)
    assert "1 run-start" in seen
    # The sync run honours its token; the async one ignores it and is cancelled as a task.
    assert ("1 run-cancelled" if kind == "SyncStatelessType" else "1 run-task-cancelled") in seen
    assert seen[-1] == "1 close"


def test_a_stateless_instance_has_no_role_to_change(host: AgentSide) -> None:
    partition = str(uuid.uuid4())
    assert isinstance(open_replica(host, "LightType", partition_id=partition), ReplicaOpened)
    reply = host.request(ChangeRole, partition_id=partition, replica_id=1, role=ReplicaRole.NONE)
    assert isinstance(reply, Error)
    assert reply.code == ErrorCode.SERVICE_FAILED


def test_a_failing_open_is_answered_with_error_and_aborted(host: AgentSide, tmp_path: Path) -> None:
    reply = open_replica(host, "BadOpenType", replica_id=3)
    assert isinstance(reply, Error)
    assert reply.code == ErrorCode.SERVICE_FAILED
    assert reply.message == "OSError: port in use"
    assert events(tmp_path) == ["3 abort"]
    assert host.conn.owned_replicas() == frozenset()


def test_a_failing_close_is_answered_with_error_and_aborted(
    host: AgentSide, tmp_path: Path
) -> None:
    partition = str(uuid.uuid4())
    assert isinstance(open_replica(host, "BadCloseType", partition_id=partition), ReplicaOpened)
    reply = host.request(CloseReplica, partition_id=partition, replica_id=1)
    assert isinstance(reply, Error)
    assert "close() raised RuntimeError: cannot close; the replica was aborted" in reply.message
    assert events(tmp_path) == ["1 abort"]
    again = host.request(CloseReplica, partition_id=partition, replica_id=1)
    assert isinstance(again, Error)
    assert again.code == ErrorCode.REPLICA_DOES_NOT_EXIST


def test_a_kind_mismatch_is_refused(host: AgentSide) -> None:
    reply = host.request(
        OpenReplica,
        service_name="fabric:/App1/S",
        service_type="LightType",
        service_kind=ServiceKind.STATEFUL,
        partition_id=str(uuid.uuid4()),
        replica_id=1,
        role=ReplicaRole.PRIMARY,
        init_data=None,
        endpoints={},
    )
    assert isinstance(reply, Error)
    assert "Light, which cannot host a Stateful service" in reply.message


def test_a_blocked_sync_open_does_not_stall_other_replicas(
    start_py_host: Callable[..., AgentSide], tmp_path: Path
) -> None:
    # Replica 1 never finishes opening, so it can never close: the host leaves at EOF only when
    # the close budget expires, which must therefore be short.
    host = start_py_host(FABRICHOST_CLOSE_TIMEOUT="1")
    blocked = OpenReplica(
        id=host.conn.new_request_id(),
        service_name="fabric:/App1/Blocked",
        service_type="BlockingType",
        service_kind=ServiceKind.STATELESS,
        partition_id=str(uuid.uuid4()),
        replica_id=1,
        role=ReplicaRole.NONE,
        init_data=None,
        endpoints={},
    )
    host.send(blocked)
    for replica_id in range(2, 6):
        reply = open_replica(host, "SyncStatefulType", replica_id=replica_id)
        assert isinstance(reply, ReplicaOpened), error_text(reply)
    # open() runs on a worker thread: nothing orders its log line with the other replies.
    assert wait_for_event(tmp_path, "1 open-blocking") == ["1 open-blocking"]
    assert blocked.id in host.conn.pending_requests()
    # EOF: the host must exit although a service thread is still blocked in open().
    host.sock.shutdown(2)
    assert host.wait_exit() == 0


def test_a_thousand_pipelined_opens_all_succeed_in_one_host(host: AgentSide) -> None:
    partition = str(uuid.uuid4())
    requests = [
        OpenReplica(
            id=host.conn.new_request_id(),
            service_name="fabric:/App1/Many",
            service_type="LightType",
            service_kind=ServiceKind.STATELESS,
            partition_id=partition,
            replica_id=replica_id,
            role=ReplicaRole.NONE,
            init_data=None,
            endpoints={},
        )
        for replica_id in range(1, 1001)
    ]
    host.send_raw(b"".join(host.conn.send(request) for request in requests))
    replies = [host.reply_to(request.id) for request in requests]
    assert all(isinstance(reply, ReplicaOpened) for reply in replies)
    assert {reply.replica_id for reply in replies if isinstance(reply, ReplicaOpened)} == set(
        range(1, 1001)
    )
    assert len(host.conn.owned_replicas()) == 1000
    assert psutil.Process(host.process.pid).is_running()
    assert os.getpid() != host.process.pid
