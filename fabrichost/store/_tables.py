"""The store's row operations, table by table (mixed into :class:`~fabrichost.store.Store`).

Each write is one statement, or one atomic group of statements, that commits before it returns
unless the caller's transaction is open. Lists come back in a stable order (by key) so that a
restarted agent rebuilds its model in the same order every time.
"""

from __future__ import annotations

import enum
import time
from dataclasses import fields
from typing import TYPE_CHECKING, Final

from fabrichost.errors import StoreError
from fabrichost.store._database import Database
from fabrichost.store._errors import StoreConflict
from fabrichost.store._rows import (
    ApplicationRow,
    ApplicationTypeRow,
    InstanceRow,
    InstanceStatus,
    PartitionRow,
    ProcessRow,
    ReplicaRow,
    RequestRow,
    ServiceRow,
    UpgradeRow,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Mapping, Sequence

    from _typeshed import DataclassInstance

    from fabrichost.store._database import Params


class Unset(enum.Enum):
    """The type of :data:`UNSET`: an argument not given, where None is a value."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


def _columns(row_type: type[DataclassInstance]) -> str:
    return ", ".join(f.name for f in fields(row_type))


def _values(row: DataclassInstance) -> Params:
    return tuple(getattr(row, f.name) for f in fields(row))


def _insert_sql(table: str, row_type: type[DataclassInstance], upsert_key: str = "") -> str:
    """INSERT of every field; with ``upsert_key``, an existing row's other fields are replaced.

    An upsert updates in place, unlike INSERT OR REPLACE, which deletes the old row first and
    so would fire ON DELETE CASCADE on its children.
    """
    names = [f.name for f in fields(row_type)]
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    if upsert_key:
        key = {k.strip() for k in upsert_key.split(",")}
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n not in key)
        sql += f" ON CONFLICT ({upsert_key}) DO UPDATE SET {updates}"
    return sql


def _instance(row: sqlite3.Row) -> InstanceRow:
    # Built by name: the status column holds the enum's value, the row holds the enum.
    values = dict(zip(row.keys(), row, strict=True))
    values["status"] = InstanceStatus(values["status"])
    return InstanceRow(**values)


class StoreTables(Database):
    """Row operations; see :class:`~fabrichost.store.Store` for the whole API."""

    def _insert(
        self,
        operation: str,
        table: str,
        row: DataclassInstance,
        *,
        noun: str,
        keys: Mapping[str, object],
        missing: str = "",
    ) -> None:
        sql = _insert_sql(table, type(row))
        self._execute(operation, sql, _values(row), noun=noun, keys=keys, missing=missing)

    def _delete(self, operation: str, table: str, where: str, params: Params) -> bool:
        return self._execute(operation, f"DELETE FROM {table} WHERE {where}", params) > 0

    # Application types

    def add_application_type(self, row: ApplicationTypeRow) -> None:
        """Record a provisioned type. StoreConflict if (name, version) is provisioned."""
        keys = {"name": row.name, "version": row.version}
        self._insert("add_application_type", "application_types", row,
                     noun="an application type", keys=keys)  # fmt: skip

    def remove_application_type(self, name: str, version: str) -> bool:
        """Forget a type; False if it was unknown. StoreConflict while applications use it."""
        operation = "remove_application_type"
        with self._atomic(operation):
            users = self._query(
                operation,
                "SELECT name FROM applications WHERE type_name = ? AND type_version = ?"
                " ORDER BY name",
                (name, version),
            )
            if users:
                key = f"name={name!r}, version={version!r}"
                used_by = ", ".join(repr(u[0]) for u in users)
                raise StoreConflict(
                    f"{operation}: application type {key} is used by {used_by} in {self._path}",
                    key=key,
                )
            return self._delete(operation, "application_types", "name = ? AND version = ?",
                                (name, version))  # fmt: skip

    def application_types(self) -> list[ApplicationTypeRow]:
        sql = f"SELECT {_columns(ApplicationTypeRow)} FROM application_types ORDER BY name, version"
        return [ApplicationTypeRow(*r) for r in self._query("application_types", sql)]

    # Applications

    def add_application(self, row: ApplicationRow) -> None:
        """Record an application. StoreConflict if its name or application id is taken;
        StoreError if its type is not provisioned."""
        missing = f"application type {row.type_name!r} version {row.type_version!r} is unknown"
        keys = {"name": row.name, "application_id": row.application_id}
        self._insert("add_application", "applications", row,
                     noun="an application", keys=keys, missing=missing)  # fmt: skip

    def remove_application(self, name: str) -> bool:
        """Delete an application with its services, partitions and replicas; False if unknown."""
        return self._delete("remove_application", "applications", "name = ?", (name,))

    def applications(self) -> list[ApplicationRow]:
        sql = f"SELECT {_columns(ApplicationRow)} FROM applications ORDER BY name"
        return [ApplicationRow(*r) for r in self._query("applications", sql)]

    # Services and partitions

    def add_service(self, row: ServiceRow, partitions: Sequence[PartitionRow]) -> None:
        """Record a service and its partitions, all or nothing.

        StoreConflict if the service name or a partition id is taken; StoreError if the
        application does not exist or a partition names another service.
        """
        operation = "add_service"
        strays = [p.id for p in partitions if p.service != row.name]
        if strays:
            raise StoreError(f"{operation}: partitions {strays} do not belong to {row.name!r}")
        with self._atomic(operation):
            self._insert(operation, "services", row, noun="a service", keys={"name": row.name},
                         missing=f"application {row.application!r} does not exist")  # fmt: skip
            for partition in partitions:
                keys = {"id": partition.id, "service": row.name, "ordinal": partition.ordinal}
                self._insert(operation, "partitions", partition, noun="a partition", keys=keys)

    def remove_service(self, name: str) -> bool:
        """Delete a service with its partitions and replicas; False if unknown."""
        return self._delete("remove_service", "services", "name = ?", (name,))

    def services(self) -> list[ServiceRow]:
        sql = f"SELECT {_columns(ServiceRow)} FROM services ORDER BY name"
        return [ServiceRow(*r) for r in self._query("services", sql)]

    def partitions(self, service_name: str | None = None) -> list[PartitionRow]:
        """The partitions of one service by ordinal, or of every service when None."""
        sql = f"SELECT {_columns(PartitionRow)} FROM partitions"
        params: Params = ()
        if service_name is not None:
            sql += " WHERE service = ?"
            params = (service_name,)
        rows = self._query("partitions", sql + " ORDER BY service, ordinal", params)
        return [PartitionRow(*r) for r in rows]

    def set_application_version(self, name: str, type_version: str, parameters_json: str) -> bool:
        """Put another version of its type in force for an application (an upgrade completed);
        False if it is unknown. StoreError if that version is not provisioned."""
        return (
            self._execute(
                "set_application_version",
                "UPDATE applications SET type_version = ?, parameters_json = ? WHERE name = ?",
                (type_version, parameters_json, name),
                missing=f"application type version {type_version!r} is unknown",
            )
            > 0
        )

    # Application upgrades

    def put_upgrade(self, row: UpgradeRow) -> None:
        """Record an application's upgrade, replacing its earlier one. StoreError if the
        application is unknown."""
        self._execute(
            "put_upgrade",
            _insert_sql("application_upgrades", UpgradeRow, upsert_key="application"),
            _values(row),
            missing=f"application {row.application!r} does not exist",
        )

    def upgrades(self) -> list[UpgradeRow]:
        sql = f"SELECT {_columns(UpgradeRow)} FROM application_upgrades ORDER BY application"
        return [UpgradeRow(*r) for r in self._query("application_upgrades", sql)]

    # Replicas (placements)

    def put_replica(self, row: ReplicaRow) -> None:
        """Insert a replica, or replace the one with its id. StoreError if the partition is
        unknown."""
        self._execute(
            "put_replica",
            _insert_sql("replicas", ReplicaRow, upsert_key="id"),
            _values(row),
            missing=f"partition {row.partition_id!r} does not exist",
        )

    def remove_replica(self, replica_id: int) -> bool:
        return self._delete("remove_replica", "replicas", "id = ?", (replica_id,))

    def replicas(self) -> list[ReplicaRow]:
        sql = f"SELECT {_columns(ReplicaRow)} FROM replicas ORDER BY id"
        return [ReplicaRow(*r) for r in self._query("replicas", sql)]

    # Nodes

    def set_node(self, name: str, up: bool) -> None:
        self._execute(
            "set_node",
            "INSERT INTO nodes (name, up) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET up = ?",
            (name, int(up), int(up)),
        )

    def nodes(self) -> dict[str, bool]:
        rows = self._query("nodes", "SELECT name, up FROM nodes ORDER BY name")
        return {str(r[0]): bool(r[1]) for r in rows}

    # Processes

    def record_process(self, row: ProcessRow) -> None:
        """Remember a started process, replacing the record with the same key."""
        key = "node, application, package, activation_id, code_package"
        self._execute("record_process", _insert_sql("processes", ProcessRow, key), _values(row))

    def forget_process(
        self, node: str, application: str, package: str, activation_id: str, code_package: str
    ) -> bool:
        where = "node = ? AND application = ? AND package = ? AND activation_id = ? AND code_package = ?"  # noqa: E501
        params = (node, application, package, activation_id, code_package)
        return self._delete("forget_process", "processes", where, params)

    def processes(self) -> list[ProcessRow]:
        order = "node, application, package, activation_id, code_package"
        sql = f"SELECT {_columns(ProcessRow)} FROM processes ORDER BY {order}"
        return [ProcessRow(*r) for r in self._query("processes", sql)]

    # Idempotency records

    def record_request(self, row: RequestRow) -> None:
        """Remember what a request id created. StoreConflict if the id is recorded already."""
        self._insert("record_request", "requests", row,
                     noun="a request", keys={"request_id": row.request_id})  # fmt: skip

    def find_request(self, request_id: str) -> RequestRow | None:
        sql = f"SELECT {_columns(RequestRow)} FROM requests WHERE request_id = ?"
        rows = self._query("find_request", sql, (request_id,))
        return RequestRow(*rows[0]) if rows else None

    def remove_request(self, request_id: str) -> bool:
        """Forget one request id (its create failed, so a retry must create anew)."""
        return self._delete("remove_request", "requests", "request_id = ?", (request_id,))

    def forget_requests_before(self, created_at: float) -> int:
        """Drop idempotency records created before ``created_at``; return how many."""
        sql = "DELETE FROM requests WHERE created_at < ?"
        return self._execute("forget_requests_before", sql, (created_at,))

    # Singleton instances

    def add_instance(self, row: InstanceRow) -> None:
        """Record a new instance. StoreConflict if its instance id exists."""
        self._insert("add_instance", "instances", row,
                     noun="an instance", keys={"instance_id": row.instance_id})  # fmt: skip

    def get_instance(self, instance_id: str) -> InstanceRow | None:
        sql = f"SELECT {_columns(InstanceRow)} FROM instances WHERE instance_id = ?"
        rows = self._query("get_instance", sql, (instance_id,))
        return _instance(rows[0]) if rows else None

    def instances(self) -> list[InstanceRow]:
        sql = f"SELECT {_columns(InstanceRow)} FROM instances ORDER BY created_at, instance_id"
        return [_instance(r) for r in self._query("instances", sql)]

    def remove_instance(self, instance_id: str) -> bool:
        """Purge an instance; False if unknown. Its generation is never handed out again."""
        return self._delete("remove_instance", "instances", "instance_id = ?", (instance_id,))

    def update_instance(
        self,
        instance_id: str,
        generation: int,
        *,
        status: InstanceStatus | Unset = UNSET,
        output_json: str | Unset | None = UNSET,
        error: str | Unset | None = UNSET,
        updated_at: float | None = None,
    ) -> bool:
        """Change an instance, fenced on its generation; ``updated_at`` defaults to now.

        Only the given fields change. Returns False, changing nothing, when the instance is
        gone or holds another generation: the caller is a stale incarnation and must stop.
        """
        given = {"status": status, "output_json": output_json, "error": error}
        changes: dict[str, object] = {k: v for k, v in given.items() if not isinstance(v, Unset)}
        changes["updated_at"] = time.time() if updated_at is None else updated_at
        assignments = ", ".join(f"{column} = ?" for column in changes)
        sql = f"UPDATE instances SET {assignments} WHERE instance_id = ? AND generation = ?"
        params = (*changes.values(), instance_id, generation)
        return self._execute("update_instance", sql, params) == 1


__all__ = ("UNSET", "StoreTables", "Unset")
