"""Rows go in and come back equal; keys conflict; deletes cascade; updates are fenced."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, cast

import pytest

from fabrichost.errors import StoreError
from fabrichost.store import (
    InstanceRow,
    InstanceStatus,
    PartitionRow,
    ProcessRow,
    ReplicaRow,
    RequestRow,
    Store,
    StoreConflict,
)

from .helpers import app_type, application, partition, seed_application, service

if TYPE_CHECKING:
    from pathlib import Path


def instance(instance_id: str = "inst-1", generation: int = 7) -> InstanceRow:
    return InstanceRow(
        instance_id, "Counter", "fabric:/App1", "fabric:/App1/inst-1", InstanceStatus.PENDING,
        '{"n": 1}', None, None, generation, 100.0, 100.0, "req-1",
    )  # fmt: skip


def test_application_types_round_trip_in_key_order(store: Store) -> None:
    rows = [app_type("B", "2"), app_type("A", "2"), app_type("A", "1")]
    for row in rows:
        store.add_application_type(row)
    assert store.application_types() == sorted(rows, key=lambda r: (r.name, r.version))
    assert store.remove_application_type("A", "1")
    assert not store.remove_application_type("A", "1")
    assert [(r.name, r.version) for r in store.application_types()] == [("A", "2"), ("B", "2")]


def test_applications_round_trip(store: Store) -> None:
    seed_application(store, "fabric:/B", 2)
    seed_application(store, "fabric:/A", 1)
    assert store.applications() == [application("fabric:/A", 1), application("fabric:/B", 2)]
    assert store.remove_application("fabric:/A")
    assert not store.remove_application("fabric:/A")
    assert store.applications() == [application("fabric:/B", 2)]


def test_services_and_partitions_round_trip(store: Store) -> None:
    seed_application(store)
    ranged = [
        PartitionRow("p0", "fabric:/App1/R", 0, "UniformInt64Range", None, -(2**63), 0),
        PartitionRow("p1", "fabric:/App1/R", 1, "UniformInt64Range", None, 1, 2**63 - 1),
    ]
    named = [PartitionRow("n0", "fabric:/App1/N", 0, "Named", "east")]
    store.add_service(service("fabric:/App1/R"), ranged)
    store.add_service(service("fabric:/App1/N"), named)
    assert store.services() == [service("fabric:/App1/N"), service("fabric:/App1/R")]
    assert store.partitions("fabric:/App1/R") == ranged
    assert store.partitions() == named + ranged
    assert store.partitions("fabric:/nothing") == []


def test_replicas_round_trip_and_put_replaces(store: Store) -> None:
    seed_application(store)
    store.add_service(service(), [partition()])
    pid = partition().id
    store.put_replica(ReplicaRow(2, pid, "_Node_1", "ActiveSecondary", "", 4))
    store.put_replica(ReplicaRow(1, pid, "_Node_0", "Primary", "act-guid", 3))
    store.put_replica(ReplicaRow(2, pid, "_Node_2", "Primary", "", 5))
    assert store.replicas() == [
        ReplicaRow(1, pid, "_Node_0", "Primary", "act-guid", 3),
        ReplicaRow(2, pid, "_Node_2", "Primary", "", 5),
    ]
    assert store.remove_replica(1)
    assert not store.remove_replica(1)
    assert [r.id for r in store.replicas()] == [2]


def test_a_replica_of_an_unknown_partition_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="partition 'nope' does not exist"):
        store.put_replica(ReplicaRow(1, "nope", "_Node_0", "Primary", "", 1))


def test_nodes_round_trip(store: Store) -> None:
    store.set_node("_Node_1", True)
    store.set_node("_Node_0", True)
    store.set_node("_Node_1", False)
    assert store.nodes() == {"_Node_0": True, "_Node_1": False}
    assert list(store.nodes()) == ["_Node_0", "_Node_1"]


def test_processes_round_trip_record_replaces_and_forget(store: Store) -> None:
    first = ProcessRow("_Node_0", "fabric:/App1", "Pkg", "", "Code", 1234, 1.7e9 + 0.25, "/l", 1)
    again = ProcessRow("_Node_0", "fabric:/App1", "Pkg", "", "Code", 4321, 1.7e9 + 9.5, "/l", 2)
    other = ProcessRow("_Node_0", "fabric:/App1", "Pkg", "guid", "Code", 99, 1.0, "/m", 3)
    store.record_process(first)
    store.record_process(other)
    store.record_process(again)
    assert store.processes() == [again, other]
    assert store.forget_process(*again.key)
    assert not store.forget_process(*again.key)
    assert store.processes() == [other]


def test_requests_round_trip_and_a_second_record_conflicts(store: Store) -> None:
    row = RequestRow("req-1", "CreateApplication", "fabric:/App1", "h1", '{"ok": true}', 5.0)
    assert store.find_request("req-1") is None
    store.record_request(row)
    assert store.find_request("req-1") == row
    with pytest.raises(StoreConflict, match="request_id='req-1'") as caught:
        store.record_request(RequestRow("req-1", "CreateService", "x", "h2", "{}", 6.0))
    assert caught.value.key == "request_id='req-1'"
    assert store.find_request("req-1") == row


def test_old_requests_can_be_forgotten(store: Store) -> None:
    for i in range(4):
        store.record_request(RequestRow(f"r{i}", "k", "t", "h", "{}", float(i)))
    assert store.forget_requests_before(2.0) == 2
    assert store.find_request("r1") is None
    assert store.find_request("r2") is not None


def test_instances_round_trip(store: Store) -> None:
    rows = [instance("b", 2), instance("a", 1)]
    for row in rows:
        store.add_instance(row)
    assert store.get_instance("a") == rows[1]
    assert store.get_instance("zzz") is None
    assert store.instances() == [rows[1], rows[0]]  # by created_at, then id
    assert isinstance(store.instances()[0].status, InstanceStatus)
    assert store.remove_instance("a")
    assert not store.remove_instance("a")
    assert store.instances() == [rows[0]]


def test_an_instance_id_that_exists_conflicts(store: Store) -> None:
    store.add_instance(instance("inst-1"))
    with pytest.raises(StoreConflict, match="instance_id='inst-1' already exists"):
        store.add_instance(instance("inst-1", generation=99))
    assert store.get_instance("inst-1") == instance("inst-1")


def test_update_instance_changes_only_what_it_is_given(store: Store) -> None:
    store.add_instance(instance(generation=7))
    assert store.update_instance("inst-1", 7, status=InstanceStatus.RUNNING, updated_at=101.0)
    assert store.update_instance(
        "inst-1", 7, status=InstanceStatus.COMPLETED, output_json="42", updated_at=102.0
    )
    got = store.get_instance("inst-1")
    assert got is not None
    assert (got.status, got.output_json, got.error) == ("Completed", "42", None)
    assert got.updated_at == 102.0
    assert store.update_instance("inst-1", 7, output_json=None, error="boom", updated_at=103.0)
    got = store.get_instance("inst-1")
    assert got is not None
    assert (got.status, got.output_json, got.error) == ("Completed", None, "boom")


def test_update_instance_with_a_stale_generation_changes_nothing(store: Store) -> None:
    store.add_instance(instance(generation=7))
    before = store.get_instance("inst-1")
    for stale in (6, 8, 0, -1):
        assert not store.update_instance(
            "inst-1", stale, status=InstanceStatus.FAILED, error="stale", updated_at=999.0
        )
    assert store.get_instance("inst-1") == before
    assert not store.update_instance("gone", 7, status=InstanceStatus.RUNNING)


def test_update_instance_defaults_updated_at_to_now(store: Store) -> None:
    store.add_instance(instance(generation=1))
    assert store.update_instance("inst-1", 1)
    got = store.get_instance("inst-1")
    assert got is not None
    assert got.updated_at > 1e9


def test_deleting_an_application_cascades_to_services_partitions_and_replicas(
    store: Store,
) -> None:
    seed_application(store, "fabric:/App1", 1)
    seed_application(store, "fabric:/App2", 2)
    store.add_service(service("fabric:/App1/A"), [partition("fabric:/App1/A", i) for i in range(3)])
    store.add_service(service("fabric:/App2/B", "fabric:/App2"), [partition("fabric:/App2/B")])
    for i, part in enumerate(store.partitions()):
        store.put_replica(ReplicaRow(i, part.id, "_Node_0", "Primary", "", i))
    assert store.remove_application("fabric:/App1")
    assert [s.name for s in store.services()] == ["fabric:/App2/B"]
    assert [p.service for p in store.partitions()] == ["fabric:/App2/B"]
    assert [r.partition_id for r in store.replicas()] == ["fabric:/App2/B#0"]
    assert store.integrity_check() == []


def test_deleting_a_service_cascades_to_its_partitions_and_replicas(store: Store) -> None:
    seed_application(store)
    store.add_service(service("fabric:/App1/A"), [partition("fabric:/App1/A")])
    store.add_service(service("fabric:/App1/B"), [partition("fabric:/App1/B")])
    store.put_replica(ReplicaRow(1, "fabric:/App1/A#0", "_Node_0", "Primary", "", 1))
    store.put_replica(ReplicaRow(2, "fabric:/App1/B#0", "_Node_0", "Primary", "", 2))
    assert store.remove_service("fabric:/App1/A")
    assert not store.remove_service("fabric:/App1/A")
    assert [r.id for r in store.replicas()] == [2]
    assert store.applications() == [application()]


@pytest.mark.parametrize(
    ("second", "key"),
    [
        (application("fabric:/App1", 2), "name='fabric:/App1'"),
        (application("fabric:/Other", 1), "application_id='MyAppType_App1'"),
    ],
)
def test_a_taken_application_name_or_id_conflicts_naming_the_key(
    store: Store, second: object, key: str
) -> None:
    seed_application(store)
    assert isinstance(second, type(application()))
    with pytest.raises(StoreConflict) as caught:
        store.add_application(second)
    assert caught.value.key == key
    assert key in str(caught.value)
    assert str(store.path) in str(caught.value)
    assert store.applications() == [application()]


def test_a_taken_application_type_conflicts(store: Store) -> None:
    store.add_application_type(app_type())
    with pytest.raises(StoreConflict, match=r"name='MyAppType', version='1\.0\.0'"):
        store.add_application_type(app_type())


def test_a_type_in_use_cannot_be_removed(store: Store) -> None:
    seed_application(store)
    with pytest.raises(StoreConflict, match="used by 'fabric:/App1'"):
        store.remove_application_type("MyAppType", "1.0.0")
    assert store.application_types() == [app_type()]


def test_an_application_of_an_unknown_type_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match=r"type 'MyAppType' version '1\.0\.0' is unknown"):
        store.add_application(application())


def test_a_taken_service_name_conflicts_and_adds_no_partitions(store: Store) -> None:
    seed_application(store)
    store.add_service(service(), [partition()])
    with pytest.raises(StoreConflict, match="name='fabric:/App1/Svc'"):
        store.add_service(service(), [PartitionRow("fresh", "fabric:/App1/Svc", 5, "Singleton")])
    assert [p.id for p in store.partitions()] == [partition().id]


def test_a_service_whose_partition_conflicts_is_not_added_at_all(store: Store) -> None:
    seed_application(store)
    store.add_service(service("fabric:/App1/A"), [PartitionRow("p", "fabric:/App1/A", 0, "S")])
    with pytest.raises(StoreConflict, match="id='p'"):
        store.add_service(
            service("fabric:/App1/B"),
            [
                PartitionRow("q", "fabric:/App1/B", 0, "S"),
                PartitionRow("p", "fabric:/App1/B", 1, "S"),
            ],
        )
    assert [s.name for s in store.services()] == ["fabric:/App1/A"]
    assert [p.id for p in store.partitions()] == ["p"]


def test_a_service_of_an_unknown_application_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="application 'fabric:/App1' does not exist"):
        store.add_service(service(), [partition()])


def test_a_partition_of_another_service_is_refused(store: Store) -> None:
    seed_application(store)
    with pytest.raises(StoreError, match="do not belong"):
        store.add_service(service(), [partition("fabric:/App1/Other")])
    assert store.services() == []


def test_values_sqlite_cannot_hold_raise_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="cannot be stored"):
        store.add_instance(instance(generation=2**64))
    with pytest.raises(StoreError, match="cannot be stored"):
        store.record_request(RequestRow("\udcff", "k", "t", "h", "{}", 1.0))
    with pytest.raises(StoreError, match="CHECK constraint failed"):
        store.add_instance(replace(instance(), status=cast("InstanceStatus", "Bogus")))


def test_a_closed_store_refuses_every_call(db_path: Path) -> None:
    store = Store.open(db_path)
    store.close()
    store.close()  # idempotent
    assert store.closed
    with pytest.raises(StoreError, match="is closed"):
        store.applications()
    with pytest.raises(StoreError, match="is closed"):
        store.next_generation()
    with pytest.raises(StoreError, match="is closed"), store.transaction():
        pass
