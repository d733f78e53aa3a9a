"""SF's evaluation with default policies: worst of events and children, and why."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabrichost.agent._health import EntityReports, HealthClock, HealthInformation
from fabrichost.agent._health_eval import MAX_CHILD_EVALUATIONS, Child, Group, Health, evaluate
from fabrichost.protocol import HealthState

if TYPE_CHECKING:
    from fabrichost.agent._health import HealthEvent

OK, WARNING, ERROR = HealthState.OK, HealthState.WARNING, HealthState.ERROR


def _events(*infos: HealthInformation) -> list[HealthEvent]:
    reports, clock = EntityReports(), HealthClock()
    for info in infos:
        reports.report(info, clock)
    return reports.events(clock)


def _replica(rid: str, health: Health) -> Child:
    return Child("Replica", "replica", {"PartitionId": "p1", "ReplicaOrInstanceId": rid}, health)


def test_an_entity_with_ok_events_and_children_is_ok_without_evaluations() -> None:
    events = _events(HealthInformation("System.FM", "State", OK))
    group = Group("Replicas", "replicas", [_replica("1", Health(OK))])
    assert evaluate(events, [group]) == Health(OK)


def test_the_worst_own_event_makes_the_state_and_is_named() -> None:
    events = _events(
        HealthInformation("A", "x", WARNING), HealthInformation("B", "y", ERROR, "broken")
    )
    health = evaluate(events)
    assert health.state is ERROR
    (why,) = health.evaluations
    assert (why.kind, why.description) == ("Event", "Error event: SourceId='B', Property='y'.")
    assert why.event is not None
    assert why.event.info.description == "broken"


def test_one_unhealthy_child_of_three_makes_the_group_and_the_entity_unhealthy() -> None:
    leaf = evaluate(_events(HealthInformation("System.RA", "State", ERROR, "crashed")))
    replicas = [_replica("1", Health(OK)), _replica("2", leaf), _replica("3", Health(WARNING))]
    group = Group("Replicas", "replicas", replicas, {"MaxPercentUnhealthyReplicasPerPartition": 0})
    health = evaluate(_events(HealthInformation("System.FM", "State", OK)), [group])
    assert health.state is ERROR
    (replicas_eval,) = health.evaluations
    assert replicas_eval.kind == "Replicas"
    assert replicas_eval.description == (
        "Unhealthy replicas: 66% (2/3), MaxPercentUnhealthyReplicasPerPartition=0%."
    )
    assert replicas_eval.fields["TotalCount"] == 3
    # Only the worst children explain the group: replica 2, down to its event.
    (replica_eval,) = replicas_eval.children
    assert replica_eval.description == (
        "Unhealthy replica: PartitionId='p1', ReplicaOrInstanceId='2', "
        "AggregatedHealthState='Error'."
    )
    assert replica_eval.fields == {"PartitionId": "p1", "ReplicaOrInstanceId": "2"}
    (event_eval,) = replica_eval.children
    assert event_eval.kind == "Event"


def test_warnings_stay_warnings_and_events_and_groups_at_the_worst_state_are_listed() -> None:
    events = _events(HealthInformation("W", "x", WARNING))
    group = Group(
        "Services",
        "services",
        [Child("Service", "service", {"ServiceName": "fabric:/A/S"}, Health(WARNING))],
        {"ServiceTypeName": "T", "MaxPercentUnhealthyServices": 0},
    )
    health = evaluate(events, [group])
    assert health.state is WARNING
    assert [e.kind for e in health.evaluations] == ["Event", "Services"]
    assert health.evaluations[1].description == (
        "Unhealthy services: 100% (1/1), ServiceTypeName='T', MaxPercentUnhealthyServices=0%."
    )


def test_an_empty_group_is_healthy() -> None:
    assert evaluate([], [Group("Nodes", "nodes", [])]) == Health(OK)


def test_a_group_of_thousands_of_unhealthy_children_names_a_few_and_counts_all() -> None:
    leaf = evaluate(_events(HealthInformation("System.RA", "State", ERROR, "host closed")))
    replicas = [_replica(str(i), leaf) for i in range(4000)]
    health = evaluate([], [Group("Replicas", "replicas", replicas)])
    (group,) = health.evaluations
    assert group.description == "Unhealthy replicas: 100% (4000/4000)."
    assert group.fields["TotalCount"] == 4000
    assert [c.fields["ReplicaOrInstanceId"] for c in group.children] == [
        str(i) for i in range(MAX_CHILD_EVALUATIONS)
    ]
