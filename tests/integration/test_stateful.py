"""Stateful partitions: one Primary and Active Secondaries; failover when hosts or nodes go."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import runtime_host_script, write_runtime_package

if TYPE_CHECKING:
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
NODES = ("_Node_0", "_Node_1", "_Node_2")


def _deploy(cluster: Cluster, tmp_path: Path) -> str:
    package = write_runtime_package(
        tmp_path / "Rt",
        {
            "Code": ("CounterType", runtime_host_script("CounterType")),
        },
    )
    cluster.client.deploy(package, "fabric:/Rt")
    cluster.client.create_service(
        "fabric:/Rt",
        ServiceDescription(
            name="fabric:/Rt/Counter",
            type_name="CounterType",
            kind=ServiceKind.STATEFUL,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
        wait_timeout=30,
    )
    (partition,) = cluster.client.partitions("fabric:/Rt/Counter")
    return str(partition["PartitionInformation"]["Id"])


def _replicas(cluster: Cluster, partition_id: str) -> list[dict[str, Any]]:
    return cluster.client.replicas(partition_id)


def test_a_partition_has_one_primary_and_active_secondaries_on_distinct_nodes(
    cluster3: Cluster, tmp_path: Path
) -> None:
    partition_id = _deploy(cluster3, tmp_path)
    replicas = _replicas(cluster3, partition_id)
    assert sorted(r["NodeName"] for r in replicas) == list(NODES)
    assert sorted(r["ReplicaRole"] for r in replicas) == [
        "ActiveSecondary",
        "ActiveSecondary",
        "Primary",
    ]
    primary = next(r for r in replicas if r["ReplicaRole"] == "Primary")
    # The runtime opens a replica, then moves it into its role (as SF does): the address
    # is the one change_role returned.
    assert primary["Address"] == f"replica://{primary['ReplicaId']}/Primary"


def test_when_the_primary_host_dies_a_secondary_is_promoted(
    cluster3: Cluster, tmp_path: Path
) -> None:
    partition_id = _deploy(cluster3, tmp_path)
    primary = next(r for r in _replicas(cluster3, partition_id) if r["ReplicaRole"] == "Primary")
    (deployed,) = cluster3.client.deployed_replicas(primary["NodeName"], "fabric:/Rt")
    host = psutil.Process(int(deployed["HostProcessId"]))
    os.kill(host.pid, signal.SIGKILL)
    host.wait(10)
    cluster3.client.wait_service_ready("fabric:/Rt/Counter", timeout=30)

    replicas = {r["ReplicaId"]: r for r in _replicas(cluster3, partition_id)}
    roles = sorted(r["ReplicaRole"] for r in replicas.values())
    assert roles == ["ActiveSecondary", "ActiveSecondary", "Primary"]
    assert replicas[primary["ReplicaId"]]["ReplicaRole"] == "ActiveSecondary"
    new_primary = next(r for r in replicas.values() if r["ReplicaRole"] == "Primary")
    assert new_primary["Address"].endswith("/Primary")  # the address ChangeRole returned


def test_stopping_a_node_fails_its_replicas_over_and_starting_it_rebuilds_them(
    cluster3: Cluster, tmp_path: Path
) -> None:
    partition_id = _deploy(cluster3, tmp_path)
    primary = next(r for r in _replicas(cluster3, partition_id) if r["ReplicaRole"] == "Primary")
    node = primary["NodeName"]
    (deployed,) = cluster3.client.deployed_replicas(node, "fabric:/Rt")
    host = psutil.Process(int(deployed["HostProcessId"]))

    cluster3.client.stop_node(node)
    _, alive = psutil.wait_procs([host], timeout=15)
    assert not alive, "a stopped node's processes stop"
    down = next(n for n in cluster3.client.nodes() if n["Name"] == node)
    assert down["NodeStatus"] == "Down"
    cluster3.client.wait_service_ready("fabric:/Rt/Counter", timeout=30)
    replicas = _replicas(cluster3, partition_id)
    assert len(replicas) == 2  # only two nodes are up
    assert node not in {r["NodeName"] for r in replicas}
    assert sorted(r["ReplicaRole"] for r in replicas) == ["ActiveSecondary", "Primary"]
    assert cluster3.client.service("fabric:/Rt/Counter")["HealthWarnings"]

    cluster3.client.start_node(node)
    cluster3.client.wait_service_ready("fabric:/Rt/Counter", timeout=30)
    replicas = _replicas(cluster3, partition_id)
    assert sorted(r["NodeName"] for r in replicas) == list(NODES)
    assert sorted(r["ReplicaRole"] for r in replicas) == [
        "ActiveSecondary",
        "ActiveSecondary",
        "Primary",
    ]
    assert cluster3.client.service("fabric:/Rt/Counter")["HealthWarnings"] == []


def test_stopping_a_node_closes_its_replicas_cleanly(cluster3: Cluster) -> None:
    # The agent closes them over the protocol before it signals the process (SF's order); the
    # runtime would also close them on SIGINT, so this checks "closed, not killed", not which.
    from tests.integration.conftest import MANIFESTS

    cluster3.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    cluster3.client.create_service(
        "fabric:/App1",
        ServiceDescription(
            name="fabric:/App1/S",
            type_name="MyServiceType",
            kind=ServiceKind.STATEFUL,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
        wait_timeout=30,
    )
    (replica,) = cluster3.client.deployed_replicas("_Node_1", "fabric:/App1")
    (app,) = cluster3.client.deployed_applications("_Node_1")
    cluster3.client.stop_node("_Node_1")
    log_dir = Path(app["LogDirectory"])
    console = "".join(p.read_text() for p in sorted(log_dir.glob("*.err")))
    assert f"replica {replica['ReplicaId']} closed" in console


def test_a_partition_whose_only_replica_restarts_gets_its_primary_back(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_runtime_package(
        tmp_path / "Rt", {"Code": ("CounterType", runtime_host_script("CounterType"))}
    )
    cluster.client.deploy(package, "fabric:/Rt")
    description = ServiceDescription(
        name="fabric:/Rt/One", type_name="CounterType", kind=ServiceKind.STATEFUL
    )
    cluster.client.create_service("fabric:/Rt", description, wait=True, wait_timeout=30)
    (before,) = cluster.client.deployed_replicas("_Node_0", "fabric:/Rt")
    assert before["ReplicaRole"] == "Primary"
    host = psutil.Process(int(before["HostProcessId"]))
    os.kill(host.pid, signal.SIGKILL)
    host.wait(10)

    def back() -> dict[str, Any] | None:
        # The role is claimed before the ChangeRole round trip (so two elections never make two
        # Primaries); the address the host gives for it comes with the answer. Wait for both.
        (replica,) = cluster.client.deployed_replicas("_Node_0", "fabric:/Rt")
        moved = replica["HostProcessId"] not in ("", "0", before["HostProcessId"])
        promoted = replica["ReplicaRole"] == "Primary" and replica["Address"].endswith("/Primary")
        return replica if moved and promoted else None

    deadline = time.monotonic() + 30
    while (after := back()) is None:
        assert time.monotonic() < deadline, "the replica did not come back as Primary"
        time.sleep(0.05)
    assert after["ReplicaId"] == before["ReplicaId"]  # the same replica, reopened, promoted
    (partition,) = cluster.client.partitions("fabric:/Rt/One")
    assert partition["HealthState"] == "Ok"
