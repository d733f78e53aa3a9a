"""Opening, migrating, transactions and sequences; the package's public surface."""

from __future__ import annotations

import ast
import sqlite3
import sys
from pathlib import Path
from types import ModuleType

import pytest

import fabrichost.store
from fabrichost.errors import StoreError
from fabrichost.store import (
    SCHEMA_VERSION,
    InstanceRow,
    InstanceStatus,
    ReplicaRow,
    Store,
    _schema,
)

from .helpers import application, partition, seed_application, service


def test_all_is_a_tuple_naming_exactly_the_public_names() -> None:
    exported = fabrichost.store.__all__
    assert isinstance(exported, tuple)
    assert len(set(exported)) == len(exported)
    public = {
        name
        for name, value in vars(fabrichost.store).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public - {"annotations"} == set(exported)


def test_open_sets_wal_full_sync_and_foreign_keys(db_path: Path, store: Store) -> None:
    del store
    # Journal mode is recorded in the file; a fresh connection sees WAL without asking.
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA application_id").fetchone()[0] == _schema.APPLICATION_ID
        versions = raw.execute("SELECT version FROM schema_migrations").fetchall()
    raw.close()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]


def test_reopening_keeps_everything_and_does_not_migrate_again(db_path: Path) -> None:
    with Store.open(db_path) as store:
        seed_application(store)
    with Store.open(db_path) as store:
        assert store.applications() == [application()]
        assert store.integrity_check() == []


