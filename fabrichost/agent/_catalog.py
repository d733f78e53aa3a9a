"""The catalog: applications and services, created and deleted, and the names they claim.

Theory of operation. A name check and the claim that follows it happen with no ``await`` between
them, so of any number of concurrent creates of one name exactly one wins. Each create is
decided whole before anything starts: every check first (a bad DefaultService changes nothing),
then the entity and its planned replicas in one transaction, then the processes. A create whose
processes cannot start undoes itself. Deletes commit first and stop processes after, so a killed
agent never brings back what a client was told is gone.

Create policies and request ids go through the :class:`RequestLedger`. The singleton instances
are a client of the catalog: a service created for one is owned by it (``Service.instance_id``)
and deleted by terminating the instance; the catalog tells them when an application is being
deleted (``on_application_deleting``), before its services go.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Final

from fabrichost.agent._crash import crash_point
from fabrichost.agent._model import Application, Partition, ReplicaStatus, new_service
from fabrichost.agent._naming import absolute, check_name
from fabrichost.agent._provision import instantiate
from fabrichost.agent._requests import description_digest
from fabrichost.agent._summary import summarize_reasons
from fabrichost.errors import (
    ActivationError,
    ApiError,
    ConflictError,
    FabricHostError,
    NotFoundError,
)
from fabrichost.wire import MAX_PARTITIONS, IfExists

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fabrichost.agent._model import Replica, Service, ServiceDescription
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._requests import Outcome, RequestLedger
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._spec import ServicePackageSpec
    from fabrichost.agent._state import ClusterState

log = logging.getLogger(__name__)
# Seconds between a wait's checks when nothing it hears of has changed (see wait_service_ready).
_RECHECK: Final = 1.0


class Catalog:
    """Creates and deletes the applications and services of one cluster."""

    def __init__(
        self,
        state: ClusterState,
        persist: Persistence,
        placement: Placement,
        ledger: RequestLedger,
        settings: AgentSettings,
        *,
        on_application_deleting: Callable[[str], None],
    ) -> None:
        self._state = state
        self._persist = persist
        self._placement = placement
        self._ledger = ledger
        self._settings = settings
        self._on_application_deleting = on_application_deleting

    # -- applications ---------------------------------------------------------------------------

    async def create_application(
        self, name: str, type_name: str, type_version: str, parameters: Mapping[str, str]
    ) -> Application:
        """Create an application and its DefaultServices; a bad parameter changes nothing."""
        state = self._state
        check_name(name)
        self._check_name_free(name)
        ptype = state.application_types.get((type_name, type_version))
        if ptype is None:
            raise NotFoundError(
                f"application type {type_name} version {type_version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        resolved = instantiate(ptype, parameters)
        packages = dict(resolved.packages)
        sequence = self._persist.next_application_sequence()
        app = Application(
            name, type_name, type_version, f"{type_name}_App{sequence}", dict(resolved.parameters)
        )
        # Every DefaultService is checked before anything changes: a bad one changes nothing.
        services = [
            self._prepare_service(app, absolute(name, d), packages)
            for d in resolved.default_services
        ]
        state.applications[name] = app  # claimed before any await: concurrent creates conflict
        state.packages[name] = packages
        try:
            for service in services:
                app.services[service.name] = service
            planned = self._placement.plan_partitions(p for s in services for p in s.partitions)
            with self._persist.transaction():  # the application whole, or nothing
                self._persist.application_added(app)
                for service in services:
                    assert service.description is not None
                    self._persist.service_added(service, service.description)
                for replica in planned:
                    self._persist.replica_saved(replica)
        except BaseException:
            # Not committed: the claim goes too, so the name is free and nothing is half-made.
            if state.applications.get(name) is app:
                del state.applications[name]
                state.packages.pop(name, None)
            raise
        crash_point("application-committed")
        try:
            await self._placement.activate_replicas(planned)
        except FabricHostError:
            if state.applications.get(name) is app:
                await self.delete_application(name)  # it could not start: it is not there
            raise
        if state.applications.get(name) is not app:
            raise ConflictError(
                f"application {name} was deleted while it was being created",
                code="FABRIC_E_OPERATION_CANCELED",
            )
        state.changes.notify()
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
        return await self._ledger.create(
            kind="application",
            name=f"application:{name}",
            digest=description_digest([type_name, type_version, dict(parameters)]),
            request_id=request_id,
            if_exists=if_exists,
            existing=lambda: self._state.applications.get(name),
            create=lambda: self.create_application(name, type_name, type_version, parameters),
            delete=lambda: self.delete_application(name),
            conflict_message=lambda app: (
                f"application {name} already exists (type {app.type_name} {app.type_version})"
            ),
            conflict_code="FABRIC_E_APPLICATION_ALREADY_EXISTS",
        )

    async def delete_application_locked(self, name: str) -> None:
        """Delete, after any create of the same name in progress has finished."""
        async with self._ledger.name_lock(f"application:{name}"):
            await self.delete_application(name)

    async def delete_application(self, name: str) -> None:
        """Delete an application, its services and its processes on every node."""
        state = self._state
        app = state.application(name)
        app.status = "Deleting"  # from now on no service is created in it
        # Its singleton instances end with it: marked Terminated first, so a run that
        # completes meanwhile is fenced off and their services may be deleted below.
        self._on_application_deleting(name)
        self._persist.application_removed(name)  # the decision first; its services go with it
        # The store no longer has it: whatever fails below, the rest is deleted all the same
        # and the application leaves the model, so no half-deleted application stays behind
        # (and no singleton ID of it stays taken). Failures are logged once it is gone.
        # Its services are deleted side by side: each waits for its own processes to stop, so
        # one after another would make a delete linear in the slowest stops added together.
        deleted = await asyncio.gather(
            *(self.delete_service(s, instance_owner=True) for s in list(app.services)),
            return_exceptions=True,
        )
        # A NotFoundError: deleted on its own meanwhile (its name lock is not ours): gone already.
        failures: list[BaseException] = [
            r for r in deleted if isinstance(r, Exception) and not isinstance(r, NotFoundError)
        ]
        results = await asyncio.gather(
            *(
                self._placement.deactivate(node, act, grace=self._settings.stop_grace)
                for node in state.nodes.values()
                for key, act in list(node.activations.items())
                if key[0] == name
            ),
            return_exceptions=True,
        )
        failures.extend(r for r in results if isinstance(r, Exception))
        state.applications.pop(name, None)
        state.packages.pop(name, None)
        state.changes.notify()
        for failure in failures:
            log.error("deleting application %s: %s", name, failure, exc_info=failure)

    # -- services -------------------------------------------------------------------------------

    def _prepare_service(
        self,
        app: Application,
        desc: ServiceDescription,
        packages: Mapping[str, ServicePackageSpec],
    ) -> Service:
        """Every check of a new service, and the Service with its partitions; no state changes."""
        check_name(desc.name, parent=app.name)
        count = len(desc.partition_names) or desc.partition_count
        if count > MAX_PARTITIONS:
            raise ApiError(
                f"service {desc.name} asks for {count} partitions; at most "
                f"{MAX_PARTITIONS} are accepted"
            )
        desc.validate()
        self._check_name_free(desc.name)
        service = new_service(app, desc, packages)
        for pname, low, high in desc.partition_layout():
            service.partitions.append(Partition(service, desc.partition_scheme, pname, low, high))
        return service

    async def create_service(
        self, app_name: str, desc: ServiceDescription, *, instance_id: str | None = None
    ) -> Service:
        """Create a service in ``app_name``; returns once its replicas are in activations.

        ``instance_id`` names the singleton instance the service runs (its owner).
        """
        state = self._state
        app = state.application(app_name)
        if app.status == "Deleting":
            raise NotFoundError(
                f"application {app_name} is being deleted", code="FABRIC_E_APPLICATION_NOT_FOUND"
            )
        service = self._prepare_service(app, desc, state.packages[app_name])
        service.instance_id = instance_id
        app.services[desc.name] = service  # claimed before any await
        try:
            planned = self._placement.plan_partitions(service.partitions)
            with self._persist.transaction():  # the intent, committed before any process
                self._persist.service_added(service, desc)
                for replica in planned:
                    self._persist.replica_saved(replica)
        except BaseException:
            # Not committed: the claim goes too, so the name is free and nothing is half-made.
            if app.services.get(desc.name) is service:
                del app.services[desc.name]
            raise
        crash_point("service-committed")
        try:
            await self._placement.activate_replicas(planned)
        except FabricHostError:
            if state.find_service(desc.name) is service:
                await self.delete_service(desc.name, instance_owner=True)
            raise
        crash_point("service-activated")
        if state.find_service(desc.name) is not service:
            raise ConflictError(
                f"service {desc.name} was deleted while it was being created",
                code="FABRIC_E_OPERATION_CANCELED",
            )
        state.changes.notify()
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
        return await self._ledger.create(
            kind="service",
            name=f"service:{desc.name}",
            digest=description_digest([app_name, dataclasses.asdict(desc)]),
            request_id=request_id,
            if_exists=if_exists,
            existing=lambda: self._state.find_service(desc.name),
            create=lambda: self.create_service(app_name, desc),
            delete=lambda: self.delete_service(desc.name),
            conflict_message=lambda svc: (
                f"service {desc.name} already exists (type {svc.type_name})"
            ),
            conflict_code="FABRIC_E_SERVICE_ALREADY_EXISTS",
        )

    async def delete_service_locked(self, name: str) -> None:
        """Delete, after any create of the same name in progress has finished."""
        async with self._ledger.name_lock(f"service:{name}"):
            await self.delete_service(name)

    async def delete_service(self, name: str, *, instance_owner: bool = False) -> None:
        """Delete a service; returns once its replicas are closed and exclusive processes gone.

        A singleton instance's service is deleted by terminating the instance
        (``instance_owner`` is how its owner, or its application's delete, says it asks).
        """
        service = self._state.service(name)
        if service.instance_id is not None and not instance_owner:
            raise ActivationError(
                f"service {name} is singleton instance '{service.instance_id}'; "
                "terminate the instance"
            )
        service.application.services.pop(name, None)
        self._persist.service_removed(name)  # the decision first: a crash now cannot undo it
        await asyncio.gather(*(self._placement.remove_replica(r) for r in service.replicas()))
        self._state.changes.notify()

    def forget_service(self, service: Service) -> None:
        """Take out a service that has no process (at restore, before anything starts)."""
        service.application.services.pop(service.name, None)
        self._persist.service_removed(service.name)

    def _check_name_free(self, name: str) -> None:
        """Raise a conflict naming whatever has ``name``: applications and services share names.

        Their entity ids (``App1~Sub``) must not collide either, and they do not while every name
        belongs to one entity (``~`` is refused in names).
        """
        app = self._state.applications.get(name)
        if app is not None:
            raise ConflictError(
                f"application {name} already exists (type {app.type_name} {app.type_version})",
                code="FABRIC_E_APPLICATION_ALREADY_EXISTS",
            )
        service = self._state.find_service(name)
        if service is not None:
            raise ConflictError(
                f"service {name} already exists (type {service.type_name}, in application "
                f"{service.application.name})",
                code="FABRIC_E_SERVICE_ALREADY_EXISTS",
            )

    async def wait_service_ready(self, name: str, within: float) -> None:
        """Return once every placed replica is Ready; raise with the reason when ``within`` ends,
        or as soon as one has failed (its service's open raised, its code package keeps failing).

        A guest executable's replica counts once its process has run ``guest_settle`` seconds.

        Raises:
            ActivationError: a replica failed, or not every replica was Ready within ``within``
                seconds; it says why.
        """
        state = self._state
        pending: list[Replica] | None = None  # None: look at every replica of the service
        try:
            async with asyncio.timeout(within):
                while True:
                    changed = state.changes.next()
                    # Strategy: only the replicas still pending are looked at again, so a
                    # wait for N replicas costs N over its whole life, not N per change; the
                    # whole service is looked at once more before the wait ends.
                    pending, settling = self._pending(name, pending)
                    failures = self._failures(pending)
                    if failures:
                        # One message however many replicas failed: each reason once, counted.
                        raise ActivationError(
                            f"service {name} failed: {summarize_reasons(failures)}"
                        )
                    if not pending:
                        pending, settling = self._pending(name, None)
                        if not pending:
                            return
                        continue
                    # Strategy: a code package that cannot even start reports through no
                    # callback, and a guest settles with time, not with an event: re-check.
                    recheck = min(_RECHECK, settling) if settling > 0 else _RECHECK
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(recheck):
                            await changed.wait()
        except TimeoutError:
            left = pending if pending is not None else self._pending(name, None)[0]
            reasons = [self._in_user_terms(r.service, state.replica_reason(r)) for r in left]
            raise ActivationError(
                f"service {name} is not ready after {within:g} s: {summarize_reasons(reasons)}"
            ) from None

    def _failures(self, pending: list[Replica]) -> list[str]:
        """Why each failed replica of ``pending`` failed (see ``replica_failure``)."""
        state = self._state
        failures: list[str] = []
        # A code package that keeps failing fails every replica of its activation: asked once.
        by_activation: dict[tuple[str, str], str | None] = {}
        for replica in pending:
            if replica.failure:
                failure: str | None = replica.failure
            else:
                key = (replica.node_name, replica.activation_id)
                if key not in by_activation:
                    by_activation[key] = state.replica_failure(replica)
                failure = by_activation[key]
            if failure:
                failures.append(self._in_user_terms(replica.service, failure))
        return failures

    def _in_user_terms(self, service: Service, reason: str) -> str:
        """``reason`` naming the user's package rather than its image store copy: a program
        that cannot start is fixed in the package it was deployed from."""
        app = service.application
        ptype = self._state.application_types.get((app.type_name, app.type_version))
        return reason if ptype is None else ptype.in_user_terms(reason)

    def _pending(self, name: str, among: list[Replica] | None) -> tuple[list[Replica], float]:
        """The replicas of service ``name`` (of ``among`` those, if given, still placed) a
        wait still waits for (Ready guests whose process has not run long enough among them),
        and the seconds until those guests would have."""
        state = self._state
        service = state.service(name)
        settle = self._settings.guest_settle
        package = state.packages.get(service.application.name, {}).get(
            service.service_manifest_name
        )
        guest = package is None or package.is_guest  # only a guest's replicas settle
        pending: list[Replica] = []
        settling = 0.0
        for replica in service.replicas() if among is None else among:
            if replica.dropped:
                continue
            if replica.status is not ReplicaStatus.READY:
                pending.append(replica)
            elif guest and (left := state.unsettled(replica, settle)) > 0:
                pending.append(replica)
                settling = max(settling, left)
        return pending, settling
