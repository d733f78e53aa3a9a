"""The agent's durable state: an embedded SQLite database in its state directory.

Usage::

    from fabrichost.store import ApplicationRow, Store, StoreConflict

    with Store.open(state_dir / "state.db") as store:      # creates or migrates the file
        n = store.next_application_sequence()               # commits before it returns
        try:
            store.add_application(ApplicationRow("fabric:/App1", "MyAppType", "1.0.0",
                                                 f"MyAppType_App{n}", "{}", time.time()))
        except StoreConflict as exc:                        # exc.key == "name='fabric:/App1'"
            ...
        with store.transaction():                           # several writes, all or nothing
            store.add_service(service_row, partition_rows)
            store.put_replica(replica_row)

Every write commits before it returns (one fsync: WAL with ``synchronous=FULL``), or at the end
of the enclosing :meth:`Store.transaction`, so a ``kill -9`` at any instant loses nothing that
was acknowledged and never leaves half a transaction behind. ``_schema.py`` explains why.

A Store is one sqlite3 connection for one thread at a time; the agent calls it on its event
loop, right after each decision. Failures raise :class:`~fabrichost.errors.StoreError` naming
the operation and the file; a taken key raises :class:`StoreConflict` naming the key.

The API (rows are frozen dataclasses; ``*_json`` fields are JSON text the caller writes):

* lifecycle: ``Store.open(path, *, busy_timeout=5.0)``, ``close()`` (or ``with``),
  ``transaction()``, ``integrity_check() -> list[str]``, ``path``, ``closed``
* sequences (never repeat; refused inside a transaction): ``next_generation() -> int``,
  ``next_application_sequence() -> int``
* ``add_application_type(row)``, ``remove_application_type(name, version) -> bool``,
  ``application_types()``
* ``add_application(row)``, ``remove_application(name) -> bool`` (cascades to services,
  partitions, replicas), ``applications()``
* ``set_application_version(name, type_version, parameters_json) -> bool`` (an upgrade done)
* ``put_upgrade(row)`` (insert or replace: an application's latest upgrade), ``upgrades()``
* ``add_service(row, partitions)``, ``remove_service(name) -> bool``, ``services()``,
  ``partitions(service_name=None)``
* ``put_replica(row)`` (insert or replace), ``remove_replica(replica_id) -> bool``,
  ``replicas()``
* ``set_node(name, up)``, ``nodes() -> dict[str, bool]``
* ``record_process(row)`` (insert or replace), ``forget_process(node, application, package,
  activation_id, code_package) -> bool``, ``processes()``
* ``record_request(row)``, ``find_request(request_id) -> RequestRow | None``,
  ``forget_requests_before(created_at) -> int``
* ``add_instance(row)``, ``get_instance(instance_id) -> InstanceRow | None``, ``instances()``,
  ``remove_instance(instance_id) -> bool``, ``update_instance(instance_id, generation, *,
  status=, output_json=, error=, updated_at=) -> bool`` (fenced: False for a stale generation)
"""

from __future__ import annotations

from fabrichost.store._errors import StoreConflict as StoreConflict
from fabrichost.store._repo import DEFAULT_BUSY_TIMEOUT as DEFAULT_BUSY_TIMEOUT
from fabrichost.store._repo import Store as Store
from fabrichost.store._rows import ApplicationRow as ApplicationRow
from fabrichost.store._rows import ApplicationTypeRow as ApplicationTypeRow
from fabrichost.store._rows import InstanceRow as InstanceRow
from fabrichost.store._rows import InstanceStatus as InstanceStatus
from fabrichost.store._rows import PartitionRow as PartitionRow
from fabrichost.store._rows import ProcessRow as ProcessRow
from fabrichost.store._rows import ReplicaRow as ReplicaRow
from fabrichost.store._rows import RequestRow as RequestRow
from fabrichost.store._rows import ServiceRow as ServiceRow
from fabrichost.store._rows import UpgradeRow as UpgradeRow
from fabrichost.store._schema import SCHEMA_VERSION as SCHEMA_VERSION
from fabrichost.store._tables import UNSET as UNSET

__all__ = (
    "DEFAULT_BUSY_TIMEOUT",
    "SCHEMA_VERSION",
    "UNSET",
    "ApplicationRow",
    "ApplicationTypeRow",
    "InstanceRow",
    "InstanceStatus",
    "PartitionRow",
    "ProcessRow",
    "ReplicaRow",
    "RequestRow",
    "ServiceRow",
    "Store",
    "StoreConflict",
    "UpgradeRow",
)
