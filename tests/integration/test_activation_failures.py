"""An activation that fails on one node costs that node's replicas only (SPEC §3).

The other replicas of the partition still start; the partition's repair fills the lost ones on
another node if one can take them (on the failed node only when none can), never beside the
processes of a node that is still stopping, and never forgets a loss reported while it runs.

A failure is a real one: a file at ``state_dir/_App/<node>`` is in the way of the node's
application folders.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.agent import AgentSettings, Cluster, ReplicaStatus, ServicePackageActivation
from fabrichost.daemon import stop_background
from tests.integration.conftest import write_guest_package
from tests.integration.test_durability import _restarted
from tests.integration.test_failover_races import Call, _replicas, _stateless

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from fabrichost.agent import ActivationFactory, Partition
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


async def _until(
    cluster: Cluster, check: Callable[[], Any], what: str, within: float = 30.0
) -> None:
    """Wait until ``check()`` holds, re-checked whenever the cluster's model changes."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        changed = cluster.state.changes.next()  # taken before the check: nothing missed
        if check():
            return
        assert asyncio.get_running_loop().time() < deadline, what
        # A repair ending changes no replica: look again now and then all the same.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await changed.wait()


def _held_on(node: str, held: asyncio.Event, release: asyncio.Event) -> ActivationFactory:
    """Activations that stop at ``node`` until ``release`` (``held`` says one is there); the
    processes they start are real."""

    class Held(ServicePackageActivation):
        async def activate(self) -> None:
            if self.identity.node_name == node and not release.is_set():
                held.set()
                await release.wait()
            await super().activate()

    return Held


@pytest.mark.anyio
async def test_a_loss_reported_while_the_repair_fills_gets_another_pass(tmp_path: Path) -> None:
    """A repair's pass only takes a few event-loop turns with real processes; the test holds
    one open at its activation (the processes stay real) to land another loss inside it."""
    held, release = asyncio.Event(), asyncio.Event()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    settings = AgentSettings(node_count=4, repair_first_delay=0.05, repair_max_delay=0.5)
    cluster = Cluster(state_dir, settings, activation_factory=_held_on("_Node_3", held, release))
    try:
        ptype = await cluster.types.provision(write_guest_package(tmp_path / "G", script=SLEEPER))
        await cluster.catalog.create_application("fabric:/G", ptype.name, ptype.version, {})
        service = await cluster.catalog.create_service(
            "fabric:/G", _stateless("fabric:/G/S", instance_count=2)
        )
        (partition,) = service.partitions
        await _until(cluster, lambda: _ready(partition) == ["_Node_0", "_Node_1"], "never Ready")
        blocker = _block(state_dir, "_Node_2")

        # The failover tries _Node_2 and fails; the repair then goes to _Node_3, held there.
        await cluster.failover.stop_node("_Node_1")
        async with asyncio.timeout(30):
            await held.wait()
        # Meanwhile another replica is lost: _Node_0's failover can only try _Node_2, fails.
        await cluster.failover.stop_node("_Node_0")
        assert "could not be activated on _Node_2" in service.health_warnings[partition.id]
        release.set()
        await _until(
            cluster, lambda: _ready(partition) == ["_Node_3"], "the held replica never started"
        )

        blocker.unlink()
        await _until(
            cluster,
            lambda: _ready(partition) == ["_Node_2", "_Node_3"],
            "the loss reported during the repair was never repaired",
        )
        assert service.health_warnings == {}
    finally:
        await cluster.shutdown()


def _buggy_from(attempt: int) -> ActivationFactory:
    """Activations that fail as a bug would (RuntimeError) from the ``attempt``-th on."""
    attempts = 0

    class Buggy(ServicePackageActivation):
        async def activate(self) -> None:
            nonlocal attempts
            attempts += 1
            if attempts >= attempt:
                raise RuntimeError("a bug in the repair")
            await super().activate()

    return Buggy


@pytest.mark.anyio
async def test_an_unexpected_error_in_a_repair_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A repair whose fill meets a bug (not an activation failure) ends, saying so with the
    traceback, instead of dying silently with its task."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    settings = AgentSettings(node_count=2, repair_first_delay=0.05)
    # The create's activation works, the failover's fails for real, the repair's meets a bug.
    cluster = Cluster(state_dir, settings, activation_factory=_buggy_from(3))
    repair_log = "fabrichost.agent._repair"
    try:
        ptype = await cluster.types.provision(write_guest_package(tmp_path / "G", script=SLEEPER))
        await cluster.catalog.create_application("fabric:/G", ptype.name, ptype.version, {})
        service = await cluster.catalog.create_service("fabric:/G", _stateless("fabric:/G/S"))
        (partition,) = service.partitions
        await _until(cluster, lambda: len(_ready(partition)) == 1, "never Ready")
        (home,) = _ready(partition)
        _block(state_dir, "_Node_1" if home == "_Node_0" else "_Node_0")
        with caplog.at_level(logging.ERROR, logger=repair_log):
            await cluster.failover.stop_node(home)  # the failover fails; its repair meets the bug
            assert cluster.placement.repairs.is_repairing(partition)
            await _until(
                cluster,
                lambda: not cluster.placement.repairs.is_repairing(partition),
                "the repair never ended",
            )
        (record,) = [
            r for r in caplog.records if r.name == repair_log and r.levelno >= logging.ERROR
        ]
        assert "repair stopped" in record.getMessage()
        assert record.exc_info is not None
        assert "a bug in the repair" in str(record.exc_info[1])
    finally:
        await cluster.shutdown()
