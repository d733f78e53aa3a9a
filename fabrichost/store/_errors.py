"""How the store turns sqlite3's exceptions into fabrichost's.

Every failure leaves the store as a :class:`~fabrichost.errors.StoreError` that names the
operation and the database file, with the sqlite3 exception as its ``__cause__``. A uniqueness
violation becomes the subclass :class:`StoreConflict`, which names the key that is taken, so
the agent can answer Service Fabric's "name already exists" without a second query.
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

from fabrichost.errors import StoreError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path


class StoreConflict(StoreError):
    """A row with the same key exists already; ``key`` names it, e.g. ``name='fabric:/App1'``.

    Also raised when a row cannot be removed because others still use it (an application type
    that applications were created from).
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


# sqlite3 exposes the extended result code's name since Python 3.11; it tells a uniqueness
# violation from a foreign-key or CHECK failure without parsing the English message.
_UNIQUE_CODES = frozenset({"SQLITE_CONSTRAINT_PRIMARYKEY", "SQLITE_CONSTRAINT_UNIQUE"})
_FOREIGN_KEY_CODE = "SQLITE_CONSTRAINT_FOREIGNKEY"

# The exceptions sqlite3 raises for values it cannot bind: an int beyond int64, a str with
# lone surrogates. They are bad input to the store, reported like its other failures.
_BIND_ERRORS = (OverflowError, UnicodeEncodeError)


def _failed_columns(exc: sqlite3.IntegrityError) -> list[str]:
    """The columns of "UNIQUE constraint failed: applications.name, ..." without their table."""
    _, _, columns = str(exc).partition("failed: ")
    return [column.rpartition(".")[2].strip() for column in columns.split(",") if column.strip()]


def _describe_key(exc: sqlite3.IntegrityError, keys: Mapping[str, object]) -> str:
    values = {column: keys[column] for column in _failed_columns(exc) if column in keys}
    return ", ".join(f"{column}={value!r}" for column, value in (values or keys).items())


@contextlib.contextmanager
def translate(
    path: Path,
    operation: str,
    *,
    noun: str = "row",
    keys: Mapping[str, object] | None = None,
    missing: str = "",
) -> Iterator[None]:
    """Translate sqlite3 failures inside the block into StoreError and StoreConflict.

    Args:
        path: the database file, named in every message.
        operation: what was being done, e.g. ``"add_application"``.
        noun: what the row is, for conflict messages (``"an application"``).
        keys: column -> value of the row's unique columns, to name the one that is taken.
        missing: what a foreign-key failure means here (``"application 'x' does not exist"``).
    """
    try:
        yield
    except sqlite3.IntegrityError as exc:
        code = exc.sqlite_errorname
        if code in _UNIQUE_CODES:
            key = _describe_key(exc, keys or {})
            raise StoreConflict(
                f"{operation}: {noun} with {key} already exists ({exc}) in {path}", key=key
            ) from exc
        if code == _FOREIGN_KEY_CODE and missing:
            raise StoreError(f"{operation}: {missing} in {path}") from exc
        raise StoreError(f"{operation} failed on {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{operation} failed on {path}: {exc}") from exc
    except _BIND_ERRORS as exc:
        raise StoreError(f"{operation}: a value cannot be stored in {path}: {exc}") from exc


__all__ = ("StoreConflict", "translate")
