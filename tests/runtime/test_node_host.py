"""A host written in another language (Node.js, no packages) speaks the documented protocol."""

from __future__ import annotations

import shutil
import uuid
from typing import TYPE_CHECKING

import pytest

from fabrichost.protocol import (
    ChangeRole,
    CloseReplica,
    Fault,
    Hello,
    OpenReplica,
    Ping,
    Pong,
    ReplicaClosed,
    ReplicaOpened,
    ReplicaRole,
    RoleChanged,
    ServiceKind,
    Shutdown,
    ShutdownComplete,
)

from .agent_side import HOSTS

if TYPE_CHECKING:
    from collections.abc import Callable

    from .agent_side import AgentSide

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture
def echo(start_host: Callable[..., AgentSide]) -> AgentSide:
    assert NODE is not None
    side = start_host([NODE, str(HOSTS / "echo_host.js"), "EchoType", "OtherType"])
    assert side.handshake(2) == ["EchoType", "OtherType"]
    return side


def test_a_host_that_offers_version_1_only_is_given_version_1(echo: AgentSide) -> None:
    # So the agent never sends it RaiseEvent (version 2), a type it does not know.
    assert echo.conn.version == 1


def open_echo(side: AgentSide, replica_id: int, partition_id: str) -> OpenReplica:
    request = OpenReplica(
        id=side.conn.new_request_id(),
        service_name="fabric:/App1/Echo",
        service_type="EchoType",
        service_kind=ServiceKind.STATEFUL,
        partition_id=partition_id,
        replica_id=replica_id,
        role=ReplicaRole.PRIMARY,
        init_data=None,
        endpoints={},
    )
    side.send(request)
    return request


def test_the_node_host_says_hello_like_any_host(start_host: Callable[..., AgentSide]) -> None:
    assert NODE is not None
    side = start_host([NODE, str(HOSTS / "echo_host.js")])
    hello = side.receive(Hello)
    assert hello.pid == side.process.pid
    assert hello.runtime.startswith("node/")


def test_the_node_host_opens_changes_and_closes_replicas(echo: AgentSide) -> None:
    partition = str(uuid.uuid4())
    requests = [open_echo(echo, replica_id, partition) for replica_id in range(1, 51)]
    for request in requests:
        reply = echo.reply_to(request.id)
        assert isinstance(reply, ReplicaOpened)
        assert reply.address == f"echo://{echo.process.pid}/{partition}/{request.replica_id}"
    changed = echo.request(
        ChangeRole, partition_id=partition, replica_id=1, role=ReplicaRole.ACTIVE_SECONDARY
    )
    assert isinstance(changed, RoleChanged)
    assert changed.address.endswith("/1/ActiveSecondary")
    assert isinstance(
        echo.request(CloseReplica, partition_id=partition, replica_id=1), ReplicaClosed
    )
    assert isinstance(echo.request(Ping), Pong)
    assert len(echo.conn.owned_replicas()) == 49


def test_the_node_host_shuts_down_and_exits_zero(echo: AgentSide) -> None:
    open_echo(echo, 1, str(uuid.uuid4()))
    assert isinstance(echo.request(Shutdown), ShutdownComplete)
    assert [type(m) for m in echo.backlog] == [ReplicaOpened]  # answered before shutting down
    assert echo.expect_eof() == []
    assert echo.wait_exit() == 0


def test_the_node_host_exits_zero_on_eof(echo: AgentSide) -> None:
    echo.sock.shutdown(1)
    assert echo.wait_exit() == 0


def test_the_node_host_faults_on_garbage(echo: AgentSide) -> None:
    echo.send_raw(b"\x00\x00\x00\x03{x}")
    assert "not valid JSON" in echo.receive(Fault).message
    assert echo.wait_exit() == 1
