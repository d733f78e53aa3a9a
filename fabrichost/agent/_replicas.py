"""Replicas on nodes: placement, activations, failover and node stop/start.

A mixin of :class:`~fabrichost.agent._cluster.Cluster` (it shares the cluster's state; the split
is by topic, to keep each module readable). Placing is two steps: :meth:`_plan_partition` decides
synchronously where the missing replicas of a partition go and with which role (so the decision
can be committed to the store in one transaction, before any process is started), and
:meth:`_activate_replicas` puts them into service package activations, starting processes.
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
    from fabrichost.agent._model import Application
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._ports import PortAllocator
    from fabrichost.agent._spec import ServicePackageSpec

log = logging.getLogger(__name__)

ActivationKey = tuple[str, str, str]  # (application name, service package name, activation id)


@dataclass(eq=False)
class Node:
    name: str
    up: bool = True
    activations: dict[ActivationKey, ServicePackageActivation] = field(default_factory=dict)


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

    def _plan_partition(self, partition: Partition) -> list[Replica]:
        """Decide where a partition's missing replicas go, and their roles (no IO)."""
        service = partition.service
        live = partition.live_replicas()
        up = [n.name for n in self.nodes.values() if n.up]
        wanted = (
            service.target_count if service.target_count < 0 else (service.target_count - len(live))
        )
        load = dict.fromkeys(self.nodes, 0)
        primaries: dict[str, int] = {}
        for r in self._all_replicas():
            load[r.node_name] = load.get(r.node_name, 0) + 1
            if r.role is ReplicaRole.PRIMARY:
                primaries[r.node_name] = primaries.get(r.node_name, 0) + 1
        result = choose_nodes(up, load, wanted, exclude=frozenset(r.node_name for r in live))
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
        for replica in replicas:
            node = self.nodes[replica.node_name]
            if not node.up or replica.status is ReplicaStatus.DROPPED:
                continue
            activation = await self._activation_for(node, replica)
            # The world moves during the await: a replica dropped meanwhile (its service
            # deleted, its instance terminated) is not added; its remover deactivates.
            if not replica.dropped:
                activation.add_replica(replica)

    async def _fill_partition(self, partition: Partition) -> None:
        """Place and start the replicas a partition lacks, on up nodes that hold none of it."""
        planned = self._plan_partition(partition)
        with self.persist.store.transaction():
            for replica in planned:
                self.persist.replica_saved(replica)
        await self._activate_replicas(planned)

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
        existing = node.activations.get(key)
        if existing is not None and existing.status in ("Activating", "Active"):
            return existing
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
            self.persist.replica_saved(replica)
            self.spawn(self._elect_primary(replica.partition))

    async def _elect_primary(self, partition: Partition) -> None:
        """Promote a Ready secondary of ``partition`` (the first that accepts) to Primary."""
        for candidate in partition.live_replicas():
            if any(r.role is ReplicaRole.PRIMARY for r in partition.live_replicas()):
                return
            if candidate.status is not ReplicaStatus.READY:
                continue
            activation = self.activation_of(candidate)
            if activation is None:
                continue
            try:
                await activation.change_role(candidate, ReplicaRole.PRIMARY)
            except (FabricHostError, TimeoutError) as exc:
                log.warning("promoting replica %s failed: %s", candidate.id, exc)
                continue
            self.persist.replica_saved(candidate)  # committed once the host has it
            return

    async def _failover(self, partition: Partition) -> None:
        if partition.service.kind is ServiceKind.STATEFUL:
            await self._elect_primary(partition)
        await self._fill_partition(partition)

    # -- nodes ----------------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise NotFoundError(
                f"node {name} does not exist", code="FABRIC_E_NODE_NOT_FOUND"
            ) from None

    async def stop_node(self, name: str) -> None:
        """Stop a node: its processes stop, its replicas fail over to the other nodes."""
        node = self.node(name)
        if not node.up:
            return
        node.up = False
        self.persist.node_saved(name, False)
        activations = list(node.activations.values())
        node.activations.clear()
        await asyncio.gather(*(a.deactivate(self.settings.stop_grace) for a in activations))
        touched = []
        for activation in activations:
            for replica in activation.replicas:
                replica.status = ReplicaStatus.DROPPED
                self.persist.replica_removed(replica)
                touched.append(replica.partition)
        for partition in dict.fromkeys(touched):
            await self._failover(partition)
        self._bump()

    async def start_node(self, name: str) -> None:
        node = self.node(name)
        if node.up:
            return
        node.up = True
        self.persist.node_saved(name, True)
        for app in list(self.applications.values()):
            for service in list(app.services.values()):
                for partition in service.partitions:
                    await self._fill_partition(partition)
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
