"""Failover racing with deletes, creates and agent crashes (node stop/start, SPEC §3 and §6).

Every guest here reports to the test over a socket (``Beacon``): when it starts, and when it is
sent SIGINT. The tests wait on those reports (with deadlines) to act inside a node stop's grace
period, instead of sleeping and hoping.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import pytest

from fabrichost.store import Store
from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import marked_processes, write_guest_package
from tests.integration.test_durability import _kill_agent, _restarted

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.client import FabricClient
    from tests.integration.beacon import Beacon
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


class Call:
    """A blocking client call in a thread (a node stop waits out its grace period)."""

    def __init__(self, fn: Any) -> None:
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float = 15.0) -> BaseException | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the call did not return within {timeout} s"
        return self.error


def _replicas(client: FabricClient, service: str) -> list[dict[str, Any]]:
    return [
        r
        for p in client.partitions(service)
        for r in client.replicas(p["PartitionInformation"]["Id"])
    ]


def _stateless(name: str, **kw: Any) -> ServiceDescription:
    return ServiceDescription(name=name, type_name="GuestType", kind=ServiceKind.STATELESS, **kw)


# -- a service deleted while a node stops is not failed over -------------------------------------


def test_a_service_deleted_during_a_node_stop_is_not_started_elsewhere(
    cluster3: Cluster, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    script = beacon.guest_script(ignore_sigint=True)
    client.deploy(write_guest_package(tmp_path / "G", script=script), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S"))
    client.wait_service_ready("fabric:/G/S", 10)
    beacon.wait("start")
    (replica,) = _replicas(client, "fabric:/G/S")
    stop = Call(lambda: client.stop_node(replica["NodeName"]))
    beacon.wait("sigint")  # the node stop is waiting out the guest's grace period now
    client.delete_service("fabric:/G/S")
    assert stop.join() is None
    assert client.services("fabric:/G") == []
    for node in ("_Node_0", "_Node_1", "_Node_2"):
        assert client.deployed_code_packages(node, "fabric:/G") == [], node
    assert marked_processes(cluster3.state_dir) == []


# -- replicas on a down node fail over ------------------------------------------------------------


def test_a_node_stop_cut_short_by_an_agent_crash_still_fails_over(
    cluster3: Cluster, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    script = beacon.guest_script(ignore_sigint=True)
    client.deploy(
        write_guest_package(tmp_path / "G", script=script, default_service=True), "fabric:/G"
    )
    client.wait_service_ready("fabric:/G/Web", 10)
    beacon.wait("start")
    (replica,) = _replicas(client, "fabric:/G/Web")
    stopped = replica["NodeName"]
    stop = Call(lambda: client.stop_node(stopped))
    beacon.wait("sigint")  # node-down is decided; the agent waits out the grace period
    _kill_agent(cluster3.state_dir)
    assert stop.join() is not None  # the agent died under the call
    with _restarted(cluster3.state_dir, nodes=3) as again:
        again.wait_service_ready("fabric:/G/Web", 10)
        (moved,) = _replicas(again, "fabric:/G/Web")
        down = {n["Name"] for n in again.nodes() if n["NodeStatus"] != "Up"}
        assert down == {stopped}
        assert moved["NodeName"] != stopped
        assert moved["ReplicaStatus"] == "Ready"


def test_a_stored_replica_on_a_down_node_is_placed_again_at_restore(
    cluster3: Cluster, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    script = beacon.guest_script(ignore_sigint=False)
    client.deploy(
        write_guest_package(tmp_path / "G", script=script, default_service=True), "fabric:/G"
    )
    client.wait_service_ready("fabric:/G/Web", 10)
    (replica,) = _replicas(client, "fabric:/G/Web")
    _kill_agent(cluster3.state_dir)
    # What an earlier run could leave: its node recorded down, its replica still there.
    with Store.open(cluster3.state_dir / "state.db") as store:
        store.set_node(replica["NodeName"], False)
        assert [r.node for r in store.replicas()] == [replica["NodeName"]]
    with _restarted(cluster3.state_dir, nodes=3) as again:
        again.wait_service_ready("fabric:/G/Web", 10)
        (moved,) = _replicas(again, "fabric:/G/Web")
        assert moved["NodeName"] != replica["NodeName"]


def test_a_node_stopped_while_a_service_is_activated_leaves_no_replica_on_it(
    cluster3: Cluster, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    script = beacon.guest_script(ignore_sigint=False)
    client.deploy(write_guest_package(tmp_path / "G", script=script), "fabric:/G")
    many = _stateless(
        "fabric:/G/Many",
        activation_mode=ActivationMode.EXCLUSIVE_PROCESS,
        partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
        partition_count=60,
        low_key=0,
        high_key=59,
    )
    create = Call(lambda: client.create_service("fabric:/G", many))
    beacon.wait("start")  # the create is under way: its first processes run
    client.stop_node("_Node_2")
    assert create.join() is None
    client.wait_service_ready("fabric:/G/Many", 10)
    replicas = _replicas(client, "fabric:/G/Many")
    assert len(replicas) == 60
    assert not [r for r in replicas if r["NodeName"] == "_Node_2"]
    assert client.deployed_code_packages("_Node_2", "fabric:/G") == []
