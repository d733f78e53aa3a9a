"""The runtime model of one cluster, and the read-only queries every part of the agent asks.

Theory of operation. Everything runs on one asyncio event loop. The services (application
types, catalog, placement, failover, instances) and the restore write this model; everyone
reads it. A check and the write that follows it happen with
no ``await`` between them, which is what makes them atomic. A reader that must wait for the
model to change takes :meth:`Changes.next` *before* it checks, then awaits it, so no change is
missed between the check and the wait.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fabrichost.agent._backoff import HealthState
from fabrichost.agent._console import console_prefix, stderr_tail
from fabrichost.agent._environment import ApplicationFolders
from fabrichost.agent._health import EntityReports
from fabrichost.agent._model import ReplicaStatus
from fabrichost.errors import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from fabrichost.agent._activation import CodePackageHost, ServicePackageActivation
    from fabrichost.agent._model import Application, Partition, Replica, Service
    from fabrichost.agent._provision import ProvisionedType
    from fabrichost.agent._spec import ServicePackageSpec

ActivationKey = tuple[str, str, str]  # (application name, service package name, activation id)


# SF's node instance ids are new each time a node starts; a time seed keeps them from repeating
# across agent runs (an agent's start is every node's start).
_node_instances = itertools.count(time.time_ns() // 1000)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Node:
    """A logical node: up or down, and its service package activations.

    ``instance_id`` changes at every start (SF's ``InstanceId``: a transition naming an old one
    is refused); ``up_at`` and ``down_at`` are when it last came up and went down.
    """

    name: str
    up: bool = True
    activations: dict[ActivationKey, ServicePackageActivation] = field(default_factory=dict)
    stopped: asyncio.Event | None = None  # set when a stop in progress is over
    instance_id: int = field(default_factory=lambda: next(_node_instances))
    up_at: datetime = field(default_factory=_now)
    down_at: datetime | None = None
    health: EntityReports = field(default_factory=EntityReports, repr=False)

    def went_up(self) -> None:
        self.up = True
        self.instance_id = next(_node_instances)
        self.up_at = _now()

    def went_down(self) -> None:
        self.up = False
        self.down_at = _now()


class Changes:
    """Wakes everything that waits for the runtime model to change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def next(self) -> asyncio.Event:
        """The event the next change sets: take it before checking, then wait on it."""
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class ClusterState:
    """Nodes, application types, applications (with their services, partitions and replicas)
    and the resolved packages of each application."""

    def __init__(self, state_dir: Path, node_names: Iterable[str]) -> None:
        self.state_dir = state_dir
        self.nodes = {name: Node(name) for name in node_names}
        self.application_types: dict[tuple[str, str], ProvisionedType] = {}
        self.applications: dict[str, Application] = {}
        self.packages: dict[str, dict[str, ServicePackageSpec]] = {}  # app -> package -> spec
        # During an application upgrade: the packages of the nodes (upgrade domains) that run
        # another version than the one in force, (app, node) -> package -> spec.
        self.node_packages: dict[tuple[str, str], dict[str, ServicePackageSpec]] = {}
        self.closing = False  # the agent is stopping: nothing is activated, nothing fails over
        self.changes = Changes()
        self.health = EntityReports()  # the cluster's own health reports
        self._partitions: dict[str, Partition] = {}  # partition id -> it; see partition()

    # -- lookups that raise NotFoundError --------------------------------------------------------

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFoundError(
                f"node {name} does not exist", code="FABRIC_E_NODE_NOT_FOUND"
            ) from None

    def application(self, name: str) -> Application:
        try:
            return self.applications[name]
        except KeyError:
            raise NotFoundError(
                f"application {name} does not exist", code="FABRIC_E_APPLICATION_NOT_FOUND"
            ) from None

    def service(self, name: str) -> Service:
        service = self.find_service(name)
        if service is None:
            raise NotFoundError(
                f"service {name} does not exist", code="FABRIC_E_SERVICE_DOES_NOT_EXIST"
            )
        return service

    def partition(self, partition_id: str) -> Partition:
        # Strategy: an index that is rebuilt when it misses, so that a client asking for each
        # of 10,000 partitions in turn costs 10,000 lookups, not 10,000 scans. A hit is
        # checked (its service may have been deleted since); a miss rebuilds it once.
        partition = self._partitions.get(partition_id)
        if partition is not None and self._holds(partition):
            return partition
        self._partitions = {p.id: p for s in self.services() for p in s.partitions}
        partition = self._partitions.get(partition_id)
        if partition is not None:
            return partition
        raise NotFoundError(
            f"partition {partition_id} does not exist", code="FABRIC_E_PARTITION_NOT_FOUND"
        )

    def _holds(self, partition: Partition) -> bool:
        """Whether ``partition`` is still one of a service of this cluster's (not deleted)."""
        service = partition.service
        app = self.applications.get(service.application.name)
        return app is service.application and app.services.get(service.name) is service

    # -- queries ------------------------------------------------------------------------------

    def find_service(self, name: str) -> Service | None:
        for app in self.applications.values():
            if name in app.services:
                return app.services[name]
        return None

    def services(self) -> Iterator[Service]:
        for app in self.applications.values():
            yield from app.services.values()

    def all_replicas(self) -> Iterator[Replica]:
        for service in self.services():
            yield from service.replicas()

    def is_live(self, service: Service) -> bool:
        """Whether ``service`` is still the one its name stands for (not deleted or replaced).

        Identity, not the name: a failover that waited while its service was deleted (and
        perhaps created again) must not place replicas for the old object.
        """
        app = service.application
        return (
            self.applications.get(app.name) is app
            and app.status != "Deleting"
            and app.services.get(service.name) is service
        )

    def serving(self, partition: Partition) -> list[Replica]:
        """The live replicas of ``partition`` on up nodes (a stopping node's are leaving)."""
        return [
            r
            for r in partition.live_replicas()
            if (node := self.nodes.get(r.node_name)) is not None and node.up
        ]

    def activation_of(self, replica: Replica) -> ServicePackageActivation | None:
        node = self.nodes.get(replica.node_name)
        if node is None:
            return None
        service = replica.service
        return node.activations.get(
            (service.application.name, service.service_manifest_name, replica.activation_id)
        )

    def packages_on(self, node_name: str, app_name: str) -> dict[str, ServicePackageSpec]:
        """The packages application ``app_name`` runs on node ``node_name``: the version in
        force, or another while an upgrade has moved that node to it."""
        upgraded = self.node_packages.get((app_name, node_name))
        return upgraded if upgraded is not None else self.packages[app_name]

    def activations_on(self, node: Node, app_name: str) -> list[ServicePackageActivation]:
        """The activations of application ``app_name`` on ``node``."""
        return [a for key, a in node.activations.items() if key[0] == app_name]

    def folders(self, node: Node, app: Application) -> ApplicationFolders:
        """The work, log and temp folders of ``app`` on ``node``."""
        return ApplicationFolders.for_node(self.state_dir, node.name, app.application_id)

    async def wait_stops_over(self) -> None:
        """Wait until no node is stopping.

        A stopping node's replicas no longer count as serving (:meth:`serving`) though their
        processes run until the stop's grace period ends: a fill now would start a second copy
        beside them. The stop fails its replicas over itself before it is over.
        """
        while stopping := [n.stopped for n in self.nodes.values() if n.stopped is not None]:
            await stopping[0].wait()

    def replica_reason(self, replica: Replica) -> str:
        """Why a replica is not Ready, for errors a user can act on."""
        if replica.last_error:
            return replica.last_error
        act = self.activation_of(replica)
        if act is not None:
            for host in act.hosts.values():
                if host.supervisor.last_activation_error:
                    return (
                        f"code package {host.spec.name} cannot start: "
                        f"{host.supervisor.last_activation_error}"
                    )
                stats = host.supervisor.statistics
                if stats.ContinuousExitFailureCount or stats.ContinuousActivationFailureCount:
                    return keeps_failing(host)
        return f"waiting for a code package to register service type {replica.service.type_name}"

    def replica_failure(self, replica: Replica) -> str | None:
        """Why a replica that is not Ready has *failed*, or None while it may still come up.

        A wait reports these at once instead of waiting out its time: the service's own code
        raised while opening the replica, or a code package of its activation keeps failing
        (it exited that many times in a row that its health is Error).
        """
        if replica.failure:
            return replica.failure
        act = self.activation_of(replica)
        if act is None:
            return None
        for host in act.hosts.values():
            if _keeps_exiting(host):
                return keeps_failing(host)
        return None

    def unsettled(self, replica: Replica, settle: float) -> float:
        """Seconds until a Ready guest executable's process has run ``settle`` seconds (0 when
        it has, or for a replica of a runtime host, which its host opened itself).

        A guest's replica is Ready as soon as its process starts, so a program that exits at
        once would look Ready to a wait; one that runs this long did not fail at start.
        """
        act = self.activation_of(replica)
        if act is None or not act.package.is_guest:
            return 0.0
        host = act.hosts.get(replica.code_package_name)
        if host is None:
            return 0.0
        started = host.supervisor.statistics.LastActivationTime
        if host.supervisor.pid is None or started is None:
            return settle
        return max(0.0, settle - (datetime.now(UTC) - started).total_seconds())

    def not_ready(self, service: Service) -> list[Replica]:
        """The placed replicas of ``service`` that are not Ready."""
        return [r for r in service.replicas() if r.status is not ReplicaStatus.READY]


