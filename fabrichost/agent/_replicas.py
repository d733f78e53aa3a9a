"""Replicas on nodes: placement, activations, failover and node stop/start.

A mixin of :class:`~fabrichost.agent._cluster.Cluster` (it shares the cluster's state; the split
is by topic, to keep each module readable). Placing is two steps: :meth:`_plan_partition` decides
synchronously where the missing replicas of a partition go and with which role (so the decision
can be committed to the store in one transaction, before any process is started), and
:meth:`_activate_replicas` puts them into service package activations, starting processes. A
replica whose activation failed is forgotten, and a task of its partition's own fills the
partition again later (:meth:`_repair`), preferring other nodes than the one that failed.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psutil

from fabrichost.agent._activation import ServicePackageActivation
from fabrichost.agent._environment import ActivationIdentity, ApplicationFolders
from fabrichost.agent._model import (
    ActivationMode,
    Partition,
    Replica,
    ReplicaRole,
    ReplicaStatus,
    ServiceKind,
)
from fabrichost.agent._placement import choose_nodes
from fabrichost.errors import ActivationError, FabricHostError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Coroutine, Iterable
    from pathlib import Path

    from fabrichost.agent._activation import CodePackageHost
    from fabrichost.agent._instances import InstanceManager
    from fabrichost.agent._model import Application, Service
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._ports import PortAllocator
    from fabrichost.agent._spec import ServicePackageSpec

log = logging.getLogger(__name__)

ActivationKey = tuple[str, str, str]  # (application name, service package name, activation id)

# A partition that lost replicas because an activation failed (a full disk, no free port, a
# folder in the way) is filled again after these delays, doubling up to the cap, until it is
# whole, its service is gone or the agent stops: Service Fabric's failover manager keeps
# retrying too, instead of waiting for someone to restart a node.
REPAIR_FIRST_DELAY = 1.0
REPAIR_MAX_DELAY = 60.0


@dataclass(eq=False)
class PartitionRepair:
    """The state of one partition's repair task (see :meth:`ReplicaPlacement._repair`)."""

    # Nodes where an activation for the partition failed: placed on last, so that one broken
    # node does not take every retry while another node could serve.
    failed_nodes: set[str] = field(default_factory=set)
    # A replica was lost after the current pass began: that pass may not have seen it, so the
    # task makes another one instead of ending.
    again: bool = True


@dataclass(eq=False)
class Node:
    name: str
    up: bool = True
    activations: dict[ActivationKey, ServicePackageActivation] = field(default_factory=dict)
    stopped: asyncio.Event | None = None  # set when a stop in progress is over


