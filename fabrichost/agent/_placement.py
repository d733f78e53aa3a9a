"""Placing replicas on nodes and into service package activations.

Placing is two steps: :meth:`Placement.plan_partition` decides synchronously where the missing
replicas of a partition go and with which role (so the decision can be committed to the store in
one transaction, before any process is started), and :meth:`Placement.activate_replicas` puts
them into service package activations, starting processes. Activations are made by the
*activation factory* given to the constructor (:class:`ServicePackageActivation` itself by
default; tests give a subclass). A replica whose activation failed is forgotten and its partition
repaired later (``_repair``), preferring other nodes than the one that failed.

Every await here is a point where the world moved: a replica is added to an activation only if
its service is still the live object and its node is still up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Protocol

import psutil

from fabrichost.agent._activation import ServicePackageActivation
from fabrichost.agent._channel import ChannelLimits
from fabrichost.agent._environment import ActivationIdentity
from fabrichost.agent._model import (
    ActivationMode,
    Replica,
    ReplicaRole,
    ReplicaStatus,
    ServiceKind,
)
from fabrichost.agent._node_choice import choose_nodes
from fabrichost.agent._ports import PortAllocator
from fabrichost.agent._repair import PartitionRepairs
from fabrichost.errors import ActivationError, FabricHostError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from fabrichost.agent._activation import CodePackageHost
    from fabrichost.agent._backoff import RestartPolicy
    from fabrichost.agent._election import PrimaryElection
    from fabrichost.agent._environment import ApplicationFolders
    from fabrichost.agent._model import Partition
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._spec import ServicePackageSpec
    from fabrichost.agent._state import ClusterState, Node
    from fabrichost.agent._tasks import BackgroundTasks

log = logging.getLogger(__name__)


class ActivationFactory(Protocol):
    """Makes a service package activation; :class:`ServicePackageActivation` is one."""

    def __call__(
        self,
        *,
        identity: ActivationIdentity,
        package: ServicePackageSpec,
        folders: ApplicationFolders,
        ports: PortAllocator,
        policy: RestartPolicy,
        on_replica_change: Callable[[Replica], None],
        on_notification: Callable[[ServicePackageActivation, object], None] | None = None,
        on_process: Callable[[ServicePackageActivation, CodePackageHost, int | None], None]
        | None = None,
        channel_limits: ChannelLimits | None = None,
    ) -> ServicePackageActivation: ...


class Placement:
    """Where a cluster's replicas go, and the activations that run them."""

    def __init__(
        self,
        state: ClusterState,
        persist: Persistence,
        settings: AgentSettings,
        election: PrimaryElection,
        tasks: BackgroundTasks,
        *,
        on_replica_change: Callable[[Replica], None],
        on_notification: Callable[[ServicePackageActivation, object], None],
        activation_factory: ActivationFactory = ServicePackageActivation,
    ) -> None:
        self._state = state
        self._persist = persist
        self._settings = settings
        self._election = election
        self._tasks = tasks
        self._on_replica_change = on_replica_change
        self._on_notification = on_notification
        self._activation_factory = activation_factory
        self._ports = PortAllocator(*settings.port_range)
        self._channel_limits = ChannelLimits(stall_timeout=settings.host_stall_timeout)
        self.repairs = PartitionRepairs(state, settings, tasks, self.fill_partition)

    # -- planning -------------------------------------------------------------------------------

    def plan_partition(
        self, partition: Partition, avoid: frozenset[str] = frozenset()
    ) -> list[Replica]:
        """Decide where a partition's missing replicas go, and their roles (no IO).

        Nodes in ``avoid`` are chosen only when no other up node can take a replica.
        """
        return self.plan_partitions([partition], avoid)

    def plan_partitions(
        self, partitions: Iterable[Partition], avoid: frozenset[str] = frozenset()
    ) -> list[Replica]:
        """:meth:`plan_partition` for many partitions (a service's, an application's).

        Strategy: the nodes' loads are counted once and kept up to date as replicas are
        planned, so planning N partitions costs N, not N times the cluster's replicas.
        """
        load: dict[str, int] = dict.fromkeys(self._state.nodes, 0)
        primaries: dict[str, int] = {}
        for r in self._state.all_replicas():
            load[r.node_name] = load.get(r.node_name, 0) + 1
            if r.role is ReplicaRole.PRIMARY:
                primaries[r.node_name] = primaries.get(r.node_name, 0) + 1
        planned: list[Replica] = []
        for partition in partitions:
            for replica in self._plan_one(partition, avoid, load, primaries):
                load[replica.node_name] = load.get(replica.node_name, 0) + 1
                if replica.role is ReplicaRole.PRIMARY:
                    primaries[replica.node_name] = primaries.get(replica.node_name, 0) + 1
                planned.append(replica)
        return planned

    def _plan_one(
        self,
        partition: Partition,
        avoid: frozenset[str],
        load: dict[str, int],
        primaries: dict[str, int],
    ) -> list[Replica]:
        state = self._state
        service = partition.service
        live = state.serving(partition)
        up = [n.name for n in state.nodes.values() if n.up]
        # A partition can hold more than its target for a moment (a node came back while its
        # replacement was being built): then nothing is wanted (-1 would mean "every node").
        wanted = (
            service.target_count
            if service.target_count < 0
            else max(0, service.target_count - len(live))
        )
        result = choose_nodes(
            up, load, wanted, exclude=frozenset(r.node_name for r in live), avoid=avoid
        )
        # A partition's warning lasts while it lacks replicas; a complete placement clears it.
        service.health_warnings.pop(partition.id, None)
        if result.missing:
            warning = (
                f"partition {partition.id}: {result.missing} replica(s) could not be "
                f"placed: only {len(up)} node(s) are up"
            )
            service.health_warnings[partition.id] = warning
            log.warning("%s %s", service.name, warning)
        roles = dict.fromkeys(result.nodes, ReplicaRole.NONE)
        if service.kind is ServiceKind.STATEFUL:
            roles = dict.fromkeys(result.nodes, ReplicaRole.ACTIVE_SECONDARY)
            if result.nodes and not any(r.role is ReplicaRole.PRIMARY for r in live):
                # Spread primaries like SF's balancer: the node with the fewest gets this one.
                roles[min(result.nodes, key=lambda n: primaries.get(n, 0))] = ReplicaRole.PRIMARY
        planned = [Replica(partition, node, roles[node]) for node in result.nodes]
        partition.replicas.extend(planned)
        return planned

    @staticmethod
    def unplan(partition: Partition, planned: list[Replica]) -> None:
        """Take back replicas planned but never committed."""
        for replica in planned:
            replica.status = ReplicaStatus.DROPPED
        unplanned = {id(r) for r in planned}
        partition.replicas[:] = [r for r in partition.replicas if id(r) not in unplanned]

    # -- activating -----------------------------------------------------------------------------

    async def activate_replicas(self, replicas: Iterable[Replica]) -> None:
        """Put planned replicas into activations; one whose node is down is placed again.

        A failed activation costs only the replicas aimed at its node: they are forgotten
        (model and store) and their partitions repaired later, while the replicas aimed at the
        other nodes still start. One broken node must not keep a whole partition down.

        Raises:
            FabricHostError: the first activation that failed, once every replica was tried
                (a create undoes itself on it; a restore or a node start reports it).
        """
        state = self._state
        failed: dict[str, FabricHostError] = {}  # node -> why its activation failed
        lost: list[Partition] = []
        for replica in list(replicas):
            # The world moves during every await: a replica dropped meanwhile (its service
            # deleted, its instance terminated, its node stopped) is not added; its remover
            # deactivates what was made for it.
            if replica.dropped or not state.is_live(replica.service):
                continue
            node = state.nodes[replica.node_name]
            if node.name in failed:  # what just failed there would fail again
                self._not_activated(replica, failed[node.name])
                continue
            activation = None
            if node.up:
                try:
                    activation = await self._activation_for(node, replica)
                except FabricHostError as exc:
                    if node.up:  # else it failed because its node went down: placed again
                        failed[node.name] = exc
                        self._not_activated(replica, exc)
                        continue
                if replica.dropped or not state.is_live(replica.service):
                    continue
            if activation is None or not node.up:  # stop_node drops what it finds; not this
                self._drop_placement(replica)
                lost.append(replica.partition)
                continue
            activation.add_replica(replica)
        errors = list(failed.values())
        for partition in dict.fromkeys(lost):
            try:
                await self.refill(partition)
            except FabricHostError as exc:  # reported and repaired like ours; the rest go on
                errors.append(exc)
        if errors:
            raise errors[0]

    def _not_activated(self, replica: Replica, error: FabricHostError) -> None:
        """Forget a planned replica whose activation failed on its node, say why on its
        service, and schedule its partition's repair (which places on that node last)."""
        if replica.dropped or not self._state.is_live(replica.service):
            return
        self._drop_placement(replica)
        partition = replica.partition
        warning = (
            f"partition {partition.id}: a replica could not be activated on "
            f"{replica.node_name}: {error}"
        )
        replica.service.health_warnings[partition.id] = warning
        log.warning("%s %s", replica.service.name, warning)
        self.repairs.schedule(partition, replica.node_name)

    def _drop_placement(self, replica: Replica) -> None:
        """Forget a replica that never reached a process (its node went down first)."""
        replica.status = ReplicaStatus.DROPPED
        self._persist.replica_removed(replica)

    async def fill_partition(
        self, partition: Partition, avoid: frozenset[str] = frozenset()
    ) -> None:
        """Place and start the replicas a partition lacks, on up nodes that hold none of it
        (on nodes in ``avoid`` only when no other node fits)."""
        if not self._state.is_live(partition.service):
            return  # deleted while the caller waited: nothing is placed for it, ever
        planned = self.plan_partition(partition, avoid)
        if not planned:
            return
        try:
            with self._persist.transaction():
                saved = [self._persist.replica_saved(replica) for replica in planned]
        except BaseException:
            self.unplan(partition, planned)  # not committed: it was never decided
            raise
        if not all(saved):  # the service went with the check above; defensive all the same
            self.unplan(partition, planned)
            return
        await self.activate_replicas(planned)

    async def refill(self, partition: Partition) -> None:
        """After a loss: elect a Primary if the partition has none, then fill it."""
        if not self._state.is_live(partition.service):
            return  # deleted meanwhile: there is nothing to fail over
        if partition.service.kind is ServiceKind.STATEFUL:
            await self._election.elect(partition)
        await self.fill_partition(partition)  # checks again: the election awaited

    async def _activation_for(self, node: Node, replica: Replica) -> ServicePackageActivation:
        """The activation ``replica`` goes into, made (and started) if needed."""
        if self._state.closing:
            raise ActivationError("the agent is shutting down")
        service, partition = replica.service, replica.partition
        app = service.application
        exclusive = service.activation_mode is ActivationMode.EXCLUSIVE_PROCESS
        activation_id = str(uuid.uuid4()) if exclusive else ""
        # Known before the await, so that a concurrent remove finds the activation.
        replica.activation_id = activation_id
        key = (app.name, service.service_manifest_name, activation_id)
        while (existing := node.activations.get(key)) is not None and existing.status in (
            "Activating",
            "Active",
        ):
            await existing.activated.wait()  # shared: a concurrent activate() finishes first
            if existing.status == "Active":
                return existing
            if existing.failure is not None:  # what failed for the first caller fails for us
                raise ActivationError(existing.failure)
            # It was deactivated meanwhile (grace period over): look again, or make a new one.
        if not node.up:  # it went down while we waited: nothing new starts there
            raise ActivationError(f"node {node.name} is down")
        identity = ActivationIdentity(
            node.name,
            app.name,
            app.application_id,
            service.service_manifest_name,
            activation_id,
            partition_id=partition.id if exclusive else "",
            service_name=service.name if exclusive else "",
        )
        activation = self._activation_factory(
            identity=identity,
            package=self._state.packages_on(node.name, app.name)[service.service_manifest_name],
            folders=self._state.folders(node, app),
            ports=self._ports,
            policy=self._settings.restart_policy,
            on_replica_change=self._on_replica_change,
            on_notification=self._on_notification,
            on_process=self._process_changed,
            channel_limits=self._channel_limits,
        )
        node.activations[key] = activation  # before the await: a concurrent caller shares it
        try:
            await activation.activate()
        except BaseException:
            node.activations.pop(key, None)
            raise
        return activation

    def _process_changed(
        self, activation: ServicePackageActivation, host: CodePackageHost, pid: int | None
    ) -> None:
        # A wait for a service judges its code packages' health too (one that keeps exiting has
        # failed), and their replicas may not change when a process that never served exits.
        self._state.changes.notify()
        ident = activation.identity
        key = (
            ident.node_name,
            ident.application_name,
            activation.package.name,
            activation.activation_id,
            host.spec.name,
        )
        if pid is None:
            self._persist.process_exited(key)
            return
        try:
            start_time = psutil.Process(pid).create_time()
        except psutil.Error:
            start_time = time.time()
        self._persist.process_started(
            key, pid, start_time, host.lock_path, host.supervisor.instance_id
        )

    # -- removing -------------------------------------------------------------------------------

    async def remove_replica(self, replica: Replica) -> None:
        """Close a replica in its process; its activation goes when it holds no replica (an
        exclusive one now, a shared one after the shared deactivation grace)."""
        activation = self._state.activation_of(replica)
        was_open = replica.status is ReplicaStatus.READY
        replica.status = ReplicaStatus.DROPPED  # first: an activation in progress will not add it
        if activation is None:
            return
        await activation.activated.wait()  # an activation being made for it finishes first
        await activation.remove_replica(replica, was_open=was_open)
        if activation.replicas:
            return
        node = self._state.nodes[replica.node_name]
        if activation.activation_id:
            # An exclusive activation existed for this replica alone: it goes with it, and the
            # delete returns once its processes are gone (a replacement never overlaps it).
            await self.deactivate(node, activation, grace=self._settings.stop_grace)
        else:
            loop = asyncio.get_running_loop()
            activation.deactivation = loop.call_later(
                self._settings.shared_deactivation_grace,
                lambda: self._tasks.spawn(
                    self.deactivate(node, activation, grace=2.0, only_if_unused=True)
                ),
            )

    async def deactivate(
        self,
        node: Node,
        activation: ServicePackageActivation,
        *,
        grace: float,
        only_if_unused: bool = False,
    ) -> None:
        """Unregister ``activation`` from ``node`` and stop its processes."""
        if only_if_unused and activation.replicas:
            return
        key = (
            activation.identity.application_name,
            activation.package.name,
            activation.activation_id,
        )
        if node.activations.get(key) is activation:
            del node.activations[key]
        await activation.deactivate(grace=grace)
        self._state.changes.notify()
