"""The connection core under :class:`~fabrichost.store.Store`: transactions and statements.

Strategy: the connection runs in autocommit mode (``isolation_level=None``), so a lone
statement commits by itself and sqlite3 never opens a transaction we did not ask for. A write
of several statements runs in ``BEGIN IMMEDIATE ... COMMIT``; the same write inside the
caller's :meth:`Store.transaction` runs in a SAVEPOINT instead, so that it is still all or
nothing while the caller's transaction decides the commit.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from typing import TYPE_CHECKING

from fabrichost.errors import StoreError
from fabrichost.store._errors import translate

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

logger = logging.getLogger(__name__)

Params = tuple[object, ...]


class Database:
    """One connection, its path, and whether a transaction is open on it."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        connection.row_factory = sqlite3.Row
        self._conn: sqlite3.Connection | None = connection
        self._path = path
        self._in_transaction = False

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._conn is None

    def _connection(self, operation: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{operation}: the store {self._path} is closed")
        return self._conn

    @contextlib.contextmanager
    def _begin(self, operation: str) -> Iterator[None]:
        """``BEGIN IMMEDIATE``, then COMMIT, or ROLLBACK if the block raises."""
        conn = self._connection(operation)
        with translate(self._path, f"{operation} (begin)"):
            conn.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._rollback_quietly(conn, operation)
            raise
        else:
            try:
                with translate(self._path, f"{operation} (commit)"):
                    conn.execute("COMMIT")
            except StoreError:
                self._rollback_quietly(conn, operation)
                raise
        finally:
            self._in_transaction = False

    @contextlib.contextmanager
    def _atomic(self, operation: str) -> Iterator[None]:
        """All or nothing: its own transaction, or a savepoint inside the caller's."""
        if not self._in_transaction:
            with self._begin(operation):
                yield
            return
        conn = self._connection(operation)
        with translate(self._path, operation):
            conn.execute("SAVEPOINT store_write")
        try:
            yield
        except BaseException:
            # SQLite may already have rolled the whole transaction back (disk full, I/O error);
            # then there is no savepoint left to return to.
            if conn.in_transaction:
                with translate(self._path, operation):
                    conn.execute("ROLLBACK TO store_write")
                    conn.execute("RELEASE store_write")
            raise
        with translate(self._path, operation):
            conn.execute("RELEASE store_write")

    def _rollback_quietly(self, conn: sqlite3.Connection, operation: str) -> None:
        # Never let a failed ROLLBACK hide the exception that caused it. SQLite may have rolled
        # back already (disk full, I/O error), and the store may have been closed meanwhile.
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            logger.exception("%s: rollback failed on %s", operation, self._path)

    def _query(self, operation: str, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        conn = self._connection(operation)
        with translate(self._path, operation):
            return conn.execute(sql, params).fetchall()

    def _execute(
        self,
        operation: str,
        sql: str,
        params: Params = (),
        *,
        noun: str = "row",
        keys: Mapping[str, object] | None = None,
        missing: str = "",
    ) -> int:
        """Run one statement; return how many rows it changed."""
        conn = self._connection(operation)
        with translate(self._path, operation, noun=noun, keys=keys, missing=missing):
            return conn.execute(sql, params).rowcount


__all__ = ("Database", "Params")
