"""An activation that fails on one node costs that node's replicas only (SPEC §3).

The other replicas of the partition still start; the partition's repair fills the lost ones on
another node if one can take them (on the failed node only when none can), never beside the
processes of a node that is still stopping, and never forgets a loss reported while it runs.

A failure is a real one: a file at ``state_dir/_App/<node>`` is in the way of the node's
application folders.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.agent import _replicas as placement
from fabrichost.agent._cluster import AgentSettings, Cluster
from fabrichost.agent._daemon import stop_background
from fabrichost.agent._model import ReplicaStatus
from tests.integration.conftest import write_guest_package
from tests.integration.test_durability import _restarted
from tests.integration.test_failover_races import Call, _replicas, _stateless

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from fabrichost.agent._model import Partition
    from fabrichost.client import FabricClient
    from tests.integration.beacon import Beacon
    from tests.integration.conftest import Cluster as ClusterFixture

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def _block(state_dir: Path, node: str) -> Path:
    """Put a file where ``node``'s application folders go: every activation there fails."""
    path = state_dir / "_App" / node
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("in the way\n")
    return path


def _wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def _ready_nodes(client: FabricClient, service: str) -> list[str]:
    return sorted(
        r["NodeName"] for r in _replicas(client, service) if r["ReplicaStatus"] == "Ready"
    )


def _warnings(client: FabricClient, service: str) -> list[str]:
    return list(client.service(service)["HealthWarnings"])


def _first_restored(client: FabricClient, service: str) -> tuple[str, list[str]]:
    """The node of the replica a restore activates first (the lowest id), and the others'."""
    replicas = sorted(_replicas(client, service), key=lambda r: int(r["InstanceId"]))
    return replicas[0]["NodeName"], sorted(r["NodeName"] for r in replicas[1:])


# -- one broken node ----------------------------------------------------------------------------


@pytest.mark.timeout(150)  # the repair's backoff after the file is gone, on a loaded machine
@pytest.mark.parametrize("count", [3, -1])
def test_one_broken_node_does_not_keep_the_other_replicas_down(
    cluster3: ClusterFixture, tmp_path: Path, count: int
) -> None:
    client = cluster3.client
    client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S", instance_count=count))
    client.wait_service_ready("fabric:/G/S", 30)
    # The first replica a restore activates fails: the ones after it must start all the same.
    broken, healthy = _first_restored(client, "fabric:/G/S")
    assert len(healthy) == 2
    stop_background(cluster3.state_dir)
    blocker = _block(cluster3.state_dir, broken)

    with _restarted(cluster3.state_dir, nodes=3) as again:
        _wait_for(
            lambda: _ready_nodes(again, "fabric:/G/S") == healthy,
            "the replicas on the healthy nodes did not start",
        )
        # The warning names the node that failed (not a healthy one with its error).
        (warning,) = _wait_for(lambda: _warnings(again, "fabric:/G/S"), "no warning")
        assert f"could not be activated on {broken}: " in warning
        assert all(node not in warning for node in healthy)

        # No other node can take the third replica: the repair keeps trying the broken node.
        blocker.unlink()
        _wait_for(
            lambda: _ready_nodes(again, "fabric:/G/S") == sorted([broken, *healthy]),
            "the broken node's replica was never placed again",
            timeout=90,  # the repair's delay doubles while the file is there
        )
        assert _warnings(again, "fabric:/G/S") == []


def test_the_repair_places_a_replica_on_another_node_than_the_one_that_failed(
    cluster3: ClusterFixture, tmp_path: Path
) -> None:
    client = cluster3.client
    client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S", instance_count=2))
    client.wait_service_ready("fabric:/G/S", 30)
    broken, (kept,) = _first_restored(client, "fabric:/G/S")
    stop_background(cluster3.state_dir)
    _block(cluster3.state_dir, broken)  # it stays broken

    with _restarted(cluster3.state_dir, nodes=3) as again:
        (spare,) = {n["Name"] for n in again.nodes()} - {broken, kept}
        # The broken node holds no replica now, so it is the least loaded: the repair must
        # still choose the spare node.
        _wait_for(
            lambda: _ready_nodes(again, "fabric:/G/S") == sorted([kept, spare]),
            "the repair never placed the replica on the spare node",
        )
        _wait_for(lambda: _warnings(again, "fabric:/G/S") == [], "the warning stayed")


# -- a repair during a node stop ----------------------------------------------------------------