class ReplicaPlacement:
    """Placement, activations, failover and nodes (mixed into the cluster)."""

    if TYPE_CHECKING:
        from fabrichost.agent._cluster import AgentSettings

        state_dir: Path
        settings: AgentSettings
        nodes: dict[str, Node]
        applications: dict[str, Application]
        packages: dict[str, dict[str, ServicePackageSpec]]
        persist: Persistence
        instances: InstanceManager
        closing: bool
        _ports: PortAllocator
        _repairs: dict[str, PartitionRepair]  # partition id -> its repair task's state

        def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
        def _bump(self) -> None: ...
        def _host_notification(
            self, activation: ServicePackageActivation, message: object
        ) -> None: ...

    # -- planning -------------------------------------------------------------------------------

    def _all_replicas(self) -> Iterable[Replica]:
        for app in self.applications.values():
            for service in app.services.values():
                yield from service.replicas()

    def _live(self, service: Service) -> bool:
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

    def _serving(self, partition: Partition) -> list[Replica]:
        """The live replicas of ``partition`` on up nodes (a stopping node's are leaving)."""
        return [
            r
            for r in partition.live_replicas()
            if (node := self.nodes.get(r.node_name)) is not None and node.up
        ]

    def _plan_partition(
        self, partition: Partition, avoid: frozenset[str] = frozenset()
    ) -> list[Replica]:
        """Decide where a partition's missing replicas go, and their roles (no IO).

        Nodes in ``avoid`` are chosen only when no other up node can take a replica.
        """
        service = partition.service
        live = self._serving(partition)
        up = [n.name for n in self.nodes.values() if n.up]
        # A partition can hold more than its target for a moment (a node came back while its
        # replacement was being built): then nothing is wanted (-1 would mean "every node").
        wanted = (
            service.target_count
            if service.target_count < 0
            else max(0, service.target_count - len(live))
        )
        load = dict.fromkeys(self.nodes, 0)
        primaries: dict[str, int] = {}
        for r in self._all_replicas():
            load[r.node_name] = load.get(r.node_name, 0) + 1
            if r.role is ReplicaRole.PRIMARY:
                primaries[r.node_name] = primaries.get(r.node_name, 0) + 1
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

    async def _activate_replicas(self, replicas: Iterable[Replica]) -> None:
        """Put planned replicas into activations; one whose node is down is placed again.

        A failed activation costs only the replicas aimed at its node: they are forgotten
        (model and store) and their partitions repaired later (:meth:`_repair_later`), while
        the replicas aimed at the other nodes still start. One broken node must not keep a
        whole partition down.

        Raises:
            FabricHostError: the first activation that failed, once every replica was tried
                (a create undoes itself on it; a restore or a node start reports it).
        """
        failed: dict[str, FabricHostError] = {}  # node -> why its activation failed
        lost: list[Partition] = []
        for replica in list(replicas):
            # The world moves during every await: a replica dropped meanwhile (its service
            # deleted, its instance terminated, its node stopped) is not added; its remover
            # deactivates what was made for it.
            if replica.dropped or not self._live(replica.service):
                continue
            node = self.nodes[replica.node_name]
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
                if replica.dropped or not self._live(replica.service):
                    continue
            if activation is None or not node.up:  # stop_node drops what it finds; not this
                self._drop_placement(replica)
                lost.append(replica.partition)
                continue
            activation.add_replica(replica)
        errors = list(failed.values())
        for partition in dict.fromkeys(lost):
            try:
                await self._failover(partition)
            except FabricHostError as exc:  # reported and repaired like ours; the rest go on
                errors.append(exc)
        if errors:
            raise errors[0]

    def _not_activated(self, replica: Replica, error: FabricHostError) -> None:
        """Forget a planned replica whose activation failed on its node, say why on its
        service, and schedule its partition's repair (which places on that node last)."""
        if replica.dropped or not self._live(replica.service):
            return
        self._drop_placement(replica)
        partition = replica.partition
        warning = (
            f"partition {partition.id}: a replica could not be activated on "
            f"{replica.node_name}: {error}"
        )
        replica.service.health_warnings[partition.id] = warning
        log.warning("%s %s", replica.service.name, warning)
        self._repair_later(partition, replica.node_name)

    def _repair_later(self, partition: Partition, failed_node: str) -> None:
        """Fill ``partition`` again after a backoff (one repair task per partition).

        A loss reported while the task runs marks it for another pass: the pass in progress
        may have planned before the loss and would otherwise end with the partition short.
        """
        if self.closing:
            return
        repair = self._repairs.get(partition.id)
        if repair is None:
            repair = self._repairs[partition.id] = PartitionRepair()
            self.spawn(self._repair(partition, repair))
        repair.failed_nodes.add(failed_node)
        repair.again = True

    async def _repair(self, partition: Partition, repair: PartitionRepair) -> None:
        """Fill ``partition`` until a pass succeeds with no loss reported since it began."""
        delay = REPAIR_FIRST_DELAY
        try:
            while repair.again:
                await asyncio.sleep(delay)
                await self._stops_over()
                if self.closing or not self._live(partition.service):
                    return
                repair.again = False  # from here on, a reported loss needs another pass
                try:
                    await self._fill_partition(partition, avoid=frozenset(repair.failed_nodes))
                except FabricHostError as exc:
                    repair.again = True
                    delay = min(delay * 2, REPAIR_MAX_DELAY)
                    log.warning(
                        "%s partition %s: repair failed (%s); next try in %.0f s",
                        partition.service.name,
                        partition.id,
                        exc,
                        delay,
                    )
            # Whole again, or short of up nodes (a node start fills it then).
        except Exception:  # a bug: said loudly, not lost with the task
            log.exception("%s partition %s: repair stopped", partition.service.name, partition.id)
        finally:
            del self._repairs[partition.id]

    async def _stops_over(self) -> None:
        """Wait until no node is stopping.

        A stopping node's replicas no longer count as serving (:meth:`_serving`) though their
        processes run until the stop's grace period ends: a fill now would start a second copy
        beside them. The stop fails its replicas over itself before it is over.
        """
        while stopping := [n.stopped for n in self.nodes.values() if n.stopped is not None]:
            await stopping[0].wait()

    def _drop_placement(self, replica: Replica) -> None:
        """Forget a replica that never reached a process (its node went down first)."""
        replica.status = ReplicaStatus.DROPPED
        self.persist.replica_removed(replica)

    async def _fill_partition(
        self, partition: Partition, avoid: frozenset[str] = frozenset()
    ) -> None:
        """Place and start the replicas a partition lacks, on up nodes that hold none of it
        (on nodes in ``avoid`` only when no other node fits)."""
        if not self._live(partition.service):
            return  # deleted while the caller waited: nothing is placed for it, ever
        planned = self._plan_partition(partition, avoid)
        if not planned:
            return
        try:
            with self.persist.store.transaction():
                saved = [self.persist.replica_saved(replica) for replica in planned]
        except BaseException:
            self._unplan(partition, planned)  # not committed: it was never decided
            raise
        if not all(saved):  # the service went with the check above; defensive all the same
            self._unplan(partition, planned)
            return
        await self._activate_replicas(planned)

    @staticmethod
    def _unplan(partition: Partition, planned: list[Replica]) -> None:
        for replica in planned:
            replica.status = ReplicaStatus.DROPPED
        unplanned = {id(r) for r in planned}
        partition.replicas[:] = [r for r in partition.replicas if id(r) not in unplanned]

    # -- activations ----------------------------------------------------------------------------

    async def _activation_for(self, node: Node, replica: Replica) -> ServicePackageActivation:
        """The activation ``replica`` goes into, made (and started) if needed."""
        if self.closing:
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
        activation = ServicePackageActivation(
            identity=identity,
            package=self.packages[app.name][service.service_manifest_name],
            folders=ApplicationFolders.for_node(self.state_dir, node.name, app.application_id),
            ports=self._ports,
            policy=self.settings.restart_policy,
            on_replica_change=self._replica_changed,
            on_notification=self._host_notification,
            on_process=self._process_changed,
        )
        node.activations[key] = activation  # before the await: a concurrent caller shares it
        try:
            await activation.activate()
        except BaseException:
            node.activations.pop(key, None)
            raise
        return activation

    def activation_of(self, replica: Replica) -> ServicePackageActivation | None:
        node = self.nodes.get(replica.node_name)
        if node is None:
            return None
        service = replica.service
        return node.activations.get(
            (service.application.name, service.service_manifest_name, replica.activation_id)
        )

    def _process_changed(
        self, activation: ServicePackageActivation, host: CodePackageHost, pid: int | None
    ) -> None:
        ident = activation.identity
        key = (
            ident.node_name,
            ident.application_name,
            activation.package.name,
            activation.activation_id,
            host.spec.name,
        )
        if pid is None:
            self.persist.process_exited(key)
            return
        try:
            start_time = psutil.Process(pid).create_time()
        except psutil.Error:
            start_time = time.time()
        self.persist.process_started(
            key, pid, start_time, host.lock_path, host.supervisor.instance_id
        )

    async def _remove_replica(self, replica: Replica) -> None:
        activation = self.activation_of(replica)
        was_open = replica.status is ReplicaStatus.READY
        replica.status = ReplicaStatus.DROPPED  # first: an activation in progress will not add it
        if activation is None:
            return
        await activation.activated.wait()  # an activation being made for it finishes first
        await activation.remove_replica(replica, was_open=was_open)
        if activation.replicas:
            return
        node = self.nodes[replica.node_name]
        if activation.activation_id:
            # An exclusive activation existed for this replica alone: it goes with it, and the
            # delete returns once its processes are gone (a replacement never overlaps it).
            await self._deactivate(node, activation, grace=self.settings.stop_grace)
        else:
            loop = asyncio.get_running_loop()
            activation.deactivation = loop.call_later(
                self.settings.shared_deactivation_grace,
                lambda: self.spawn(
                    self._deactivate(node, activation, grace=2.0, only_if_unused=True)
                ),
            )

    async def _deactivate(
        self,
        node: Node,
        activation: ServicePackageActivation,
        *,
        grace: float,
        only_if_unused: bool = False,
    ) -> None:
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
        self._bump()

    # -- failover -------------------------------------------------------------------------------

    def _replica_changed(self, replica: Replica) -> None:
        self._bump()
        self.instances.replica_changed(replica)
        if self.closing:
            return  # the agent is stopping: nothing fails over
        if (
            replica.status is ReplicaStatus.DOWN
            and replica.role is ReplicaRole.PRIMARY
            and replica.service.kind is ServiceKind.STATEFUL
        ):
            replica.role = ReplicaRole.ACTIVE_SECONDARY  # it comes back as a secondary
            if self.nodes[replica.node_name].up:  # a stopping node's replicas left the store
                self.persist.replica_saved(replica)
            self.spawn(self._elect_primary(replica.partition))
        elif (
            replica.status is ReplicaStatus.READY
            and replica.service.kind is ServiceKind.STATEFUL
            and not any(r.role is ReplicaRole.PRIMARY for r in self._serving(replica.partition))
            and self._live(replica.service)
        ):
            # The partition lost its Primary while no other replica was Ready (e.g. its only
            # replica's host died): the first replica that is Ready again is promoted.
            self.spawn(self._elect_primary(replica.partition))

    async def _elect_primary(self, partition: Partition) -> None:
        """Promote a Ready secondary of ``partition`` (the first that accepts) to Primary."""
        for candidate in self._serving(partition):
            if any(r.role is ReplicaRole.PRIMARY for r in self._serving(partition)):
                return
            if candidate.status is not ReplicaStatus.READY or candidate.dropped:
                continue
            activation = self.activation_of(candidate)
            if activation is None:
                continue
            previous = candidate.role
            # Claimed before the await: an election that runs meanwhile (two replicas turned
            # Ready at once) sees a Primary and stops, so a partition never gets two.
            candidate.role = ReplicaRole.PRIMARY
            try:
                await activation.change_role(candidate, ReplicaRole.PRIMARY)
            except (FabricHostError, TimeoutError) as exc:
                log.warning("promoting replica %s failed: %s", candidate.id, exc)
                if candidate.role is ReplicaRole.PRIMARY:
                    candidate.role = previous
                continue
            if not candidate.dropped and self.nodes[candidate.node_name].up:
                self.persist.replica_saved(candidate)  # committed once the host has it
            return

    async def _failover(self, partition: Partition) -> None:
        if not self._live(partition.service):
            return  # deleted meanwhile: there is nothing to fail over
        if partition.service.kind is ServiceKind.STATEFUL:
            await self._elect_primary(partition)
        await self._fill_partition(partition)  # checks again: the election awaited

    # -- nodes ----------------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFoundError(
                f"node {name} does not exist", code="FABRIC_E_NODE_NOT_FOUND"
            ) from None

    async def stop_node(self, name: str) -> None:
        """Stop a node: its processes stop, its replicas fail over to the other nodes.

        Every replica placed on the node is taken from the model, not only those already in a
        process (a create or a failover may have placed some it has not activated yet). The
        node going down and those replicas going away are one decision, committed before
        anything is awaited: an agent killed during the stop restarts with the node down and
        the replicas to place again.
        """
        node = self.node(name)
        if not node.up:
            return
        node.stopped = asyncio.Event()  # a start of this node waits until the stop is over
        try:
            await self._stop_node(node)
        finally:
            node.stopped.set()
            node.stopped = None

    async def _stop_node(self, node: Node) -> None:
        name = node.name
        lost = [r for r in self._all_replicas() if r.node_name == name]
        with self.persist.store.transaction():
            self.persist.node_saved(name, False)
            for replica in lost:
                self.persist.replica_removed(replica)
        node.up = False
        # They stay registered while they stop, so that whoever waits for a replica's
        # processes to be gone (a terminate, a delete) still finds them.
        activations = list(node.activations.values())
        held = {id(r) for a in activations for r in a.replicas}
        for replica in lost:
            if id(replica) not in held:  # not in a process yet: nothing to close first
                replica.status = ReplicaStatus.DROPPED
        self._bump()
        await asyncio.gather(*(a.deactivate(self.settings.stop_grace) for a in activations))
        stopped = {id(a) for a in activations}
        for key, activation in list(node.activations.items()):
            if id(activation) in stopped:
                del node.activations[key]
        for replica in [*lost, *(r for a in activations for r in a.replicas)]:
            replica.status = ReplicaStatus.DROPPED  # closed in their processes, gone now
        self._bump()
        if self.closing:
            return  # the agent is stopping: nothing fails over
        # Services deleted while the processes stopped are skipped (_failover checks).
        for partition in dict.fromkeys(r.partition for r in lost):
            try:
                await self._failover(partition)
            except FabricHostError as exc:  # reported; the other partitions still fail over
                log.error(
                    "%s partition %s cannot fail over: %s",
                    partition.service.name,
                    partition.id,
                    exc,
                )
        self._bump()

    async def start_node(self, name: str) -> None:
        node = self.node(name)
        # Stops in progress finish first: this node's own, and any other node's, whose
        # replicas still run until its grace period ends (a fill now would double them).
        await self._stops_over()
        if node.up:
            return
        node.up = True
        self.persist.node_saved(name, True)
        for app in list(self.applications.values()):
            for service in list(app.services.values()):
                for partition in service.partitions:
                    try:
                        await self._fill_partition(partition)
                    except FabricHostError as exc:  # on the service's health; the rest go on
                        log.error(
                            "%s partition %s cannot be filled: %s", service.name, partition.id, exc
                        )
        self._bump()

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
                    return (
                        f"code package {host.spec.name} keeps failing "
                        f"(last exit code {stats.LastExitCode})"
                    )
        return f"waiting for a code package to register service type {replica.service.type_name}"