def test_a_file_from_a_newer_fabrichost_is_refused(db_path: Path) -> None:
    Store.open(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("INSERT INTO schema_migrations VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    raw.close()
    with pytest.raises(StoreError, match="newer fabrichost"):
        Store.open(db_path)


def test_a_foreign_sqlite_file_is_refused_untouched(db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute("CREATE TABLE mine (x)")
    raw.close()
    with pytest.raises(StoreError, match="not a fabrichost state database"):
        Store.open(db_path)
    with sqlite3.connect(db_path) as raw:
        tables = raw.execute("SELECT name FROM sqlite_schema").fetchall()
    raw.close()
    assert tables == [("mine",)]


def test_a_file_that_is_not_a_database_is_refused(db_path: Path) -> None:
    db_path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StoreError, match=r"open failed on .*state\.db"):
        Store.open(db_path)


def test_a_missing_directory_is_an_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "state.db"
    with pytest.raises(StoreError, match=r"no/such/state\.db") as caught:
        Store.open(missing)
    assert isinstance(caught.value.__cause__, sqlite3.Error)


def test_a_transaction_commits_all_its_writes(db_path: Path) -> None:
    with Store.open(db_path) as store, store.transaction():
        seed_application(store)
        store.add_service(service(), [partition()])
        store.put_replica(ReplicaRow(1, partition().id, "_Node_0", "Primary", "", 1))
    with Store.open(db_path) as store:
        assert len(store.replicas()) == 1


def test_an_exception_rolls_the_whole_transaction_back(db_path: Path) -> None:
    with Store.open(db_path) as store:
        store.set_node("_Node_0", True)

        def change_then_fail() -> None:
            with store.transaction():
                seed_application(store)
                store.add_service(service(), [partition()])
                store.set_node("_Node_0", False)
                raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError, match="changed my mind"):
            change_then_fail()
        assert store.applications() == []
        assert store.services() == []
        assert store.nodes() == {"_Node_0": True}
        store.set_node("_Node_1", True)  # the connection is usable afterwards
    with Store.open(db_path) as store:
        assert store.application_types() == []
        assert store.nodes() == {"_Node_0": True, "_Node_1": True}


def test_a_conflict_caught_inside_a_transaction_keeps_the_other_writes(store: Store) -> None:
    seed_application(store)
    store.add_service(service("fabric:/App1/A"), [partition("fabric:/App1/A")])
    with store.transaction():
        store.set_node("_Node_0", True)
        with pytest.raises(StoreError):
            store.add_service(service("fabric:/App1/B"), [partition("fabric:/App1/A")])
        store.add_service(service("fabric:/App1/C"), [partition("fabric:/App1/C")])
    assert [s.name for s in store.services()] == ["fabric:/App1/A", "fabric:/App1/C"]
    assert store.nodes() == {"_Node_0": True}


def test_nested_transactions_are_an_error(store: Store) -> None:
    with store.transaction():
        store.set_node("_Node_0", True)
        with pytest.raises(StoreError, match="already open"), store.transaction():
            pass
    assert store.nodes() == {"_Node_0": True}


def test_sequences_cannot_be_drawn_inside_a_transaction(store: Store) -> None:
    with store.transaction():
        with pytest.raises(StoreError, match="before the transaction"):
            store.next_generation()
        with pytest.raises(StoreError, match="before the transaction"):
            store.next_application_sequence()


def test_generations_increase_across_reopen_and_deletes(db_path: Path) -> None:
    drawn: list[int] = []
    for _ in range(3):
        with Store.open(db_path) as store:
            for _ in range(5):
                generation = store.next_generation()
                drawn.append(generation)
                store.add_instance(
                    InstanceRow(
                        f"i{generation}", "F", "fabric:/A", "fabric:/A/S", InstanceStatus.PENDING,
                        "null", None, None, generation, 1.0, 1.0,
                    )
                )  # fmt: skip
            for row in store.instances():
                store.remove_instance(row.instance_id)
            store.close()
    assert drawn == list(range(1, 16))


def test_a_rolled_back_transaction_does_not_give_a_generation_back(store: Store) -> None:
    first = store.next_generation()

    def write_then_fail() -> None:
        with store.transaction():
            store.set_node("_Node_0", True)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        write_then_fail()
    assert store.nodes() == {}
    assert store.next_generation() == first + 1


def test_application_sequence_is_separate_and_never_repeats(db_path: Path) -> None:
    with Store.open(db_path) as store:
        assert [store.next_application_sequence() for _ in range(3)] == [1, 2, 3]
        assert store.next_generation() == 1
    with Store.open(db_path) as store:
        assert store.next_application_sequence() == 4


def test_integrity_check_reports_a_dangling_reference(db_path: Path) -> None:
    with Store.open(db_path) as store:
        seed_application(store)
        store.add_service(service(), [partition()])
    with sqlite3.connect(db_path) as raw:  # foreign keys are off on a plain connection
        raw.execute("DELETE FROM applications")
    raw.close()
    with Store.open(db_path) as store:
        assert store.integrity_check() == ["services row 1 references a missing applications row"]


def test_cancellation_inside_a_transaction_rolls_it_back(store: Store) -> None:
    class Cancelled(BaseException):
        pass

    def cancelled_midway() -> None:
        with store.transaction():
            store.set_node("_Node_0", True)
            raise Cancelled

    with pytest.raises(Cancelled):
        cancelled_midway()
    assert store.nodes() == {}
    with store.transaction():  # and the store is usable again
        store.set_node("_Node_1", True)
    assert store.nodes() == {"_Node_1": True}


def test_closing_inside_a_transaction_loses_its_writes_and_says_so(db_path: Path) -> None:
    store = Store.open(db_path)

    def close_midway() -> None:
        with store.transaction():
            store.set_node("_Node_0", True)
            store.close()

    with pytest.raises(StoreError, match=r"commit.*closed database"):
        close_midway()
    with Store.open(db_path) as reopened:
        assert reopened.nodes() == {}


def test_the_store_imports_only_the_standard_library_errors_and_the_wire() -> None:
    """The store sits low: the standard library, the errors, and the wire's vocabulary (the
    instance statuses its rows hold), nothing of the agent or third parties."""
    package = Path(fabrichost.store.__file__).parent
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert (
                    name.startswith(("fabrichost.errors", "fabrichost.store", "fabrichost.wire"))
                    or top in sys.stdlib_module_names
                    or top in {"__future__", "_typeshed"}
                ), f"{path.name} imports {name}"
