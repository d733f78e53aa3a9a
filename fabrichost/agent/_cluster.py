"""The local cluster: nodes, application types, applications, services and their replicas.

Everything runs on one asyncio event loop and this class is the only writer of the runtime model,
so a check and the insert that follows it (a name that must be unique, an activation that must
exist once) happen with no ``await`` between them: that is what makes them atomic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fabrichost.agent._activation import ServicePackageActivation
from fabrichost.agent._backoff import RestartPolicy
from fabrichost.agent._environment import ActivationIdentity, ApplicationFolders
from fabrichost.agent._instances import InstanceManager
from fabrichost.agent._model import (
    ActivationMode,
    Application,
    Partition,
    Replica,
    ReplicaRole,
    ReplicaStatus,
    Service,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.agent._placement import choose_nodes
from fabrichost.agent._ports import DEFAULT_RANGE, PortAllocator
from fabrichost.agent._provision import ProvisionedType, instantiate, provision_package
from fabrichost.agent._requests import IfExists, Outcome, RequestLedger, description_digest
from fabrichost.errors import ActivationError, ApiError, ConflictError, NotFoundError
from fabrichost.protocol import RunCompleted, RunStatus

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping
    from pathlib import Path

    from fabrichost.agent._spec import ServicePackageSpec

log = logging.getLogger(__name__)

ActivationKey = tuple[str, str, str]  # (application name, service package name, activation id)


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Tunables of a local cluster, with short dev defaults (SF's production values in comments)."""

    node_count: int = 1
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    shared_deactivation_grace: float = 10.0  # SF DeactivationGraceInterval: 60 s
    exclusive_deactivation_grace: float = 0.5  # SF ExclusiveModeDeactivationGraceInterval: 1 s
    stop_grace: float = 5.0
    port_range: tuple[int, int] = DEFAULT_RANGE


@dataclass(eq=False)
class Node:
    name: str
    up: bool = True
    activations: dict[ActivationKey, ServicePackageActivation] = field(default_factory=dict)


