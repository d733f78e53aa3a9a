"""A partition that lost a replica to a failed activation is filled again by itself (SPEC §3).

The failure is a real one: the node's application folder cannot be created because a file is in
its way. Once the file is gone, the agent's repair places the replica without anyone starting a
node or restarting the agent.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import write_guest_package
from tests.integration.test_failover_races import _replicas, _stateless

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.client import FabricClient
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def _ready_replicas(client: FabricClient, service: str) -> list[dict[str, Any]]:
    return [r for r in _replicas(client, service) if r["ReplicaStatus"] == "Ready"]


def test_a_failover_whose_activation_failed_is_retried_until_it_succeeds(
    cluster3: Cluster, tmp_path: Path
) -> None:
    client = cluster3.client
    client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S"))
    client.wait_service_ready("fabric:/G/S", 30)
    (first,) = _replicas(client, "fabric:/G/S")
    # Every other node's application folders would go below a file: activations there fail.
    blocked = [
        cluster3.state_dir / "_App" / n["Name"]
        for n in client.nodes()
        if n["Name"] != first["NodeName"]
    ]
    for path in blocked:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("in the way\n")

    client.stop_node(first["NodeName"])
    deadline = time.monotonic() + 30
    while not client.service("fabric:/G/S")["HealthWarnings"]:
        assert time.monotonic() < deadline, "the failed activation was never reported"
        time.sleep(0.05)
    assert "could not be activated" in client.service("fabric:/G/S")["HealthWarnings"][0]
    assert not _ready_replicas(client, "fabric:/G/S")

    for path in blocked:
        path.unlink()
    deadline = time.monotonic() + 40  # the first retry comes 1 s after the failure
    while not (ready := _ready_replicas(client, "fabric:/G/S")):
        assert time.monotonic() < deadline, "the partition was never filled again"
        time.sleep(0.1)
    (replica,) = ready
    assert replica["NodeName"] != first["NodeName"]
    assert client.service("fabric:/G/S")["HealthWarnings"] == []
