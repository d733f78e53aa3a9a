"""Interleavings of an activation's events that real processes produce only rarely.

The host's answer to ``OpenReplica`` and its process exit can be read in one event-loop turn:
the open's continuation then runs after the exit was handled. Real processes cannot be made to
hit that turn on demand, so these tests drive the activation with a scripted channel.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import pytest

from fabrichost.agent._activation import MIN_EXIT_GRACE, ServicePackageActivation
from fabrichost.agent._backoff import RestartPolicy
from fabrichost.agent._environment import ActivationIdentity, ApplicationFolders
from fabrichost.agent._model import (
    Application,
    Partition,
    PartitionScheme,
    Replica,
    ReplicaRole,
    ReplicaStatus,
    Service,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.agent._ports import PortAllocator
from fabrichost.agent._spec import CodePackageSpec, ServicePackageSpec, ServiceTypeSpec
from fabrichost.manifest import ActivationMode

MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"

pytestmark = pytest.mark.anyio


class ScriptedChannel:
    """A channel whose ``OpenReplica`` answers when the test says so."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.opened: list[int] = []
        self.aborted: list[int] = []
        self.asked = asyncio.Event()

    async def open_replica(self, replica: Replica, **_: Any) -> str:
        self.opened.append(replica.id)
        self.asked.set()
        return await self.answer

    def abort_replica(self, partition_id: str, replica_id: int) -> None:
        self.aborted.append(replica_id)


def _activation(tmp_path: Path) -> tuple[ServicePackageActivation, Replica]:
    package = ServicePackageSpec(
        "Pkg",
        "1.0",
        (CodePackageSpec("Code", "1.0", tmp_path, main=None),),
        (ServiceTypeSpec("T", stateful=False),),
    )
    app = Application("fabric:/A", "AT", "1", "AT_App1", {})
    service = Service(
        "fabric:/A/S", app, "T", ServiceKind.STATELESS, "Pkg", ActivationMode.SHARED_PROCESS, 1
    )
    partition = Partition(service, PartitionScheme.SINGLETON)
    service.partitions.append(partition)
    replica = Replica(partition, "_Node_0", ReplicaRole.NONE, code_package_name="Code")
    partition.replicas.append(replica)
    activation = ServicePackageActivation(
        identity=ActivationIdentity("_Node_0", app.name, app.application_id, "Pkg", ""),
        package=package,
        folders=ApplicationFolders.for_node(tmp_path, "_Node_0", app.application_id),
        ports=PortAllocator(30000, 30010),
        policy=RestartPolicy(),
        on_replica_change=lambda replica: None,
    )
    activation.replicas[replica] = None
    return activation, replica


async def test_a_replica_whose_host_died_after_answering_is_opened_in_the_next_one(
    tmp_path: Path,
) -> None:
    activation, replica = _activation(tmp_path)
    first = ScriptedChannel(pid=1111)
    host: Any = SimpleNamespace(spec=SimpleNamespace(name="Code"), channel=first)
    activation.type_registered(host, "T")
    async with asyncio.timeout(5):
        await first.asked.wait()
    assert first.opened == [replica.id]
    # One loop turn: the ReplicaOpened reply is read, then the process exit is handled.
    first.answer.set_result("tcp://a")
    host.channel = None
    activation.host_lost(host, "process 1111 exited with code 1")
    await asyncio.gather(*activation._tasks)
    assert replica.status is not ReplicaStatus.READY  # not Ready in a dead process
    second = ScriptedChannel(pid=2222)
    host.channel = second
    second.answer.set_result("tcp://b")
    activation.type_registered(host, "T")  # the next incarnation registers
    await asyncio.gather(*activation._tasks)
    assert second.opened == [replica.id]
    assert (replica.status, replica.host_pid, replica.address) == (
        ReplicaStatus.READY,
        2222,
        "tcp://b",
    )


class _SharedWaitSeen(asyncio.Event):
    """An ``activated`` event that says when a second caller starts waiting to share it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited_on = asyncio.Event()

    async def wait(self) -> Literal[True]:
        self.waited_on.set()
        return await super().wait()


class _FailsWhileShared(ServicePackageActivation):
    """Fails for real (its node's folder is blocked), but only once another caller waits for
    it: the failure lands after an await, while the activation is shared."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.activated = _SharedWaitSeen()

    async def activate(self) -> None:
        assert isinstance(self.activated, _SharedWaitSeen)
        await self.activated.waited_on.wait()
        await super().activate()


async def test_callers_sharing_an_activation_that_fails_all_fail(tmp_path: Path) -> None:
    """Two services created at once share one SharedProcess activation; if it fails after an
    await, the second caller (which found it Activating) must fail too, not report success
    with a replica that never opens."""
    from fabrichost.agent import Cluster
    from fabrichost.errors import FabricHostError

    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = Cluster(state_dir, activation_factory=_FailsWhileShared)
    try:
        ptype = await cluster.types.provision(MANIFESTS / "MyApp")
        await cluster.catalog.create_application("fabric:/App1", ptype.name, ptype.version, {})
        (state_dir / "_App").mkdir()
        (state_dir / "_App" / "_Node_0").write_text("in the way\n")  # activations there fail
        results = await asyncio.gather(
            *(
                cluster.catalog.create_service(
                    "fabric:/App1",
                    ServiceDescription(
                        f"fabric:/App1/S{i}",
                        "MyServiceType",
                        ServiceKind.STATEFUL,
                        has_persisted_state=True,
                    ),
                )
                for i in (1, 2)
            ),
            return_exceptions=True,
        )
        assert all(isinstance(r, FabricHostError) for r in results), results
        assert "cannot be activated on _Node_0" in str(results[1])
        assert cluster.state.applications["fabric:/App1"].services == {}
        assert [row.name for row in cluster.persist.service_rows()] == []
    finally:
        await cluster.shutdown()


async def test_a_hung_close_does_not_double_the_grace_period(tmp_path: Path) -> None:
    """Closing the replicas and stopping the processes share one grace period: a host whose
    close never answers gets SIGINT when the period is over, and only a short moment more
    before SIGKILL (not a second full period)."""
    activation, replica = _activation(tmp_path)
    replica.status = ReplicaStatus.READY
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stops: list[float] = []

    async def close_replica(partition_id: str, replica_id: int) -> None:
        await never  # a close that hangs

    async def stop(grace: float) -> None:
        stops.append(grace)

    channel = SimpleNamespace(close_replica=close_replica)
    host = SimpleNamespace(spec=SimpleNamespace(name="Code"), channel=channel, stop=stop)
    activation.hosts = {"Code": host}  # type: ignore[dict-item]
    activation.activated.set()
    async with asyncio.timeout(10):
        await activation.deactivate(grace=1.0)
    assert stops == [MIN_EXIT_GRACE]
    assert activation.status == "Deactivated"
