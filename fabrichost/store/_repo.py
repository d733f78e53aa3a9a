"""The Store: one sqlite3 connection to the agent's state database, rows in and rows out.

Every write commits before it returns, or at the end of the :meth:`Store.transaction` it runs
in; the durability argument is in ``_schema.py``. Methods are synchronous and fast (one fsync
per commit), meant to be called on the agent's event loop right after a decision, with no
``await`` between the decision and its write. One thread at a time may use a Store.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Final

from fabrichost.errors import StoreError
from fabrichost.store import _schema
from fabrichost.store._errors import translate
from fabrichost.store._tables import StoreTables

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from types import TracebackType

logger = logging.getLogger(__name__)

#: Seconds a write waits for another process's write lock.
DEFAULT_BUSY_TIMEOUT: Final = 5.0


class Store(StoreTables):
    """The agent's durable state. Open it with :meth:`Store.open`; close it, or use ``with``.

    Example::

        with Store.open(state_dir / "state.db") as store:
            generation = store.next_generation()
            with store.transaction():
                store.add_application(app_row)
                store.add_service(service_row, partition_rows)

    Every method raises :class:`~fabrichost.errors.StoreError` (naming the operation and the
    file) when SQLite fails, and :class:`StoreConflict` when a key is taken.
    """

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Store:
        """Open the database at ``path``, creating or migrating it.

        The parent directory must exist. WAL, ``synchronous=FULL`` and foreign keys are set and
        checked. ``busy_timeout`` (seconds) is how long a write waits for another process's
        write lock before failing with StoreError. A file that is not a fabrichost state
        database, or one written by a newer fabrichost, is refused.
        """
        if sqlite3.sqlite_version_info < _schema.MIN_SQLITE_VERSION:
            raise StoreError(
                f"open: SQLite {sqlite3.sqlite_version} is too old for {path}; "
                f"the store needs {'.'.join(map(str, _schema.MIN_SQLITE_VERSION))} or later"
            )
        with translate(path, "open"):
            # isolation_level=None: sqlite3 must not open transactions behind our back; every
            # statement outside an explicit BEGIN commits on its own. check_same_thread=False:
            # the caller may move the store to a worker thread (one thread at a time).
            connection = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        store = cls(connection, path)
        try:
            with translate(path, "open"):
                store._configure(busy_timeout)
                store._migrate()
        except BaseException:
            connection.close()
            raise
        logger.debug("opened state store %s", path)
        return store

    def _configure(self, busy_timeout: float) -> None:
        conn = self._connection("open")
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        conn.execute("PRAGMA trusted_schema = OFF")  # the schema needs no SQL functions
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
        if app_id != _schema.APPLICATION_ID and (app_id != 0 or tables):
            raise StoreError(f"open: {self._path} is not a fabrichost state database")
        self._require("journal_mode = WAL", "journal_mode", "wal")
        self._require("synchronous = FULL", "synchronous", 2)
        self._require("foreign_keys = ON", "foreign_keys", 1)

    def _require(self, setting: str, pragma: str, expected: object) -> None:
        """Set a pragma and read it back: SQLite ignores some settings silently."""
        conn = self._connection("open")
        conn.execute(f"PRAGMA {setting}")
        actual = conn.execute(f"PRAGMA {pragma}").fetchone()[0]
        if actual != expected:
            raise StoreError(
                f"open: {self._path}: PRAGMA {pragma} is {actual!r}, the store needs {expected!r}"
            )

    def _schema_version(self) -> int:
        conn = self._connection("open")
        exists = conn.execute(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if exists is None:
            return 0
        sql = "SELECT coalesce(max(version), 0) FROM schema_migrations"
        return int(conn.execute(sql).fetchone()[0])

    def _migrate(self) -> None:
        # Read without a lock first: an up-to-date file (the common case) is opened without
        # waiting for another process's write transaction.
        if self._check_version() == _schema.SCHEMA_VERSION:
            return
        conn = self._connection("open")
        with self._begin("open (migrate)"):
            conn.execute(_schema.CREATE_MIGRATIONS_TABLE)
            # Read again under the write lock: another process may have migrated meanwhile.
            version = self._check_version()
            for index in range(version, _schema.SCHEMA_VERSION):
                for statement in _schema.MIGRATIONS[index]:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (index + 1, time.time()),
                )
                logger.info("state store %s migrated to schema %d", self._path, index + 1)
            conn.execute(f"PRAGMA application_id = {_schema.APPLICATION_ID}")

    def _check_version(self) -> int:
        version = self._schema_version()
        if version > _schema.SCHEMA_VERSION:
            raise StoreError(
                f"open: {self._path} has schema version {version}; this fabrichost reads "
                f"version {_schema.SCHEMA_VERSION} (written by a newer fabrichost?)"
            )
        return version

    def close(self) -> None:
        """Close the connection. Idempotent; any later call raises StoreError."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with translate(self._path, "close"):
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes: all of them commit at the end of the block, or none of them.

        ``BEGIN IMMEDIATE`` takes the write lock at once (waiting up to the busy timeout). An
        exception in the block (including cancellation) rolls back and propagates. Nesting is
        an error, and so is drawing a sequence number inside the block (see
        :meth:`next_generation`).
        """
        self._connection("transaction")
        if self._in_transaction:
            raise StoreError(f"transaction: a transaction is already open on {self._path}")
        with self._begin("transaction"):
            yield

    def next_generation(self) -> int:
        """Draw the next generation (fencing token): 1, 2, 3, ... never the same twice.

        One sequence serves every instance and replica, so a number is never reused, not even
        after the row that held it was deleted. The draw commits before it returns, so a crash
        cannot hand the same number out again; for that reason it refuses to run inside
        :meth:`transaction` (a rollback would give the number back). Draw first, then open the
        transaction; a number lost to a rollback is a harmless gap.
        """
        return self._next(_schema.GENERATION, "next_generation")

    def next_application_sequence(self) -> int:
        """Draw the next N for an application id ``<Type>_App<N>``; same rules as generations."""
        return self._next(_schema.APPLICATION_SEQUENCE, "next_application_sequence")

    def _next(self, sequence: str, operation: str) -> int:
        self._connection(operation)
        if self._in_transaction:
            raise StoreError(
                f"{operation}: cannot draw inside a transaction on {self._path}: a rollback "
                "would hand the same number out again; draw it before the transaction"
            )
        with self._begin(operation):
            rows = self._query(
                operation,
                "UPDATE sequences SET value = value + 1 WHERE name = ? RETURNING value",
                (sequence,),
            )
        if not rows:
            raise StoreError(f"{operation}: sequence {sequence!r} is missing in {self._path}")
        return int(rows[0][0])

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA integrity_check`` and ``foreign_key_check``; [] means the file is sound."""
        problems = [str(r[0]) for r in self._query("integrity_check", "PRAGMA integrity_check")]
        if problems == ["ok"]:
            problems = []
        for table, rowid, parent, _ in self._query("integrity_check", "PRAGMA foreign_key_check"):
            problems.append(f"{table} row {rowid} references a missing {parent} row")
        return problems


__all__ = ("DEFAULT_BUSY_TIMEOUT", "Store")