class Cluster:
    """A local cluster of ``settings.node_count`` logical nodes, rooted in ``state_dir``."""

    def __init__(self, state_dir: Path, settings: AgentSettings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings or AgentSettings()
        self.nodes = {f"_Node_{i}": Node(f"_Node_{i}") for i in range(self.settings.node_count)}
        self.application_types: dict[tuple[str, str], ProvisionedType] = {}
        self.applications: dict[str, Application] = {}
        self.packages: dict[str, dict[str, ServicePackageSpec]] = {}  # app -> package -> spec
        self._app_sequence = 0
        self._ports = PortAllocator(*self.settings.port_range)
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._generation = time.time_ns() // 1000  # replaced by the store's sequence
        self.ledger = RequestLedger()
        self.instances = InstanceManager(self, self.ledger, self.next_generation)

    def next_generation(self) -> int:
        """A fencing token from one sequence that never repeats."""
        self._generation += 1
        return self._generation

    # -- application types ----------------------------------------------------------------------

    async def provision(
        self, package_dir: Path, *, reuse_existing: bool = False
    ) -> ProvisionedType:
        """Validate a package, copy it into the image store and register its type and version.

        With ``reuse_existing``, provisioning the very same content again returns the type
        already registered (a second deploy of one package). The same type and version with
        different content is always refused: running stale code silently would surprise.
        """
        ptype = await asyncio.to_thread(
            provision_package, package_dir, self.state_dir / "ImageStore"
        )
        key = (ptype.name, ptype.version)
        existing = self.application_types.get(key)
        if existing is not None:
            if reuse_existing and existing.digest == ptype.digest:
                return existing
            differs = "" if existing.digest == ptype.digest else " with different content"
            raise ConflictError(
                f"application type {ptype.name} version {ptype.version} is already "
                f"provisioned{differs}; bump ApplicationTypeVersion or unprovision it first",
                code="FABRIC_E_APPLICATION_TYPE_ALREADY_EXISTS",
            )
        self.application_types[key] = ptype
        return ptype

    def unprovision(self, name: str, version: str) -> None:
        if (name, version) not in self.application_types:
            raise NotFoundError(
                f"application type {name} version {version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        users = [
            a.name
            for a in self.applications.values()
            if (a.type_name, a.type_version) == (name, version)
        ]
        if users:
            raise ApiError(
                f"application type {name} {version} is used by {', '.join(users)}",
                code="FABRIC_E_APPLICATION_TYPE_IN_USE",
            )
        del self.application_types[(name, version)]

    # -- applications ---------------------------------------------------------------------------

    async def create_application(
        self, name: str, type_name: str, type_version: str, parameters: Mapping[str, str]
    ) -> Application:
        """Create an application and its DefaultServices; a bad parameter changes nothing."""
        _check_name(name)
        if name in self.applications:
            raise ConflictError(
                f"application {name} already exists", code="FABRIC_E_APPLICATION_ALREADY_EXISTS"
            )
        ptype = self.application_types.get((type_name, type_version))
        if ptype is None:
            raise NotFoundError(
                f"application type {type_name} version {type_version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        resolved = instantiate(ptype, parameters)
        app = Application(
            name,
            type_name,
            type_version,
            f"{type_name}_App{self._app_sequence}",
            dict(resolved.parameters),
        )
        self._app_sequence += 1
        self.applications[name] = app  # claimed before any await: concurrent creates conflict
        self.packages[name] = dict(resolved.packages)
        try:
            for description in resolved.default_services:
                # DefaultServices names are relative to the application (Name="ServiceA").
                if not description.name.startswith("fabric:/"):
                    description = dataclasses.replace(
                        description, name=f"{name}/{description.name}"
                    )
                await self.create_service(name, description)
        except BaseException:
            await self.delete_application(name)
            raise
        return app

    async def create_application_with_policy(
        self,
        name: str,
        type_name: str,
        type_version: str,
        parameters: Mapping[str, str],
        *,
        if_exists: IfExists = IfExists.FAIL,
        request_id: str | None = None,
    ) -> Outcome[Application]:
        """``create_application`` under a create policy and an optional request id."""
        return await self.ledger.create(
            kind="application",
            name=f"application:{name}",
            digest=description_digest([type_name, type_version, dict(parameters)]),
            request_id=request_id,
            if_exists=if_exists,
            existing=lambda: self.applications.get(name),
            create=lambda: self.create_application(name, type_name, type_version, parameters),
            delete=lambda: self.delete_application(name),
            conflict_message=lambda app: (
                f"application {name} already exists (type {app.type_name} {app.type_version})"
            ),
            conflict_code="FABRIC_E_APPLICATION_ALREADY_EXISTS",
        )

    async def delete_application(self, name: str) -> None:
        app = self.application(name)
        for service_name in list(app.services):
            await self.delete_service(service_name)
        await asyncio.gather(
            *(
                self._deactivate(node, key, act, grace=self.settings.stop_grace)
                for node in self.nodes.values()
                for key, act in list(node.activations.items())
                if key[0] == name
            )
        )
        self.applications.pop(name, None)
        self.packages.pop(name, None)
        self.instances.application_deleted(name)
        self._bump()

    def application(self, name: str) -> Application:
        try:
            return self.applications[name]
        except KeyError:
            raise NotFoundError(
                f"application {name} does not exist", code="FABRIC_E_APPLICATION_NOT_FOUND"
            ) from None

    # -- services -------------------------------------------------------------------------------

    async def create_service(self, app_name: str, desc: ServiceDescription) -> Service:
        app = self.application(app_name)
        _check_name(desc.name, parent=app_name)
        existing = self._find_service(desc.name)
        if existing is not None:
            raise ConflictError(
                f"service {desc.name} already exists (type {existing.type_name})",
                code="FABRIC_E_SERVICE_ALREADY_EXISTS",
            )
        package, type_spec = self._package_of_type(app_name, desc.type_name)
        if type_spec.stateful != (desc.kind is ServiceKind.STATEFUL):
            raise ApiError(
                f"service type {desc.type_name} is "
                f"{'stateful' if type_spec.stateful else 'stateless'}, "
                f"but a {desc.kind.value} service was asked for"
            )
        for cp in package.code_packages:
            if cp.main is None:
                raise ActivationError(
                    f"code package {cp.name!r} of {package.name!r} uses "
                    f"{cp.unsupported}; fabrichost runs processes (ExeHost) "
                    "only"
                )
        service = Service(
            desc.name,
            app,
            desc.type_name,
            desc.kind,
            package.name,
            desc.activation_mode,
            desc.target_count,
            desc.min_replica_set_size,
            desc.has_persisted_state,
            desc.init_data,
        )
        for pname, low, high in desc.partition_layout():
            service.partitions.append(Partition(service, desc.partition_scheme, pname, low, high))
        app.services[desc.name] = service  # claimed before any await
        for partition in service.partitions:
            await self._fill_partition(partition)
        self._bump()
        return service

    async def create_service_with_policy(
        self,
        app_name: str,
        desc: ServiceDescription,
        *,
        if_exists: IfExists = IfExists.FAIL,
        request_id: str | None = None,
    ) -> Outcome[Service]:
        """``create_service`` under a create policy and an optional request id."""
        return await self.ledger.create(
            kind="service",
            name=f"service:{desc.name}",
            digest=description_digest([app_name, dataclasses.asdict(desc)]),
            request_id=request_id,
            if_exists=if_exists,
            existing=lambda: self._find_service(desc.name),
            create=lambda: self.create_service(app_name, desc),
            delete=lambda: self.delete_service(desc.name),
            conflict_message=lambda svc: (
                f"service {desc.name} already exists (type {svc.type_name})"
            ),
            conflict_code="FABRIC_E_SERVICE_ALREADY_EXISTS",
        )

    async def delete_service(self, name: str) -> None:
        service = self.service(name)
        service.application.services.pop(name, None)
        await asyncio.gather(*(self._remove_replica(r) for r in service.replicas()))
        self._bump()

    def service(self, name: str) -> Service:
        service = self._find_service(name)
        if service is None:
            raise NotFoundError(
                f"service {name} does not exist", code="FABRIC_E_SERVICE_DOES_NOT_EXIST"
            )
        return service

    def _find_service(self, name: str) -> Service | None:
        for app in self.applications.values():
            if name in app.services:
                return app.services[name]
        return None

    def _package_of_type(self, app_name: str, type_name: str) -> tuple[Any, Any]:
        for package in self.packages[app_name].values():
            type_spec = package.service_type(type_name)
            if type_spec is not None:
                return package, type_spec
        raise NotFoundError(
            f"service type {type_name} is not declared by application {app_name}",
            code="FABRIC_E_SERVICE_TYPE_NOT_FOUND",
        )

    async def wait_service_ready(self, name: str, within: float) -> None:
        """Return once every placed replica is Ready; raise with the reason when ``within`` ends."""
        try:
            async with asyncio.timeout(within):
                while True:
                    changed = self._changed
                    service = self.service(name)
                    pending = [r for r in service.replicas() if r.status is not ReplicaStatus.READY]
                    if not pending:
                        return
                    await changed.wait()
        except TimeoutError:
            reasons = sorted({self.replica_reason(r) for r in pending})
            raise ActivationError(
                f"service {name} is not ready after {within:g} s: " + "; ".join(reasons)
            ) from None

    def replica_reason(self, replica: Replica) -> str:
        if replica.last_error:
            return replica.last_error
        act = self.activation_of(replica)
        if act is not None:
            for host in act.hosts.values():
                stats = host.supervisor.statistics
                if stats.ContinuousExitFailureCount or stats.ContinuousActivationFailureCount:
                    return (
                        f"code package {host.spec.name} keeps failing "
                        f"(last exit code {stats.LastExitCode})"
                    )
        return f"waiting for a code package to register service type {replica.service.type_name}"

    # -- placement and replicas -----------------------------------------------------------------

    def _load(self) -> dict[str, int]:
        load = dict.fromkeys(self.nodes, 0)
        for app in self.applications.values():
            for service in app.services.values():
                for r in service.replicas():
                    load[r.node_name] = load.get(r.node_name, 0) + 1
        return load

    def _primaries_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for app in self.applications.values():
            for service in app.services.values():
                for r in service.replicas():
                    if r.role is ReplicaRole.PRIMARY:
                        counts[r.node_name] = counts.get(r.node_name, 0) + 1
        return counts

    async def _fill_partition(self, partition: Partition) -> None:
        """Place the replicas a partition lacks on up nodes that hold none of it yet."""
        service = partition.service
        live = partition.live_replicas()
        up = [n.name for n in self.nodes.values() if n.up]
        wanted = (
            service.target_count if service.target_count < 0 else service.target_count - len(live)
        )
        result = choose_nodes(
            up, self._load(), wanted, exclude=frozenset(r.node_name for r in live)
        )
        # A partition's warning lasts while it lacks replicas; a complete placement clears it.
        service.health_warnings.pop(partition.id, None)
        if result.missing:
            warning = (
                f"partition {partition.id}: {result.missing} replica(s) could not be placed: "
                f"only {len(up)} node(s) are up"
            )
            service.health_warnings[partition.id] = warning
            log.warning("%s %s", service.name, warning)
        roles = dict.fromkeys(result.nodes, ReplicaRole.NONE)
        if service.kind is ServiceKind.STATEFUL:
            roles = dict.fromkeys(result.nodes, ReplicaRole.ACTIVE_SECONDARY)
            has_primary = any(r.role is ReplicaRole.PRIMARY for r in live)
            if not has_primary and result.nodes:
                # Spread primaries like SF's balancer: the node with the fewest gets this one.
                primaries = self._primaries_per_node()
                roles[min(result.nodes, key=lambda n: primaries.get(n, 0))] = ReplicaRole.PRIMARY
        for node_name in result.nodes:
            replica = Replica(partition, node_name, roles[node_name])
            partition.replicas.append(replica)
            activation = await self._activation_for(self.nodes[node_name], service, partition)
            activation.add_replica(replica)

    async def _activation_for(
        self, node: Node, service: Service, partition: Partition
    ) -> ServicePackageActivation:
        app = service.application
        exclusive = service.activation_mode is ActivationMode.EXCLUSIVE_PROCESS
        activation_id = str(uuid.uuid4()) if exclusive else ""
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
        key = (
            replica.service.application.name,
            replica.service.service_manifest_name,
            replica.activation_id,
        )
        return node.activations.get(key)

    async def _remove_replica(self, replica: Replica) -> None:
        activation = self.activation_of(replica)
        if activation is None:
            replica.status = ReplicaStatus.DROPPED
            return
        await activation.remove_replica(replica)
        if activation.replicas:
            return
        if activation.activation_id:
            # An exclusive activation existed for this replica alone: it goes with it, and the
            # delete returns once its processes are gone (a replacement never overlaps it).
            node = self.nodes[replica.node_name]
            key = (
                activation.identity.application_name,
                activation.package.name,
                activation.activation_id,
            )
            await self._deactivate(node, key, activation, grace=self.settings.stop_grace)
        else:
            self._schedule_deactivation(replica.node_name, activation)

    def _schedule_deactivation(self, node_name: str, activation: ServicePackageActivation) -> None:
        node = self.nodes[node_name]
        key = (
            activation.identity.application_name,
            activation.package.name,
            activation.activation_id,
        )
        grace = (
            self.settings.exclusive_deactivation_grace
            if activation.activation_id
            else self.settings.shared_deactivation_grace
        )
        loop = asyncio.get_running_loop()
        activation.deactivation = loop.call_later(
            grace,
            lambda: self.spawn(
                self._deactivate(node, key, activation, grace=0.0, only_if_unused=True)
            ),
        )

    async def _deactivate(
        self,
        node: Node,
        key: ActivationKey,
        activation: ServicePackageActivation,
        *,
        grace: float,
        only_if_unused: bool = False,
    ) -> None:
        if only_if_unused and activation.replicas:
            return
        if node.activations.get(key) is activation:
            del node.activations[key]
        await activation.deactivate(grace=self.settings.stop_grace if not only_if_unused else 2.0)
        self._bump()

    def _host_notification(self, message: object) -> None:
        if isinstance(message, RunCompleted):
            self.instances.run_completed(
                message.replica_id,
                message.status is RunStatus.COMPLETED,
                message.output,
                message.error,
            )
        else:
            log.debug("host notification: %r", message)

    def _replica_changed(self, replica: Replica) -> None:
        self._bump()
        self.instances.replica_changed(replica)
        partition = replica.partition
        if (
            replica.status is ReplicaStatus.DOWN
            and replica.role is ReplicaRole.PRIMARY
            and replica.service.kind is ServiceKind.STATEFUL
        ):
            secondary = next(
                (
                    r
                    for r in partition.live_replicas()
                    if r.status is ReplicaStatus.READY and r.role is ReplicaRole.ACTIVE_SECONDARY
                ),
                None,
            )
            if secondary is not None:
                replica.role = ReplicaRole.ACTIVE_SECONDARY  # it comes back as a secondary
                self.spawn(self._promote(secondary))

    async def _promote(self, replica: Replica) -> None:
        activation = self.activation_of(replica)
        if activation is not None:
            try:
                await activation.change_role(replica, ReplicaRole.PRIMARY)
            except (ActivationError, TimeoutError) as exc:
                log.warning("promoting replica %s failed: %s", replica.id, exc)

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
        activations = list(node.activations.items())
        node.activations.clear()
        await asyncio.gather(*(a.deactivate(self.settings.stop_grace) for _, a in activations))
        touched = []
        for _, activation in activations:
            for replica in activation.replicas:
                replica.status = ReplicaStatus.DROPPED
                touched.append(replica.partition)
        for partition in dict.fromkeys(touched):
            await self._failover(partition)
        self._bump()

    async def _failover(self, partition: Partition) -> None:
        live = partition.live_replicas()
        if partition.service.kind is ServiceKind.STATEFUL and not any(
            r.role is ReplicaRole.PRIMARY for r in live
        ):
            secondary = next((r for r in live if r.status is ReplicaStatus.READY), None)
            if secondary is not None:
                await self._promote(secondary)
        await self._fill_partition(partition)

    async def start_node(self, name: str) -> None:
        node = self.node(name)
        if node.up:
            return
        node.up = True
        for app in list(self.applications.values()):
            for service in list(app.services.values()):
                for partition in service.partitions:
                    await self._fill_partition(partition)
        self._bump()

    # -- housekeeping ---------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bump(self) -> None:
        """Wake everything waiting for a change of the runtime model."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def shutdown(self) -> None:
        """Stop every process of every node; returns when all are gone."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(
            *(
                a.deactivate(self.settings.stop_grace)
                for node in self.nodes.values()
                for a in node.activations.values()
            )
        )
        for node in self.nodes.values():
            node.activations.clear()


def _check_name(name: str, parent: str | None = None) -> None:
    if not name.startswith("fabric:/") or len(name) <= len("fabric:/"):
        raise ApiError(
            f"invalid name {name!r}: expected fabric:/...", code="FABRIC_E_INVALID_NAME_URI"
        )
    if parent is not None and not name.startswith(parent + "/"):
        raise ApiError(
            f"service name {name} must be under its application {parent}",
            code="FABRIC_E_INVALID_NAME_URI",
        )
