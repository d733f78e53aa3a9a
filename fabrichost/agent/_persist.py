"""Write-through of the runtime model to the store, and the rows read back at start.

The cluster calls these right after each decision, on the event loop, with no ``await`` between
the decision and the write: what a client was told has been committed, and a ``kill -9`` at any
instant leaves either the whole change or none of it. Everything here maps model objects to
rows and back; the SQL lives in :mod:`fabrichost.store`.
"""

from __future__ import annotations

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
    InstanceStatus,
    PartitionRow,
    ProcessRow,
    ReplicaRow,
    RequestRow,
    ServiceRow,
    Store,
)

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.agent._instances import Instance
    from fabrichost.agent._model import Application, Replica, Service
    from fabrichost.agent._provision import ProvisionedType


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
        self.store = store

    @classmethod
    def open(cls, state_dir: Path) -> Persistence:
        return cls(Store.open(state_dir / "state.db"))

    def close(self) -> None:
        self.store.close()

    # -- types, applications, services ------------------------------------------------------------

    def application_type_added(self, ptype: ProvisionedType) -> None:
        self.store.add_application_type(
            ApplicationTypeRow(ptype.name, ptype.version, ptype.digest, str(ptype.package.root))
        )

    def application_type_removed(self, name: str, version: str) -> None:
        self.store.remove_application_type(name, version)

    def application_added(self, app: Application) -> None:
        self.store.add_application(
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
        self.store.remove_application(name)

    def service_added(self, service: Service, description: ServiceDescription) -> None:
        partitions = [
            PartitionRow(p.id, service.name, i, p.scheme.value, p.name, p.low_key, p.high_key)
            for i, p in enumerate(service.partitions)
        ]
        self.store.add_service(
            ServiceRow(
                service.name,
                service.application.name,
                description_to_json(description),
                time.time(),
            ),
            partitions,
        )

    def service_removed(self, name: str) -> None:
        self.store.remove_service(name)

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
        self.store.put_replica(
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
        self.store.remove_replica(replica.id)

    def node_saved(self, name: str, up: bool) -> None:
        self.store.set_node(name, up)

    def process_started(
        self,
        key: tuple[str, str, str, str, str],
        pid: int,
        start_time: float,
        lock_path: Path,
        generation: int,
    ) -> None:
        node, application, package, activation_id, code_package = key
        self.store.record_process(
            ProcessRow(
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
        )

    def process_exited(self, key: tuple[str, str, str, str, str]) -> None:
        self.store.forget_process(*key)

    # -- requests and instances --------------------------------------------------------------------

    def request_claimed(self, request_id: str, kind: str, target: str, digest: str) -> None:
        """Record a request id before its create runs (the intent); idempotent."""
        if self.store.find_request(request_id) is not None:
            return  # recorded by an earlier attempt that crashed: this retry goes on
        self.store.record_request(
            RequestRow(
                request_id, kind, target, digest, json.dumps({"target": target}), time.time()
            )
        )

    def request_failed(self, request_id: str) -> None:
        self.store.remove_request(request_id)

    def request_found(self, request_id: str) -> tuple[str, str, str, bool] | None:
        """(kind, target, digest, completed) of a recorded request id."""
        row = self.store.find_request(request_id)
        if row is None:
            return None
        done = bool(json.loads(row.response_json).get("completed"))
        return (row.kind, row.target, row.description_hash, done)

    def request_completed(self, request_id: str) -> None:
        """Mark a request id's create as finished: a later retry never creates again."""
        row = self.store.find_request(request_id)
        if row is None:
            return
        done = dataclasses.replace(
            row, response_json=json.dumps({"target": row.target, "completed": True})
        )
        with self.store.transaction():
            self.store.remove_request(request_id)
            self.store.record_request(done)

    def instance_added(self, instance: Instance) -> None:
        self.store.add_instance(
            InstanceRow(
                instance.instance_id,
                instance.function_name,
                instance.application,
                instance.service_name,
                InstanceStatus(instance.status.value),
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
        return self.store.update_instance(
            instance.instance_id,
            instance.generation,
            status=InstanceStatus(instance.status.value),
            output_json=instance.output_json,
            error=instance.error,
            updated_at=instance.updated_at.timestamp(),
        )

    def instance_removed(self, instance_id: str) -> None:
        self.store.remove_instance(instance_id)
