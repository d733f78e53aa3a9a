"""Write-through of the runtime model to the store, and the rows read back at start.

The agent calls these right after each decision, on the event loop, with no ``await`` between
the decision and the write: what a client was told has been committed, and a ``kill -9`` at any
instant leaves either the whole change or none of it. Several writes that belong together go in
one :meth:`Persistence.transaction`. Everything here maps model objects to rows and back; the
store itself (and its SQL, in :mod:`fabrichost.store`) is private to this class.

One kind of write is grouped instead: the records of started and exited processes. They are
never an answer to a client (they let the next run probe the processes' incarnation locks; the
processes themselves are found by the marker in their environment, ``_fence.py``), and a record
is already written only after its process was spawned, so a crash in between is a case the
fencing handles anyway. Starting 200 code packages in one loop turn then costs one commit, not
200 (each is an ``fdatasync``). They are committed at the end of the loop turn that made them,
and before anything reads them or the store closes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

from fabrichost.agent._model import (
    ActivationMode,
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
)
from fabrichost.store import (
    ApplicationRow,
    ApplicationTypeRow,
    InstanceRow,
    PartitionRow,
    ProcessRow,
    ReplicaRow,
    RequestRow,
    ServiceRow,
    Store,
    UpgradeRow,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from pathlib import Path

    from fabrichost.agent._model import Application, Instance, Replica, Service
    from fabrichost.agent._provision import ProvisionedType
    from fabrichost.agent._upgrade_progress import UpgradeProgress


def description_to_json(desc: ServiceDescription) -> str:
    return json.dumps(dataclasses.asdict(desc))


def description_from_json(text: str) -> ServiceDescription:
    data: dict[str, Any] = json.loads(text)
    data["kind"] = ServiceKind(data["kind"])
    data["activation_mode"] = ActivationMode(data["activation_mode"])
    data["partition_scheme"] = PartitionScheme(data["partition_scheme"])
    data["partition_names"] = tuple(data["partition_names"])
    return ServiceDescription(**data)


class Persistence:
    """The cluster's writes to (and reads from) one :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Process records not committed yet, in order: a row to record, or a key to forget.
        self._process_writes: list[ProcessRow | tuple[str, str, str, str, str]] = []

    @classmethod
    def open(cls, state_dir: Path) -> Persistence:
        return cls(Store.open(state_dir / "state.db"))

    def close(self) -> None:
        self.flush_processes()
        self._store.close()

    def transaction(self) -> AbstractContextManager[None]:
        """Several writes as one: all of them are committed at the end of the block, or none."""
        return self._store.transaction()

    # -- sequences (never repeat; drawn outside any transaction) ---------------------------------

    def next_application_sequence(self) -> int:
        """The N of the next application's id ``<Type>_App<N>``."""
        return self._store.next_application_sequence()

    def next_generation(self) -> int:
        """The generation of the next singleton instance start."""
        return self._store.next_generation()

    # -- types, applications, services ------------------------------------------------------------

    def application_type_added(self, ptype: ProvisionedType) -> None:
        self._store.add_application_type(
            ApplicationTypeRow(ptype.name, ptype.version, ptype.digest, str(ptype.package.root))
        )

    def application_type_removed(self, name: str, version: str) -> None:
        self._store.remove_application_type(name, version)

    def application_added(self, app: Application) -> None:
        self._store.add_application(
            ApplicationRow(
                app.name,
                app.type_name,
                app.type_version,
                app.application_id,
                json.dumps(app.parameters),
                time.time(),
            )
        )

    def application_removed(self, name: str) -> None:
        self._store.remove_application(name)

    def application_version_saved(self, app: Application) -> None:
        """The version (and parameters) in force now that an upgrade of ``app`` completed."""
        self._store.set_application_version(app.name, app.type_version, json.dumps(app.parameters))

    def upgrade_saved(self, progress: UpgradeProgress) -> None:
        """Record an application's latest upgrade as it stands."""
        self._store.put_upgrade(
            UpgradeRow(
                progress.application,
                progress.from_version,
                progress.target_version,
                json.dumps(progress.from_parameters),
                json.dumps(progress.description.parameters),
                progress.state.value,
                json.dumps(progress.description.to_record()),
                json.dumps(progress.to_record()),
                time.time(),
            )
        )

    def service_added(self, service: Service, description: ServiceDescription) -> None:
        partitions = [
            PartitionRow(p.id, service.name, i, p.scheme.value, p.name, p.low_key, p.high_key)
            for i, p in enumerate(service.partitions)
        ]
        self._store.add_service(
            ServiceRow(
                service.name,
                service.application.name,
                description_to_json(description),
                time.time(),
            ),
            partitions,
        )

    def service_removed(self, name: str) -> None:
        self._store.remove_service(name)

    # -- placements, nodes, processes --------------------------------------------------------------

    def replica_saved(self, replica: Replica, generation: int = 0) -> bool:
        """Write a replica's placement; False, writing nothing, if its service is gone.

        A service is gone once its application no longer maps its name to that very object
        (deleted, or deleted and created again under the same name): its rows went with it, and
        a replica that could not be saved must not be started.
        """
        service = replica.service
        if service.application.services.get(service.name) is not service:
            return False
        self._store.put_replica(
            ReplicaRow(
                replica.id,
                replica.partition.id,
                replica.node_name,
                replica.role.value,
                replica.activation_id,
                generation,
            )
        )
        return True

    def replica_removed(self, replica: Replica) -> None:
        self._store.remove_replica(replica.id)

    def node_saved(self, name: str, up: bool) -> None:
        self._store.set_node(name, up)

    def node_states(self) -> dict[str, bool]:
        """Every node the store knows, and whether it is up."""
        return self._store.nodes()

    def node_names_in_use(self) -> list[str]:
        """The nodes the store names anywhere: node states, placements, processes."""
        names = [*self._store.nodes(), *(r.node for r in self._store.replicas())]
        return names + [p.node for p in self.process_rows()]

    def process_started(
        self,
        key: tuple[str, str, str, str, str],
        pid: int,
        start_time: float,
        lock_path: Path,
        generation: int,
    ) -> None:
        """Record a spawned process (committed at the end of this loop turn)."""
        node, application, package, activation_id, code_package = key
        row = ProcessRow(
            node,
            application,
            package,
            activation_id,
            code_package,
            pid,
            start_time,
            str(lock_path),
            generation,
        )
        self._queue_process_write(row)

    def process_exited(self, key: tuple[str, str, str, str, str]) -> None:
        """Forget a process that exited (committed at the end of this loop turn)."""
        self._queue_process_write(key)

    def _queue_process_write(self, write: ProcessRow | tuple[str, str, str, str, str]) -> None:
        self._process_writes.append(write)
        if len(self._process_writes) > 1:
            return  # a flush is already scheduled
        try:
            asyncio.get_running_loop().call_soon(self.flush_processes)
        except RuntimeError:  # no event loop (a tool, a test): write it now
            self.flush_processes()

    def flush_processes(self) -> None:
        """Commit the queued process records, in order, as one transaction."""
        writes, self._process_writes = self._process_writes, []
        if not writes:
            return
        with self._store.transaction():
            for write in writes:
                if isinstance(write, ProcessRow):
                    self._store.record_process(write)
                else:
                    self._store.forget_process(*write)

    # -- requests and instances --------------------------------------------------------------------

    def request_claimed(self, request_id: str, kind: str, target: str, digest: str) -> None:
        """Record a request id before its create runs (the intent); idempotent."""
        if self._store.find_request(request_id) is not None:
            return  # recorded by an earlier attempt that crashed: this retry goes on
        self._store.record_request(
            RequestRow(
                request_id, kind, target, digest, json.dumps({"target": target}), time.time()
            )
        )

    def request_failed(self, request_id: str) -> None:
        self._store.remove_request(request_id)

    def request_found(self, request_id: str) -> tuple[str, str, str, bool] | None:
        """(kind, target, digest, completed) of a recorded request id."""
        row = self._store.find_request(request_id)
        if row is None:
            return None
        done = bool(json.loads(row.response_json).get("completed"))
        return (row.kind, row.target, row.description_hash, done)

    def request_completed(self, request_id: str) -> None:
        """Mark a request id's create as finished: a later retry never creates again."""
        row = self._store.find_request(request_id)
        if row is None:
            return
        done = dataclasses.replace(
            row, response_json=json.dumps({"target": row.target, "completed": True})
        )
        with self._store.transaction():
            self._store.remove_request(request_id)
            self._store.record_request(done)

    def instance_added(self, instance: Instance) -> None:
        self._store.add_instance(
            InstanceRow(
                instance.instance_id,
                instance.function_name,
                instance.application,
                instance.service_name,
                instance.status,
                instance.input_json,
                instance.output_json,
                instance.error,
                instance.generation,
                instance.created_at.timestamp(),
                instance.updated_at.timestamp(),
                instance.request_id,
            )
        )

    def instance_updated(self, instance: Instance) -> bool:
        """Fenced: False if the stored instance has another generation (a stale writer)."""
        return self._store.update_instance(
            instance.instance_id,
            instance.generation,
            status=instance.status,
            output_json=instance.output_json,
            error=instance.error,
            updated_at=instance.updated_at.timestamp(),
        )

    def instance_removed(self, instance_id: str) -> None:
        self._store.remove_instance(instance_id)

    # -- reading back, for a restart ------------------------------------------------------------

    def application_type_rows(self) -> list[ApplicationTypeRow]:
        return self._store.application_types()

    def application_rows(self) -> list[ApplicationRow]:
        return self._store.applications()

    def upgrade_rows(self) -> list[UpgradeRow]:
        return self._store.upgrades()

    def service_rows(self) -> list[ServiceRow]:
        return self._store.services()

    def partition_rows(self) -> list[PartitionRow]:
        return self._store.partitions()

    def replica_rows(self) -> list[ReplicaRow]:
        return self._store.replicas()

    def instance_rows(self) -> list[InstanceRow]:
        return self._store.instances()

    def process_rows(self) -> list[ProcessRow]:
        self.flush_processes()
        return self._store.processes()

    def replica_row_removed(self, replica_id: int) -> None:
        """Drop a placement that cannot be restored (its node or partition is gone)."""
        self._store.remove_replica(replica_id)

    def process_row_removed(self, row: ProcessRow) -> None:
        """Forget a process of an earlier run, once it is fenced."""
        self._store.forget_process(*row.key)

    def requests_forgotten_before(self, created_at: float) -> int:
        """Forget request ids recorded before ``created_at``; how many were forgotten."""
        return self._store.forget_requests_before(created_at)
