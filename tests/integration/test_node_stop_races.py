"""Requests that land while a node stops: its processes take the stop grace to go away, and
whatever waits for them (a terminate, a start of the node) must still see them."""

from __future__ import annotations

import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest

from fabrichost.daemon import stop_background
from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import write_guest_package, write_runtime_package
from tests.integration.test_durability import _restarted
from tests.integration.test_failover_races import _replicas
from tests.integration.test_instance_races import (
    _alive,
    _assert_no_overlap,
    _instance_url,
    _lifetimes,
    _start,
    _write_package,
)
from tests.integration.test_singletons import wait_for_starts

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.client import FabricClient
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

# A stateful replica whose close() takes a while: the window in which its node is stopping.
SLOW_CLOSE = """
import time
from fabrichost.runtime import StatefulService, run_host

class Svc(StatefulService):
    def open(self):
        return f"replica://{self.context.replica_id}"
    def change_role(self, role):
        return f"replica://{self.context.replica_id}/{role}"
    def close(self):
        time.sleep(2.0)

run_host({"SlowType": Svc})
"""


def _wait_until_down(client: FabricClient, node: str) -> None:
    deadline = time.monotonic() + 20
    while next(n for n in client.nodes() if n["Name"] == node)["NodeStatus"] != "Down":
        assert time.monotonic() < deadline, f"{node} did not go down"
        time.sleep(0.02)


def _store_rows(state_dir: Path) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(f"file:{state_dir / 'state.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT node, role FROM replicas ORDER BY id").fetchall()
    finally:
        db.close()


def test_a_terminate_while_the_instances_node_stops_waits_for_its_process(
    cluster3: Cluster, tmp_path: Path
) -> None:
    cluster3.client.deploy(_write_package(tmp_path / "pkg"), "fabric:/Race")
    journal = tmp_path / "journal"
    started = _start(cluster3, "x", {"journal": str(journal), "close_delay": 2.0})
    assert started.status_code == 202, started.text
    wait_for_starts(journal, 1, timeout=30)
    ((old, _, _),) = _lifetimes(journal)
    node = psutil.Process(old).environ()["Fabric_NodeName"]
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(cluster3.client.stop_node, node)
        _wait_until_down(cluster3.client, node)  # the stop is closing the job now
        terminated = httpx.post(f"{_instance_url(cluster3, 'x')}/terminate", timeout=30)
        assert terminated.status_code == 202, terminated.text
        assert not _alive(old), "terminate answered while the job's process still ran"
        again = _start(cluster3, "x", {"journal": str(journal)})
        assert again.status_code == 202, again.text
        stopping.result(timeout=60)
    wait_for_starts(journal, 2, timeout=30)
    _assert_no_overlap(journal)


def test_a_node_started_while_it_stops_leaves_one_replica_in_memory_and_store(
    cluster3: Cluster, tmp_path: Path
) -> None:
    client = cluster3.client
    client.deploy(
        write_runtime_package(tmp_path / "R", {"Code": ("SlowType", SLOW_CLOSE)}), "fabric:/R"
    )
    client.create_service(
        "fabric:/R",
        ServiceDescription(
            name="fabric:/R/S",
            type_name="SlowType",
            kind=ServiceKind.STATEFUL,
            has_persisted_state=True,
        ),
        wait=True,
    )
    (replica,) = _replicas(client, "fabric:/R/S")
    with ThreadPoolExecutor(1) as pool:
        stopping = pool.submit(client.stop_node, replica["NodeName"])
        _wait_until_down(client, replica["NodeName"])
        client.start_node(replica["NodeName"])  # waits for the stop, then brings it back
        stopping.result(timeout=60)
    client.wait_service_ready("fabric:/R/S", 30)
    in_memory = _replicas(client, "fabric:/R/S")
    assert len(in_memory) == 1, in_memory
    assert len(_store_rows(cluster3.state_dir)) == 1
    stop_background(cluster3.state_dir)
    with _restarted(cluster3.state_dir, nodes=3) as again:
        again.wait_service_ready("fabric:/R/S", 30)
        assert len(_replicas(again, "fabric:/R/S")) == 1  # not over-replicated after restart


def test_a_failover_whose_activation_fails_forgets_the_replica_and_says_why(
    cluster3: Cluster, tmp_path: Path
) -> None:
    client = cluster3.client
    client.deploy(
        write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n"), "fabric:/G"
    )
    description = ServiceDescription(
        name="fabric:/G/S", type_name="GuestType", kind=ServiceKind.STATELESS
    )
    client.create_service("fabric:/G", description, wait=True)
    (replica,) = _replicas(client, "fabric:/G/S")
    node = replica["NodeName"]
    apps = cluster3.state_dir / "_App"
    (folder,) = (apps / node).iterdir()
    blockers = [apps / other / folder.name for other in ("_Node_0", "_Node_1", "_Node_2")]
    blockers = [b for b in blockers if b.parent.name != node]
    for blocker in blockers:  # the application's folder cannot be made on the other nodes
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
    client.stop_node(node)
    assert _replicas(client, "fabric:/G/S") == []  # nothing is left InBuild forever
    (service,) = client.services("fabric:/G")
    assert service["HealthState"] == "Warning"
    assert "could not be activated" in " ".join(service["HealthWarnings"])
    for blocker in blockers:
        blocker.unlink()
    client.start_node(node)  # the partition is filled again
    client.wait_service_ready("fabric:/G/S", 30)
    assert [r["ReplicaStatus"] for r in _replicas(client, "fabric:/G/S")] == ["Ready"]


def test_a_node_start_fills_every_partition_it_can(cluster3: Cluster, tmp_path: Path) -> None:
    client = cluster3.client
    package = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
    for app in ("A", "B"):  # A gets application folder GuestAppType_App1, B GuestAppType_App2
        client.deploy(package, f"fabric:/{app}")
        description = ServiceDescription(
            name=f"fabric:/{app}/S", type_name="GuestType", kind=ServiceKind.STATELESS,
            instance_count=-1,
        )  # fmt: skip
        client.create_service(f"fabric:/{app}", description, wait=True)
    client.stop_node("_Node_1")
    blocker = cluster3.state_dir / "_App" / "_Node_1" / "GuestAppType_App1"
    shutil.rmtree(blocker)
    blocker.write_text("in the way")  # A cannot be activated on _Node_1 any more; B can
    client.start_node("_Node_1")  # A's failure there does not keep B from it
    nodes_of_b = sorted(r["NodeName"] for r in _replicas(client, "fabric:/B/S"))
    assert nodes_of_b == ["_Node_0", "_Node_1", "_Node_2"]
    (service_a,) = client.services("fabric:/A")
    assert service_a["HealthState"] == "Warning"
