"""The local cluster: nodes, application types, applications, services and their replicas.

Everything runs on one asyncio event loop and this class is the only writer of the runtime model,
so a check and the insert that follows it (a name that must be unique, an activation that must
exist once) happen with no ``await`` between them: that is what makes them atomic. Each decision
is written through to the store (``_persist``) in the same step, before any process is started
or stopped for it, so a killed agent restarts (``restore``) into exactly what it had promised.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fabrichost.agent._backoff import RestartPolicy
from fabrichost.agent._crash import crash_point
from fabrichost.agent._instances import InstanceManager
from fabrichost.agent._model import (
    MAX_PARTITIONS,
    Application,
    Partition,
    ReplicaStatus,
    Service,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.agent._persist import Persistence
from fabrichost.agent._ports import DEFAULT_RANGE, PortAllocator
from fabrichost.agent._provision import ProvisionedType, instantiate, provision_package
from fabrichost.agent._replicas import Node, ReplicaPlacement
from fabrichost.agent._requests import IfExists, Outcome, RequestLedger, description_digest
from fabrichost.errors import (
    ActivationError,
    ApiError,
    ConflictError,
    FabricHostError,
    NotFoundError,
)
from fabrichost.protocol import ReplicaFaulted, ReplicaNotification, RunCompleted, RunStatus

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping
    from pathlib import Path

    from fabrichost.agent._activation import ServicePackageActivation
    from fabrichost.agent._spec import ServicePackageSpec, ServiceTypeSpec

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 1024  # an application or service name, "fabric:/" included


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Tunables of a local cluster, with short dev defaults (SF's production values in comments)."""

    node_count: int = 1
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    shared_deactivation_grace: float = 10.0  # SF DeactivationGraceInterval: 60 s
    exclusive_deactivation_grace: float = 0.5  # SF ExclusiveModeDeactivationGraceInterval: 1 s
    stop_grace: float = 5.0
    port_range: tuple[int, int] = DEFAULT_RANGE


