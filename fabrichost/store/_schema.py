"""The state store's schema: connection settings, and the migrations that build the tables.

Theory of operation
-------------------

The agent keeps its runtime model in memory and writes every change through to this database
right after deciding it, on its event loop, before it acknowledges anything. After a crash it
loads the database back and reconciles. So the database must hold exactly the acknowledged
changes, whole, after the agent is killed at any instant (``kill -9``), and nothing half done.

* **WAL journal.** A commit appends the transaction's pages to ``<db>-wal`` and ends with a
  commit frame; readers ignore frames after the last valid commit frame. A process killed in
  the middle of a transaction therefore leaves frames nobody will ever read, and the next
  opener rolls them away: a partial transaction is never visible. Writes do not block readers,
  so a CLI reading the file never stalls the agent.
* **synchronous=FULL.** Against a killed *process* WAL alone is enough, because the written
  frames sit in the kernel's page cache, which outlives the process. FULL adds an fsync of the
  WAL at every commit, so an acknowledged change also survives a kernel panic or power loss
  (within what the disk promises). It costs one fsync per commit, which is why callers group
  related writes in :meth:`Store.transaction`.
* **foreign_keys=ON** is per connection in SQLite, off by default, so it is set and checked at
  every open: services, partitions and replicas cascade away with their application.
* **busy_timeout.** One agent writes (an flock guarantees it), but other processes (the CLI,
  tests, a second agent refused by the flock a moment later) may open the file. A writer that
  meets another's write lock waits up to the timeout instead of failing at once.
* **BEGIN IMMEDIATE** for every write transaction takes the write lock at the start, so a
  transaction never fails half way with SQLITE_BUSY on a lock upgrade it could not wait for.
* **STRICT tables** make SQLite refuse a value of the wrong type instead of storing it.
* **Sequences in a table.** Generations (fencing tokens) and application numbers come from
  the ``sequences`` table, bumped and committed before the number is handed out. Deleting rows
  never lowers them, and a number is handed out only after its commit, so a crash cannot roll
  it back: they never repeat. (A rowid would: SQLite reuses the highest one once it is deleted.)

Migrations are data: ``MIGRATIONS[n]`` brings the schema from version ``n`` to ``n + 1``, and
``schema_migrations`` records each applied version. They run in one ``BEGIN IMMEDIATE``
transaction, so two processes opening a fresh file at once cannot both migrate it. Append new
migrations; never edit one that has shipped.
"""

from __future__ import annotations

from typing import Final

#: ``PRAGMA application_id`` of a fabrichost state database ("FbHs"), so that opening some
#: other SQLite file is refused instead of migrated.
APPLICATION_ID: Final = 0x46624873

#: SQLite features the schema needs: STRICT tables (3.37) and ``RETURNING`` (3.35).
MIN_SQLITE_VERSION: Final = (3, 37, 0)

#: The names of the rows in the ``sequences`` table.
GENERATION: Final = "generation"
APPLICATION_SEQUENCE: Final = "application"

# The statuses an instance row may hold; kept in step with ``InstanceStatus``.
_INSTANCE_STATUSES: Final = "'Pending', 'Running', 'Completed', 'Failed', 'Terminated'"