def test_a_repair_waits_for_a_stopping_node_instead_of_starting_a_second_copy(
    cluster3: ClusterFixture, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    # The broken node is down while the service is made, so its one replica goes elsewhere.
    client.stop_node("_Node_0")
    _block(cluster3.state_dir, "_Node_0")
    script = beacon.guest_script(ignore_sigint=True)  # it lives until the stop grace is over
    client.deploy(write_guest_package(tmp_path / "G", script=script), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S"))
    client.wait_service_ready("fabric:/G/S", 30)
    old_pid = beacon.wait("start", timeout=30)
    (replica,) = _replicas(client, "fabric:/G/S")
    stopping = replica["NodeName"]
    (spare,) = {"_Node_1", "_Node_2"} - {stopping}

    stop = Call(lambda: client.stop_node(stopping))
    beacon.wait("sigint", timeout=30)  # the stop waits out the guest's grace period now
    # The started node is the least loaded and listed first: its fill tries it, fails and
    # schedules the partition's repair, due while the other node is still stopping.
    client.start_node("_Node_0")

    new_pid = beacon.wait("start", timeout=60)
    # Started once the old process was gone, not beside it.
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    assert stop.join(60) is None
    _wait_for(
        lambda: _ready_nodes(client, "fabric:/G/S") == [spare],
        "the replica never reached the spare node",
    )
    assert new_pid != old_pid
    _wait_for(lambda: _warnings(client, "fabric:/G/S") == [], "the warning stayed")


def test_a_node_start_waits_for_another_node_s_stop_before_filling(
    cluster3: ClusterFixture, tmp_path: Path, beacon: Beacon
) -> None:
    client = cluster3.client
    client.stop_node("_Node_1")
    client.stop_node("_Node_2")
    script = beacon.guest_script(ignore_sigint=True)  # it lives until the stop grace is over
    client.deploy(write_guest_package(tmp_path / "G", script=script), "fabric:/G")
    client.create_service("fabric:/G", _stateless("fabric:/G/S"))
    client.wait_service_ready("fabric:/G/S", 30)
    old_pid = beacon.wait("start", timeout=30)

    stop = Call(lambda: client.stop_node("_Node_0"))  # no node is left to fail over to
    beacon.wait("sigint", timeout=30)  # the stop waits out the guest's grace period now
    client.start_node("_Node_1")  # its fill must not start a copy beside the old process

    new_pid = beacon.wait("start", timeout=60)
    assert not psutil.pid_exists(old_pid) or psutil.Process(old_pid).status() == "zombie"
    assert stop.join(60) is None
    assert new_pid != old_pid
    _wait_for(
        lambda: _ready_nodes(client, "fabric:/G/S") == ["_Node_1"],
        "the replica never reached the started node",
    )


# -- a loss reported while the repair runs --------------------------------------------------------


def _ready(partition: Partition) -> list[str]:
    return sorted(r.node_name for r in partition.live_replicas() if r.status is ReplicaStatus.READY)


async def _until(check: Callable[[], Any], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@pytest.mark.anyio
async def test_a_loss_reported_while_the_repair_fills_gets_another_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repair's pass only takes a few event-loop turns with real processes; the test holds
    one open at its activation (the processes stay real) to land another loss inside it."""
    monkeypatch.setattr(placement, "REPAIR_FIRST_DELAY", 0.05)
    monkeypatch.setattr(placement, "REPAIR_MAX_DELAY", 0.5)
    held, release = asyncio.Event(), asyncio.Event()
    original = Cluster._activation_for

    async def gated(self: Cluster, node: placement.Node, replica: Any) -> Any:
        if node.name == "_Node_3" and not release.is_set():
            held.set()
            await release.wait()
        return await original(self, node, replica)

    monkeypatch.setattr(Cluster, "_activation_for", gated)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = Cluster(state_dir, AgentSettings(node_count=4))
    try:
        ptype = await cluster.provision(write_guest_package(tmp_path / "G", script=SLEEPER))
        await cluster.create_application("fabric:/G", ptype.name, ptype.version, {})
        service = await cluster.create_service(
            "fabric:/G", _stateless("fabric:/G/S", instance_count=2)
        )
        (partition,) = service.partitions
        await _until(lambda: _ready(partition) == ["_Node_0", "_Node_1"], "never Ready")
        blocker = _block(state_dir, "_Node_2")

        # The failover tries _Node_2 and fails; the repair then goes to _Node_3, held there.
        await cluster.stop_node("_Node_1")
        async with asyncio.timeout(30):
            await held.wait()
        # Meanwhile another replica is lost: _Node_0's failover can only try _Node_2, fails.
        await cluster.stop_node("_Node_0")
        assert "could not be activated on _Node_2" in service.health_warnings[partition.id]
        release.set()
        await _until(lambda: _ready(partition) == ["_Node_3"], "the held replica never started")

        blocker.unlink()
        await _until(
            lambda: _ready(partition) == ["_Node_2", "_Node_3"],
            "the loss reported during the repair was never repaired",
        )
        assert service.health_warnings == {}
    finally:
        await cluster.shutdown()


@pytest.mark.anyio
async def test_an_unexpected_error_in_a_repair_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(placement, "REPAIR_FIRST_DELAY", 0.05)

    async def broken_fill(self: Cluster, partition: Partition, avoid: Any = None) -> None:
        raise RuntimeError("a bug in the repair")

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = Cluster(state_dir, AgentSettings(node_count=1))
    try:
        ptype = await cluster.provision(write_guest_package(tmp_path / "G", script=SLEEPER))
        await cluster.create_application("fabric:/G", ptype.name, ptype.version, {})
        service = await cluster.create_service("fabric:/G", _stateless("fabric:/G/S"))
        (partition,) = service.partitions
        monkeypatch.setattr(Cluster, "_fill_partition", broken_fill)
        with caplog.at_level(logging.ERROR, logger=placement.log.name):
            cluster._repair_later(partition, "_Node_0")
            await _until(lambda: partition.id not in cluster._repairs, "the repair never ended")
        (record,) = [
            r for r in caplog.records if r.name == placement.log.name and r.levelno >= logging.ERROR
        ]
        assert "repair stopped" in record.getMessage()
        assert record.exc_info is not None
        assert "a bug in the repair" in str(record.exc_info[1])
    finally:
        await cluster.shutdown()