class Cluster(ReplicaPlacement):
    """A local cluster of ``settings.node_count`` logical nodes, rooted in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path,
        settings: AgentSettings | None = None,
        *,
        persist: Persistence | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.settings = settings or AgentSettings()
        self.nodes = {f"_Node_{i}": Node(f"_Node_{i}") for i in range(self.settings.node_count)}
        self.application_types: dict[tuple[str, str], ProvisionedType] = {}
        self.applications: dict[str, Application] = {}
        self.packages: dict[str, dict[str, ServicePackageSpec]] = {}  # app -> package -> spec
        self.persist = persist or Persistence.open(state_dir)
        self._ports = PortAllocator(*self.settings.port_range)
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._repairs = {}  # partition id -> its repair task (see _replicas.PartitionRepair)
        self.closing = False  # set by shutdown(): nothing new is activated, nothing fails over
        # Provisions and unprovisions take turns: an unprovision deletes image store folders
        # that a concurrent provision of the same content might be about to register.
        self._image_store_lock = asyncio.Lock()
        self.ledger = RequestLedger(
            on_claimed=self.persist.request_claimed,
            on_failed=self.persist.request_failed,
            find_recorded=self.persist.request_found,
            on_completed=self.persist.request_completed,
        )
        self.instances = InstanceManager(self, self.ledger, self.persist)

    # -- application types ----------------------------------------------------------------------

    async def provision(
        self, package_dir: Path, *, reuse_existing: bool = False
    ) -> ProvisionedType:
        """Validate a package, copy it into the image store and register its type and version.

        With ``reuse_existing``, provisioning the very same content again returns the type
        already registered (a second deploy of one package). The same type and version with
        different content is always refused: running stale code silently would surprise.
        """
        async with self._image_store_lock:
            return await self._provision_locked(package_dir, reuse_existing=reuse_existing)

    async def _provision_locked(
        self, package_dir: Path, *, reuse_existing: bool
    ) -> ProvisionedType:
        ptype = await asyncio.to_thread(
            provision_package, package_dir, self.state_dir / "ImageStore"
        )
        key = (ptype.name, ptype.version)
        existing = self.application_types.get(key)
        if existing is not None:
            if reuse_existing and existing.digest == ptype.digest:
                return existing
            differs = "" if existing.digest == ptype.digest else " with different content"
            await self._discard_image(ptype)  # the refused copy stays out of the image store
            raise ConflictError(
                f"application type {ptype.name} version {ptype.version} is already "
                f"provisioned{differs}; bump ApplicationTypeVersion or unprovision it first",
                code="FABRIC_E_APPLICATION_TYPE_ALREADY_EXISTS",
            )
        with self.persist.store.transaction():  # the store first: memory follows a commit
            # A row whose image store copy was lost is skipped at restore but still there.
            self.persist.application_type_removed(*key)
            self.persist.application_type_added(ptype)
        self.application_types[key] = ptype
        return ptype

    async def _discard_image(self, ptype: ProvisionedType) -> None:
        """Delete a type's image store folder unless a registered type uses it."""
        root = ptype.package.root
        if any(t.package.root == root for t in self.application_types.values()):
            return
        await asyncio.to_thread(shutil.rmtree, root, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.parent.rmdir()  # the type's folder, once its last version is gone

    async def unprovision(self, name: str, version: str) -> None:
        async with self._image_store_lock:
            self._unregister_type(name, version)
            await self._discard_image(self.application_types.pop((name, version)))

    def _unregister_type(self, name: str, version: str) -> None:
        """Every check, then the store; memory is updated by the caller."""
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
        self.persist.application_type_removed(name, version)

    # -- applications ---------------------------------------------------------------------------

    async def create_application(
        self, name: str, type_name: str, type_version: str, parameters: Mapping[str, str]
    ) -> Application:
        """Create an application and its DefaultServices; a bad parameter changes nothing."""
        _check_name(name)
        self._check_name_free(name)
        ptype = self.application_types.get((type_name, type_version))
        if ptype is None:
            raise NotFoundError(
                f"application type {type_name} version {type_version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        resolved = instantiate(ptype, parameters)
        packages = dict(resolved.packages)
        sequence = self.persist.store.next_application_sequence()
        app = Application(
            name, type_name, type_version, f"{type_name}_App{sequence}", dict(resolved.parameters)
        )
        # Every DefaultService is checked before anything changes: a bad one changes nothing.
        services = [
            self._prepare_service(app, _absolute(name, d), packages)
            for d in resolved.default_services
        ]
        self.applications[name] = app  # claimed before any await: concurrent creates conflict
        self.packages[name] = packages
        try:
            for service in services:
                app.services[service.name] = service
            planned = [r for s in services for p in s.partitions for r in self._plan_partition(p)]
            with self.persist.store.transaction():  # the application whole, or nothing
                self.persist.application_added(app)
                for service in services:
                    assert service.description is not None
                    self.persist.service_added(service, service.description)
                for replica in planned:
                    self.persist.replica_saved(replica)
        except BaseException:
            # Not committed: the claim goes too, so the name is free and nothing is half-made.
            if self.applications.get(name) is app:
                del self.applications[name]
                self.packages.pop(name, None)
            raise
        crash_point("application-committed")
        try:
            await self._activate_replicas(planned)
        except FabricHostError:
            if self.applications.get(name) is app:
                await self.delete_application(name)  # it could not start: it is not there
            raise
        if self.applications.get(name) is not app:
            raise ApiError(
                f"application {name} was deleted while it was being created",
                code="FABRIC_E_OPERATION_CANCELED",
                status=409,
            )
        self._bump()
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

    async def delete_application_locked(self, name: str) -> None:
        """Delete, after any create of the same name in progress has finished."""
        async with self.ledger.name_lock(f"application:{name}"):
            await self.delete_application(name)

    async def delete_service_locked(self, name: str) -> None:
        """Delete, after any create of the same name in progress has finished."""
        async with self.ledger.name_lock(f"service:{name}"):
            await self.delete_service(name)

    async def delete_application(self, name: str) -> None:
        app = self.application(name)
        app.status = "Deleting"  # from now on no service is created in it
        # Its singleton instances end with it: marked Terminated first, so a run that
        # completes meanwhile is fenced off and their services may be deleted below.
        self.instances.application_deleted(name)
        self.persist.application_removed(name)  # the decision first; its services go with it
        # The store no longer has it: whatever fails below, the rest is deleted all the same
        # and the application leaves the model, so no half-deleted application stays behind
        # (and no singleton ID of it stays taken). Failures are logged once it is gone.
        failures: list[BaseException] = []
        for service_name in list(app.services):
            try:
                await self.delete_service(service_name, instance_owner=True)
            except NotFoundError:
                pass  # deleted on its own meanwhile (its name lock is not ours): gone already
            except Exception as exc:
                failures.append(exc)
        results = await asyncio.gather(
            *(
                self._deactivate(node, act, grace=self.settings.stop_grace)
                for node in self.nodes.values()
                for key, act in list(node.activations.items())
                if key[0] == name
            ),
            return_exceptions=True,
        )
        failures.extend(r for r in results if isinstance(r, Exception))
        self.applications.pop(name, None)
        self.packages.pop(name, None)
        self._bump()
        for failure in failures:
            log.error("deleting application %s: %s", name, failure, exc_info=failure)

    def application(self, name: str) -> Application:
        try:
            return self.applications[name]
        except KeyError:
            raise NotFoundError(
                f"application {name} does not exist", code="FABRIC_E_APPLICATION_NOT_FOUND"
            ) from None

    # -- services -------------------------------------------------------------------------------

    def _new_service(
        self,
        app: Application,
        desc: ServiceDescription,
        packages: Mapping[str, ServicePackageSpec],
    ) -> Service:
        """Check a description against the application's packages; build the Service."""
        package, type_spec = _package_of_type(packages, app.name, desc.type_name)
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
                    f"{cp.unsupported}; fabrichost runs processes (ExeHost) only"
                )
        return Service(
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
            description=desc,
            service_manifest_version=package.version,
        )

    def _prepare_service(
        self,
        app: Application,
        desc: ServiceDescription,
        packages: Mapping[str, ServicePackageSpec],
    ) -> Service:
        """Every check of a new service, and the Service with its partitions; no state changes."""
        _check_name(desc.name, parent=app.name)
        count = len(desc.partition_names) or desc.partition_count
        if count > MAX_PARTITIONS:
            raise ApiError(
                f"service {desc.name} asks for {count} partitions; at most "
                f"{MAX_PARTITIONS} are accepted"
            )
        desc.validate()
        self._check_name_free(desc.name)
        service = self._new_service(app, desc, packages)
        for pname, low, high in desc.partition_layout():
            service.partitions.append(Partition(service, desc.partition_scheme, pname, low, high))
        return service

    async def create_service(self, app_name: str, desc: ServiceDescription) -> Service:
        app = self.application(app_name)
        if app.status == "Deleting":
            raise NotFoundError(
                f"application {app_name} is being deleted", code="FABRIC_E_APPLICATION_NOT_FOUND"
            )
        service = self._prepare_service(app, desc, self.packages[app_name])
        app.services[desc.name] = service  # claimed before any await
        try:
            planned = [r for p in service.partitions for r in self._plan_partition(p)]
            with self.persist.store.transaction():  # the intent, committed before any process
                self.persist.service_added(service, desc)
                for replica in planned:
                    self.persist.replica_saved(replica)
        except BaseException:
            # Not committed: the claim goes too, so the name is free and nothing is half-made.
            if app.services.get(desc.name) is service:
                del app.services[desc.name]
            raise
        crash_point("service-committed")
        try:
            await self._activate_replicas(planned)
        except FabricHostError:
            if self._find_service(desc.name) is service:
                await self.delete_service(desc.name, instance_owner=True)
            raise
        crash_point("service-activated")
        if self._find_service(desc.name) is not service:
            raise ApiError(
                f"service {desc.name} was deleted while it was being created",
                code="FABRIC_E_OPERATION_CANCELED",
                status=409,
            )
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

    async def delete_service(self, name: str, *, instance_owner: bool = False) -> None:
        """Delete a service; returns once its replicas are closed and exclusive processes gone.

        A singleton instance's service is deleted by terminating the instance
        (``instance_owner`` is how the instance manager says it is the one asking).
        """
        service = self.service(name)
        if not instance_owner:
            self.instances.check_service_name(name)
        service.application.services.pop(name, None)
        self.persist.service_removed(name)  # the decision first: a crash now cannot undo it
        await asyncio.gather(*(self._remove_replica(r) for r in service.replicas()))
        self._bump()

    def service(self, name: str) -> Service:
        service = self._find_service(name)
        if service is None:
            raise NotFoundError(
                f"service {name} does not exist", code="FABRIC_E_SERVICE_DOES_NOT_EXIST"
            )
        return service

    def _check_name_free(self, name: str) -> None:
        """Raise a conflict naming whatever has ``name``: applications and services share names.

        Their entity ids (``App1~Sub``) must not collide either, and they do not while every name
        belongs to one entity (``~`` is refused in names).
        """
        app = self.applications.get(name)
        if app is not None:
            raise ConflictError(
                f"application {name} already exists (type {app.type_name} {app.type_version})",
                code="FABRIC_E_APPLICATION_ALREADY_EXISTS",
            )
        service = self._find_service(name)
        if service is not None:
            raise ConflictError(
                f"service {name} already exists (type {service.type_name}, in application "
                f"{service.application.name})",
                code="FABRIC_E_SERVICE_ALREADY_EXISTS",
            )

    def _find_service(self, name: str) -> Service | None:
        for app in self.applications.values():
            if name in app.services:
                return app.services[name]
        return None

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

    # -- events and housekeeping ----------------------------------------------------------------

    def _host_notification(self, activation: ServicePackageActivation, message: object) -> None:
        if not isinstance(message, ReplicaNotification):
            return
        replica = next((r for r in activation.replicas if r.id == message.replica_id), None)
        if replica is None:
            return
        if isinstance(message, RunCompleted):
            self.instances.run_completed(
                replica, message.status is RunStatus.COMPLETED, message.output, message.error
            )
        elif isinstance(message, ReplicaFaulted):
            activation.replica_faulted(replica, message.reason)
        else:
            log.debug("replica %s reports %r", replica.id, message)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _bump(self) -> None:
        """Wake everything waiting for a change of the runtime model."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def restore(self) -> None:
        """Load what an earlier run created, fence its processes, and start everything again."""
        from fabrichost.agent._restore import restore

        await restore(self)

    async def shutdown(self) -> None:
        """Stop every process of every node; returns when all are gone."""
        self.closing = True  # from now on nothing is activated and nothing fails over
        self._bump()  # whoever waits for a change (an event for a Pending instance) hears it
        for task in list(self._tasks):
            task.cancel()
        while any(node.activations for node in self.nodes.values()):
            # Activations made while the previous round stopped are stopped in the next one.
            batch = [a for node in self.nodes.values() for a in node.activations.values()]
            for node in self.nodes.values():
                node.activations.clear()
            await asyncio.gather(*(a.deactivate(self.settings.stop_grace) for a in batch))
        self.persist.close()


def _check_name(name: str, parent: str | None = None) -> None:
    """A name is ``fabric:/`` and non-empty segments; a service's is under its application's."""
    what = "application" if parent is None else "service"

    def invalid(reason: str) -> ApiError:
        shown = name if len(name) <= 80 else name[:77] + "..."
        return ApiError(
            f"invalid {what} name {shown!r}: {reason}", code="FABRIC_E_INVALID_NAME_URI"
        )

    if "~" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise invalid(
            "'~' and control characters cannot be part of a name ('~' stands for '/' in entity ids)"
        )
    if any(c.isspace() for c in name):
        raise invalid("whitespace cannot be part of a name")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"longer than {MAX_NAME_LENGTH} characters")
    if not name.startswith("fabric:/") or len(name) <= len("fabric:/"):
        raise invalid("expected fabric:/<name>")
    segments = name.removeprefix("fabric:/").split("/")
    if any(not segment for segment in segments):
        raise invalid("a name cannot have an empty segment ('//' or a trailing '/')")
    if segments[0].startswith("fabric:"):
        raise invalid("'fabric:' appears twice")
    if parent is not None and not name.startswith(parent + "/"):
        if name == parent:
            raise invalid(f"it is the application's own name; use {parent}/<ServiceName>")
        raise invalid(f"a service's name must be under its application, {parent}/...")


def _absolute(app_name: str, desc: ServiceDescription) -> ServiceDescription:
    """DefaultServices names are relative to their application (Name="ServiceA")."""
    if desc.name.startswith("fabric:/"):
        return desc
    return dataclasses.replace(desc, name=f"{app_name}/{desc.name}")


def _package_of_type(
    packages: Mapping[str, ServicePackageSpec], app_name: str, type_name: str
) -> tuple[ServicePackageSpec, ServiceTypeSpec]:
    for package in packages.values():
        type_spec = package.service_type(type_name)
        if type_spec is not None:
            return package, type_spec
    raise NotFoundError(
        f"service type {type_name} is not declared by application {app_name}",
        code="FABRIC_E_SERVICE_TYPE_NOT_FOUND",
    )