def _keeps_exiting(host: CodePackageHost) -> bool:
    """Whether a code package's processes exited in failure so often that its health is Error,
    and none runs now.

    Exits only: a start refused for a passing reason (an earlier incarnation still holds the
    slot's lock) is retried and is no verdict. Not while a process runs: failures are forgotten
    only after a quiet run, and one that came up after them may be about to serve.
    """
    supervisor = host.supervisor
    if supervisor.pid is not None:
        return False
    exits = supervisor.statistics.ContinuousExitFailureCount
    if (setup := supervisor.setup_statistics) is not None:
        exits = max(exits, setup.ContinuousExitFailureCount)
    return supervisor.policy.health(exits) is HealthState.ERROR


def keeps_failing(host: CodePackageHost) -> str:
    """``code package X keeps failing (last exit code N)`` and the end of its stderr, where the
    cause is (a traceback, a refused registration)."""
    supervisor = host.supervisor
    launch = supervisor.spec
    stats, setup = supervisor.statistics, supervisor.setup_statistics
    # The entry point that fails is the one to quote: a failing setup never reaches the main.
    in_setup = setup is not None and setup.max_continuous_failures > stats.max_continuous_failures
    if in_setup:
        assert setup is not None
        stats = setup
    message = (
        f"code package {host.spec.name} keeps failing "
        f"({'setup entry point, ' if in_setup else ''}last exit code {stats.LastExitCode})"
    )
    if supervisor.last_activation_error:
        message = f"code package {host.spec.name} cannot start: {supervisor.last_activation_error}"
    if launch.log_dir is None:
        return message
    prefix = console_prefix(launch.code_package_name, launch.service_package_name, setup=in_setup)
    tail = stderr_tail(launch.log_dir, prefix)
    if not tail:
        return message
    return message + "; its stderr ends:\n" + "\n".join(f"    {line}" for line in tail)
