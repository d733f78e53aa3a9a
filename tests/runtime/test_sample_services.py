"""The reference scenario's services, started through their code packages' launchers."""

from __future__ import annotations

import json
import os
import socket
import stat
import uuid
from typing import TYPE_CHECKING

import pytest

from fabrichost.protocol import (
    ChangeRole,
    CloseReplica,
    ConfigChanged,
    OpenReplica,
    ReplicaClosed,
    ReplicaOpened,
    ReplicaRole,
    RoleChanged,
    ServiceKind,
)

from .agent_side import DEADLINE, REPO, error_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from .agent_side import AgentSide

LAUNCHERS = {
    "MyServiceType": REPO / "manifests/MyApp/MyServicePackage/MyCodePackage/launch.sh",
    "MyServiceTypeA": REPO
    / "manifests/SpecialApp/MultiTypeServicePackage/MyCodePackageA/launch.sh",
    "MyServiceTypeB": REPO
    / "manifests/SpecialApp/MultiTypeServicePackage/MyCodePackageB/launch.sh",
}


def ask(address: str) -> dict[str, object]:
    """One line to a whoami replica, one JSON line back."""
    host, port = address.removeprefix("tcp://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as conn:
        conn.sendall(b"who\n")
        answer = conn.makefile("rb").readline()
    result: dict[str, object] = json.loads(answer)
    return result


@pytest.mark.parametrize("launcher", LAUNCHERS.values(), ids=list(LAUNCHERS))
def test_launchers_are_executable_shell_scripts(launcher: os.PathLike[str]) -> None:
    mode = os.stat(launcher).st_mode
    assert mode & stat.S_IXUSR
    with open(launcher, "rb") as script:
        assert script.readline() == b"#!/bin/sh\n"


@pytest.mark.parametrize("service_type", list(LAUNCHERS))
def test_each_code_package_registers_only_its_own_type(
    start_host: Callable[..., AgentSide], service_type: str
) -> None:
    side = start_host([str(LAUNCHERS[service_type])])
    assert side.handshake(1) == [service_type]


def test_a_my_service_replica_says_who_it_is_in_each_role(
    start_host: Callable[..., AgentSide],
) -> None:
    side = start_host([str(LAUNCHERS["MyServiceType"])])
    side.handshake(1, node_name="_Node_1")
    side.send(ConfigChanged(package="Config", settings={"MyConfigSection": {"Greeting": "hi"}}))
    partition = str(uuid.uuid4())
    opened = side.request(
        OpenReplica,
        service_name="fabric:/App1/ServiceA",
        service_type="MyServiceType",
        service_kind=ServiceKind.STATEFUL,
        partition_id=partition,
        replica_id=11,
        role=ReplicaRole.PRIMARY,
        init_data=None,
        endpoints={},
    )
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    assert opened.address.startswith("tcp://127.0.0.1:")
    assert ask(opened.address) == {
        "service": "fabric:/App1/ServiceA",
        "partition_id": partition,
        "replica_id": 11,
        "role": "Primary",
        "pid": side.process.pid,
        "node": "_Node_1",
        "activation_id": "",
        "code_package": "Code",
        "greeting": "hi",
    }
    changed = side.request(
        ChangeRole, partition_id=partition, replica_id=11, role=ReplicaRole.ACTIVE_SECONDARY
    )
    assert isinstance(changed, RoleChanged)
    assert changed.address == opened.address
    assert ask(opened.address)["role"] == "ActiveSecondary"
    closed = side.request(CloseReplica, partition_id=partition, replica_id=11)
    assert isinstance(closed, ReplicaClosed)
    with pytest.raises(ConnectionRefusedError):
        ask(opened.address)
    side.sock.shutdown(1)
    assert side.wait_exit() == 0