_V1: Final[tuple[str, ...]] = (
    """
    CREATE TABLE sequences (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL CHECK (value >= 0)
    ) STRICT
    """,
    f"INSERT INTO sequences (name, value) VALUES ('{GENERATION}', 0),"
    f" ('{APPLICATION_SEQUENCE}', 0)",
    """
    CREATE TABLE application_types (
        name       TEXT NOT NULL,
        version    TEXT NOT NULL,
        digest     TEXT NOT NULL,
        image_path TEXT NOT NULL,
        PRIMARY KEY (name, version)
    ) STRICT
    """,
    # A type in use cannot be removed (SF refuses to unprovision it), hence RESTRICT.
    """
    CREATE TABLE applications (
        name            TEXT PRIMARY KEY,
        type_name       TEXT NOT NULL,
        type_version    TEXT NOT NULL,
        application_id  TEXT NOT NULL UNIQUE,
        parameters_json TEXT NOT NULL,
        created_at      REAL NOT NULL,
        FOREIGN KEY (type_name, type_version)
            REFERENCES application_types (name, version) ON DELETE RESTRICT
    ) STRICT
    """,
    "CREATE INDEX applications_by_type ON applications (type_name, type_version)",
    """
    CREATE TABLE services (
        name             TEXT PRIMARY KEY,
        application      TEXT NOT NULL REFERENCES applications (name) ON DELETE CASCADE,
        description_json TEXT NOT NULL,
        created_at       REAL NOT NULL
    ) STRICT
    """,
    # Cascades look children up by their parent column: without these indexes every delete of a
    # parent would scan the child table.
    "CREATE INDEX services_by_application ON services (application)",
    """
    CREATE TABLE partitions (
        id       TEXT PRIMARY KEY,
        service  TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
        ordinal  INTEGER NOT NULL,
        scheme   TEXT NOT NULL,
        name     TEXT,
        low_key  INTEGER,
        high_key INTEGER,
        UNIQUE (service, ordinal)
    ) STRICT
    """,
    """
    CREATE TABLE replicas (
        id            INTEGER PRIMARY KEY,
        partition_id  TEXT NOT NULL REFERENCES partitions (id) ON DELETE CASCADE,
        node          TEXT NOT NULL,
        role          TEXT NOT NULL,
        activation_id TEXT NOT NULL,
        generation    INTEGER NOT NULL
    ) STRICT
    """,
    "CREATE INDEX replicas_by_partition ON replicas (partition_id)",
    """
    CREATE TABLE nodes (
        name TEXT PRIMARY KEY,
        up   INTEGER NOT NULL CHECK (up IN (0, 1))
    ) STRICT
    """,
    # No foreign key to applications: a process may outlive its application's row (a crash
    # between the delete and the stop), and its record is what lets the next agent fence it.
    """
    CREATE TABLE processes (
        node          TEXT NOT NULL,
        application   TEXT NOT NULL,
        package       TEXT NOT NULL,
        activation_id TEXT NOT NULL,
        code_package  TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        start_time    REAL NOT NULL,
        lock_path     TEXT NOT NULL,
        generation    INTEGER NOT NULL,
        PRIMARY KEY (node, application, package, activation_id, code_package)
    ) STRICT
    """,
    """
    CREATE TABLE requests (
        request_id       TEXT PRIMARY KEY,
        kind             TEXT NOT NULL,
        target           TEXT NOT NULL,
        description_hash TEXT NOT NULL,
        response_json    TEXT NOT NULL,
        created_at       REAL NOT NULL
    ) STRICT
    """,
    # Instances have their own lifecycle (a Completed instance outlives its service until it is
    # purged), so they reference nothing.
    f"""
    CREATE TABLE instances (
        instance_id   TEXT PRIMARY KEY,
        function_name TEXT NOT NULL,
        application   TEXT NOT NULL,
        service_name  TEXT NOT NULL,
        status        TEXT NOT NULL CHECK (status IN ({_INSTANCE_STATUSES})),
        input_json    TEXT NOT NULL,
        output_json   TEXT,
        error         TEXT,
        generation    INTEGER NOT NULL,
        created_at    REAL NOT NULL,
        updated_at    REAL NOT NULL,
        request_id    TEXT
    ) STRICT
    """,
)

# Application upgrades: one row per application, its latest upgrade (it goes with it).
_V2: Final[tuple[str, ...]] = (
    """
    CREATE TABLE application_upgrades (
        application            TEXT PRIMARY KEY
                               REFERENCES applications (name) ON DELETE CASCADE,
        from_version           TEXT NOT NULL,
        target_version         TEXT NOT NULL,
        from_parameters_json   TEXT NOT NULL,
        target_parameters_json TEXT NOT NULL,
        state                  TEXT NOT NULL,
        description_json       TEXT NOT NULL,
        progress_json          TEXT NOT NULL,
        updated_at             REAL NOT NULL
    ) STRICT
    """,
)

#: ``MIGRATIONS[n]`` takes the schema from version ``n`` to ``n + 1``.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2)

#: The schema version this code reads and writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: Created before anything else, so the version can be read on any file we accept.
CREATE_MIGRATIONS_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        applied_at REAL NOT NULL
    ) STRICT
"""

__all__ = (
    "APPLICATION_ID",
    "APPLICATION_SEQUENCE",
    "CREATE_MIGRATIONS_TABLE",
    "GENERATION",
    "MIGRATIONS",
    "MIN_SQLITE_VERSION",
    "SCHEMA_VERSION",
)
