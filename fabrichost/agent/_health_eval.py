"""Aggregated health as Service Fabric evaluates it with the default policies: pure, no IO.

Use :func:`evaluate` with an entity's events and its groups of children (each child already
evaluated)::

    replica = evaluate(events, [])
    partition = evaluate(partition_events, [children_group("Replicas", "replicas", replicas,
                                                           MaxPercentUnhealthyReplicasPerPartition=0)])
    partition.state, partition.evaluations

The default policies tolerate no unhealthy child (every ``MaxPercentUnhealthy...`` is 0) and do
not treat warnings as errors, so an entity is the worst of its own events and of its children.
The unhealthy evaluations say why, as SF nests them: an entity's are its worst events
(``Event``) and its worst groups (``Replicas``, ``Services``, ...), and a group lists its worst
children (``Replica``, ``Service``, ...), each with the evaluations that made it unhealthy, down to
the event at the bottom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from fabrichost.agent._health import worst
from fabrichost.protocol import HealthState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from fabrichost.agent._health import HealthEvent

Fields = dict[str, str | int | bool]

#: The most children a group's evaluation lists. Its Description keeps the whole count ("100%
#: (4000/4000)"); the children are the examples of why, so a failure of thousands of replicas
#: stays one readable answer (`fabrichost health`, sfctl) instead of thousands of entries.
MAX_CHILD_EVALUATIONS: Final = 10


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One of SF's HealthEvaluation kinds: ``kind`` (``Event``, ``Replicas``, ``Replica`` ...),
    its state, SF's ``Description`` text, the kind's own fields (``TotalCount``, ``NodeName``
    ...), the event it is about (``Event`` only) and the evaluations below it."""

    kind: str
    state: HealthState
    description: str
    fields: Fields = field(default_factory=dict)
    event: HealthEvent | None = None
    children: tuple[Evaluation, ...] = ()


@dataclass(frozen=True, slots=True)
class Health:
    """An entity's aggregated state and why (empty ``evaluations`` when Ok)."""

    state: HealthState
    evaluations: tuple[Evaluation, ...] = ()


@dataclass(frozen=True, slots=True)
class Child:
    """A child entity, evaluated: how it is named in a description and in its evaluation's
    fields (``{"ServiceName": "fabric:/App/Svc"}``), and its health."""

    kind: str  # SF's singular evaluation kind: Replica, Partition, Service, Node ...
    noun: str  # how SF's description names one: "replica", "deployed service package" ...
    ident: Mapping[str, str]
    health: Health


@dataclass(frozen=True, slots=True)
class Group:
    """The children of one kind, with the evaluation kind of the group and its policy fields."""

    kind: str  # Replicas, Partitions, Services, Nodes, Applications, DeployedApplications ...
    noun: str  # "replicas", "deployed applications" ...
    children: Sequence[Child]
    fields: Fields = field(default_factory=dict)


def event_evaluation(event: HealthEvent) -> Evaluation:
    state = event.state
    expired = " The report expired." if event.is_expired else ""
    return Evaluation(
        "Event",
        state,
        f"{state.value} event: SourceId='{event.info.source_id}', "
        f"Property='{event.info.property}'.{expired}",
        {"ConsiderWarningAsError": False},
        event=event,
    )


# Identity fields that are not part of a child's evaluation (the *HealthStates lists use them):
# the kind of a replica; the activation id of a SharedProcess package, which is empty.
_NOT_NAMES: Final = frozenset({"ServiceKind"})


def _child_evaluation(child: Child) -> Evaluation:
    ident: Fields = {
        k: v
        for k, v in child.ident.items()
        if k not in _NOT_NAMES and (v or k != "ServicePackageActivationId")
    }
    names = ", ".join(f"{key}='{value}'" for key, value in ident.items())
    return Evaluation(
        child.kind,
        child.health.state,
        f"Unhealthy {child.noun}: {names}, AggregatedHealthState='{child.health.state.value}'.",
        ident,
        children=child.health.evaluations,
    )


def group_evaluation(group: Group) -> Evaluation | None:
    """The group's evaluation, or None when every child is Ok."""
    state = worst(c.health.state for c in group.children)
    if state is HealthState.OK:
        return None
    unhealthy = [c for c in group.children if c.health.state is not HealthState.OK]
    total = len(group.children)
    percent = len(unhealthy) * 100 // total
    policy = "".join(f", {k}={v}%" for k, v in group.fields.items() if k.startswith("MaxPercent"))
    extra = "".join(
        f", {k}='{v}'" for k, v in group.fields.items() if not k.startswith("MaxPercent")
    )
    return Evaluation(
        group.kind,
        state,
        f"Unhealthy {group.noun}: {percent}% ({len(unhealthy)}/{total}){extra}{policy}.",
        {**group.fields, "TotalCount": total},
        # The children that made the group what it is: the worst ones, the first few of them.
        children=tuple(_child_evaluation(c) for c in unhealthy if c.health.state is state)[
            :MAX_CHILD_EVALUATIONS
        ],
    )


def evaluate(events: Sequence[HealthEvent], groups: Sequence[Group] = ()) -> Health:
    """The entity's health: the worst of its events and its children, and why."""
    own = worst(e.state for e in events)
    found = [g for g in (group_evaluation(g) for g in groups) if g is not None]
    state = worst([own, *(g.state for g in found)])
    if state is HealthState.OK:
        return Health(state)
    evaluations = [event_evaluation(e) for e in events if e.state is state]
    evaluations += [g for g in found if g.state is state]
    return Health(state, tuple(evaluations))


def counts(states: Sequence[HealthState]) -> dict[str, int]:
    """SF's HealthStateCount of ``states``."""
    return {
        "OkCount": sum(1 for s in states if s is HealthState.OK),
        "WarningCount": sum(1 for s in states if s is HealthState.WARNING),
        "ErrorCount": sum(1 for s in states if s is HealthState.ERROR),
    }
