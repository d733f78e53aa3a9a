"""Singleton instances with the shape of Durable Functions' orchestration instances.

Theory of operation. An instance is a stateless service with one partition and one instance,
``<application>/<instance id>``, of the service type named by the function, activated
ExclusiveProcess so that its process is its alone. Its input reaches the service as the
replica's init data; when the service's ``run`` returns or raises, the host reports
``RunCompleted`` and the instance becomes Completed (with the output) or Failed (with the error),
and its service is deleted. Terminating deletes the service and returns once its process is gone.

An instance's status turns final (Completed, Failed, Terminated) the moment that is decided, as in
Durable Functions, but its process may need seconds more to close. Until it is gone the ID stays
taken: ``Instance.released`` is set only once no process of that incarnation can run, and a start
of the ID (whatever its policy), a ``replace``, another terminate and a purge wait for it. So two
lifetimes of one ID never overlap, however a terminate, an application delete or a run that
completed races with the next start.

The manager is a client of the catalog: an instance's service is created and deleted through it,
owned by the instance (``Service.instance_id``). Placement tells it about replica changes and
run results through the cluster's callbacks (:meth:`InstanceManager.replica_changed`,
:meth:`InstanceManager.run_completed`); the catalog tells it when an application is being deleted.

Every start of an ID gets a generation from one global sequence that never repeats. A report
from a replica carries the generation of the instance it was opened for; a report whose
generation is not the instance's current one is stale and ignored, so a late message from an old
incarnation can never change a newer one (fencing). Names are claimed through the
:class:`~fabrichost.agent._requests.RequestLedger`, so exactly one of any number of concurrent
starts of one ID wins, and a retried start with the same request id gets the original answer.
A finished (Completed, Failed, Terminated) ID may be started again, as in Durable Functions.

External events are delivered by :mod:`_instance_events`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fabrichost.agent._crash import crash_point
from fabrichost.agent._model import (
    ActivationMode,
    Instance,
    InstanceStatus,
    ReplicaStatus,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.agent._requests import description_digest
from fabrichost.agent._service_removal import ServiceRemoval
from fabrichost.errors import ApiError, ConflictError, FabricHostError, NotFoundError
from fabrichost.wire import (
    INSTANCE_ID_RULE,
    IfExists,
    check_instance_input,
    is_valid_instance_id,
)

if TYPE_CHECKING:
    from fabrichost.agent._catalog import Catalog
    from fabrichost.agent._model import Replica
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._requests import Outcome, RequestLedger
    from fabrichost.agent._service_removal import Watch
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._state import ClusterState
    from fabrichost.agent._tasks import BackgroundTasks
    from fabrichost.store import InstanceRow

log = logging.getLogger(__name__)


def check_instance_id(instance_id: str) -> str:
    if not is_valid_instance_id(instance_id):
        raise ApiError(f"instance id {instance_id!r} is not valid: {INSTANCE_ID_RULE}")
    return instance_id


class InstanceManager:
    """The singleton instances of one cluster."""

    def __init__(
        self,
        state: ClusterState,
        persist: Persistence,
        catalog: Catalog,
        placement: Placement,
        ledger: RequestLedger,
        tasks: BackgroundTasks,
        settings: AgentSettings,
    ) -> None:
        self._state = state
        self._persist = persist
        self._catalog = catalog
        self._ledger = ledger
        self._tasks = tasks
        self._removal = ServiceRemoval(state, catalog, placement, settings)
        self.instances: dict[str, Instance] = {}
        # Reports are matched by service (an instance's replica may be replaced by failover)
        # and fenced by generation: service name -> (instance, generation it was created for).
        self._by_service: dict[str, tuple[Instance, int]] = {}

    def resolve_function(self, function_name: str) -> str:
        """The application whose packages declare the service type ``function_name``."""
        apps = sorted(
            app
            for app, packages in self._state.packages.items()
            if any(p.service_type(function_name) for p in packages.values())
        )
        if not apps:
            raise NotFoundError(
                f"no application declares the function (service type) {function_name!r}",
                code="FABRIC_E_SERVICE_TYPE_NOT_FOUND",
            )
        if len(apps) > 1:
            raise ApiError(
                f"function {function_name!r} is ambiguous: it is declared by {', '.join(apps)}"
            )
        return apps[0]

    def get(self, instance_id: str) -> Instance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise NotFoundError(
                f"no instance with ID '{instance_id}'", code="FABRIC_E_DOES_NOT_EXIST"
            )
        return instance

    def is_current(self, instance: Instance) -> bool:
        """Whether ``instance``'s service is its own current incarnation's (not fenced off)."""
        entry = self._by_service.get(instance.service_name)
        return entry is not None and entry[0] is instance and entry[1] == instance.generation

    async def start(
        self,
        function_name: str,
        instance_id: str,
        input_json: str,
        *,
        if_exists: IfExists = IfExists.FAIL,
        request_id: str | None = None,
    ) -> Outcome[Instance]:
        check_instance_id(instance_id)
        # An input its process cannot be given would leave the instance Pending for ever.
        check_instance_input(input_json)
        application = self.resolve_function(function_name)

        def running() -> Instance | None:
            current = self.instances.get(instance_id)
            return current if current is not None and current.status.active else None

        async def create() -> Instance:
            # Under the ID's name lock: a finished incarnation still closing is waited for, and
            # no other start can take the ID meanwhile.
            await self._released(instance_id)
            return await self._create(
                function_name, instance_id, application, input_json, request_id
            )

        async def replace() -> None:
            await self.terminate(instance_id)

        return await self._ledger.create(
            kind="instance",
            name=f"instance:{instance_id}",
            digest=description_digest([function_name, input_json]),
            request_id=request_id,
            if_exists=if_exists,
            existing=running,
            create=create,
            delete=replace,
            conflict_message=lambda _: f"An instance with ID '{instance_id}' already exists.",
            lookup=lambda: self.instances.get(instance_id),
            conflict_code="FABRIC_E_SERVICE_ALREADY_EXISTS",
        )

    async def _create(
        self,
        function_name: str,
        instance_id: str,
        application: str,
        input_json: str,
        request_id: str | None,
    ) -> Instance:
        service_name = f"{application}/{instance_id}"
        instance = Instance(
            instance_id,
            function_name,
            application,
            service_name,
            input_json,
            self._persist.next_generation(),  # drawn outside any transaction
            request_id=request_id,
        )
        previous = self.instances.get(instance_id)
        assert previous is None or previous.released.is_set()
        self.instances[instance_id] = instance  # claimed before any await
        crash_point("instance-claimed")
        with self._persist.transaction():  # a finished run of this ID is replaced
            if previous is not None:
                self._persist.instance_removed(instance_id)
            self._persist.instance_added(instance)
        crash_point("instance-committed")
        try:
            await self._launch(instance)
        except Exception:
            if instance.status is InstanceStatus.TERMINATED:
                return instance  # terminated while it was being launched: that is its answer
            self._undo_create(instance, previous)
            raise
        except BaseException:  # cancelled: a terminate that took over cleans up itself
            if instance.status is not InstanceStatus.TERMINATED:
                self._undo_create(instance, previous)
            raise
        return instance

    def _undo_create(self, instance: Instance, previous: Instance | None) -> None:
        """A start that failed changes nothing: the finished run it replaced comes back."""
        instance.released.set()  # the failed create removed what it had started
        leftover = self._state.find_service(instance.service_name)
        if leftover is not None and leftover.instance_id == instance.instance_id:
            # The create was cut short before it could remove its service (cancelled, or a
            # bug): with no instance behind it any more, a plain delete must be able to take it.
            leftover.instance_id = None
        if self.instances.get(instance.instance_id) is not instance:
            return
        with self._persist.transaction():
            self._persist.instance_removed(instance.instance_id)
            if previous is not None:
                self._persist.instance_added(previous)
        if previous is not None:
            self.instances[instance.instance_id] = previous
        else:
            del self.instances[instance.instance_id]

    async def _launch(self, instance: Instance) -> None:
        """Create the instance's service: its one replica, in a process of its own."""
        description = ServiceDescription(
            name=instance.service_name,
            type_name=instance.function_name,
            kind=ServiceKind.STATELESS,
            activation_mode=ActivationMode.EXCLUSIVE_PROCESS,
            instance_count=1,
            init_data=instance.input_json,
        )
        self._by_service[instance.service_name] = (instance, instance.generation)
        service = await self._catalog.create_service(
            instance.application, description, instance_id=instance.instance_id
        )
        for replica in service.replicas():
            self.replica_changed(replica)

    # -- events from the cluster ------------------------------------------------------------------

    def replica_changed(self, replica: Replica) -> None:
        entry = self._by_service.get(replica.service.name)
        if entry is None:
            return
        instance, generation = entry
        if (
            instance.generation == generation
            and instance.status is InstanceStatus.PENDING
            and replica.status is ReplicaStatus.READY
        ):
            self._set(instance, InstanceStatus.RUNNING)

    def run_completed(
        self, replica: Replica, completed: bool, output: object, error: str | None
    ) -> None:
        entry = self._by_service.get(replica.service.name)
        if entry is None:
            return
        instance, generation = entry
        if instance.generation != generation or not instance.status.active:
            return  # a stale incarnation, or one being terminated: fenced off
        if completed:
            instance.output_json = json.dumps(output)
            self._set(instance, InstanceStatus.COMPLETED)
        else:
            instance.error = error
            self._set(instance, InstanceStatus.FAILED)
        self._tasks.spawn(self._remove_service(instance))  # releases the ID once gone

    def _set(self, instance: Instance, status: InstanceStatus) -> None:
        instance.touch(status)
        if not self._persist.instance_updated(instance):
            log.warning(
                "instance %s generation %s is stale in the store",
                instance.instance_id,
                instance.generation,
            )
        if not status.active:
            instance.finished.set()  # once written: a waiter never sees an unrecorded end

    async def _remove_service(self, instance: Instance) -> None:
        """Delete a finished instance's service; release its ID once its process is gone."""
        try:
            await self._removal.remove(instance.service_name, f"instance {instance.instance_id}")
        finally:
            self._release(instance)

    def _release(self, instance: Instance) -> None:
        if self._by_service.get(instance.service_name, (None, 0))[0] is instance:
            del self._by_service[instance.service_name]
        instance.released.set()

    async def _released(self, instance_id: str) -> None:
        """Wait until no process of ``instance_id``'s current incarnation can be running."""
        current = self.instances.get(instance_id)
        if current is not None and not current.status.active:
            await current.released.wait()

    # -- operations -------------------------------------------------------------------------------

    async def terminate(self, instance_id: str) -> tuple[Instance, bool]:
        """Stop a running instance; returns it, and True if it was running.

        Returns once its process is gone, also when the instance had finished already (or was
        being terminated by someone else) but its process was still closing.
        """
        instance = self.get(instance_id)
        stopped = instance.status.active
        if stopped:
            self._set(instance, InstanceStatus.TERMINATED)  # first: late reports are fenced off
            # A task of its own: a caller that goes away does not cut the removal short.
            self._tasks.spawn(self._remove_service(instance))
        await instance.released.wait()
        return instance, stopped

    async def purge(self, instance_id: str) -> None:
        """Forget a finished instance; returns once its process is gone."""
        instance = self.get(instance_id)
        if instance.status.active:
            raise ConflictError(
                f"instance '{instance_id}' is {instance.status.value}; "
                "terminate it before purging it",
                code="FABRIC_E_INSTANCE_RUNNING",
            )
        await instance.released.wait()  # until then its ID is taken: it is not forgotten yet
        if self.instances.get(instance_id) is instance:
            del self.instances[instance_id]
            self._persist.instance_removed(instance_id)

    async def wait_finished(self, instance_id: str, within: float) -> Instance:
        instance = self.get(instance_id)
        try:
            async with asyncio.timeout(within):
                await instance.finished.wait()
        except TimeoutError:
            pass
        return instance

    def restore(self, rows: list[InstanceRow]) -> list[Instance]:
        """Put back the instances of an earlier run; active ones keep their generation.

        Returns the active instances whose service was never created (the agent died between
        committing the instance and creating its service): the caller re-drives them with
        :meth:`relaunch`, so a committed start is never lost.

        A finished instance whose service is still there (the agent died, or stopped, between
        committing the final status and deleting the service) has that service deleted here,
        before anything is activated: a finished run never runs again, and its ID is free. Runs
        before the earlier run's processes are fenced, so none of them is left running either.
        """
        unlaunched = []
        for row in rows:
            instance = Instance(
                row.instance_id,
                row.function_name,
                row.application,
                row.service_name,
                row.input_json,
                row.generation,
                row.status,
                row.output_json,
                row.error,
                row.request_id,
                datetime.fromtimestamp(row.created_at, UTC),
                datetime.fromtimestamp(row.updated_at, UTC),
            )
            self.instances[row.instance_id] = instance
            app = self._state.applications.get(row.application)
            service = app.services.get(row.service_name) if app is not None else None
            if not instance.status.active:
                instance.finished.set()
                instance.released.set()  # restore runs before anything is started
                if app is not None and service is not None:
                    log.info(
                        "instance %s is %s: its service is deleted",
                        row.instance_id,
                        instance.status.value,
                    )
                    self._catalog.forget_service(service)
            elif service is not None:
                service.instance_id = instance.instance_id
                self._by_service[service.name] = (instance, instance.generation)
            elif app is not None:
                unlaunched.append(instance)
            else:  # its application is gone: it cannot run
                self._set(instance, InstanceStatus.TERMINATED)
                instance.released.set()
        return unlaunched

    async def relaunch(self, instance: Instance) -> None:
        """Re-drive a committed start whose service was never created (same generation)."""
        try:
            await self._launch(instance)
        except FabricHostError as exc:
            log.error("instance %s cannot be started again: %s", instance.instance_id, exc)
            instance.error = str(exc)
            self._set(instance, InstanceStatus.FAILED)
            instance.released.set()  # the failed create removed what it had started

    def application_deleted(self, application: str) -> None:
        """The application is being deleted: its active instances are Terminated now.

        The caller deletes their services; each ID is released once its service is deleted and
        its processes are gone (or at once if its service is gone already).
        """
        for instance in self.instances.values():
            if instance.application == application and instance.status.active:
                self._set(instance, InstanceStatus.TERMINATED)
                watch = self._removal.watch(instance.service_name)  # before its delete begins
                if watch is None:
                    self._release(instance)
                else:
                    self._tasks.spawn(self._release_when_gone(instance, watch))

    async def _release_when_gone(self, instance: Instance, watch: Watch) -> None:
        try:
            await watch.gone()
        finally:
            self._release(instance)
