"""`fabrichost health [ENTITY NAME...]`: an entity's aggregated health, its events and why.

fabrichost health                              # the cluster
fabrichost health app fabric:/App1
fabrichost health service fabric:/App1/Web
fabrichost health partition PARTITION_ID
fabrichost health replica PARTITION_ID REPLICA_ID
fabrichost health node _Node_1
fabrichost health deployed-app _Node_0 fabric:/App1
fabrichost health package _Node_0 fabric:/App1 WebPkg
"""

from __future__ import annotations

import json
from typing import Any, Final

import click

from fabrichost.cli._group import cli
from fabrichost.cli._output import client_for, json_option, state_dir_option
from fabrichost.client import HEALTH_ENTITIES

ALIASES: Final = {
    "app": "application",
    "deployed-app": "deployed-application",
    "package": "service-package",
}
# The child lists of each entity's JSON, and the field naming each child in them.
_CHILD_LISTS: Final = {
    "NodeHealthStates": ("Nodes", "Name"),
    "ApplicationHealthStates": ("Applications", "Name"),
    "ServiceHealthStates": ("Services", "ServiceName"),
    "PartitionHealthStates": ("Partitions", "PartitionId"),
    "ReplicaHealthStates": ("Replicas", "ReplicaId"),
    "DeployedApplicationHealthStates": ("Deployed on", "NodeName"),
    "DeployedServicePackageHealthStates": ("Service packages", "ServiceManifestName"),
}
_FILTERS: Final = {"all": 0, "ok": 2, "warning": 4, "error": 8, "unhealthy": 12}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _event_line(event: dict[str, Any]) -> str:
    expired = " (expired)" if event.get("IsExpired") else ""
    head = f"{event['HealthState']:<8}{event['SourceId']}  {event['Property']}{expired}"
    description = event.get("Description") or ""
    return head + ("\n" + _indent(description, " " * 10) if description else "")


def _evaluation_lines(wrappers: list[dict[str, Any]], depth: int) -> list[str]:
    lines = []
    for wrapper in wrappers:
        evaluation = wrapper["HealthEvaluation"]
        pad = "  " * depth
        lines.append(f"{pad}{evaluation['AggregatedHealthState']:<8}{evaluation['Description']}")
        description = (evaluation.get("UnhealthyEvent") or {}).get("Description")
        if description:
            lines.append(_indent(description, pad + " " * 10))
        lines += _evaluation_lines(evaluation.get("UnhealthyEvaluations", []), depth + 1)
    return lines


def render_health(title: str, health: dict[str, Any]) -> str:
    """An entity's health JSON as text: its state, its children, events and evaluations."""
    lines = [f"{title}: {health['AggregatedHealthState']}"]
    for key, (label, name_field) in _CHILD_LISTS.items():
        children = health.get(key)
        if children:
            states = ", ".join(
                f"{c.get(name_field) or c.get('InstanceId', '?')} {c['AggregatedHealthState']}"
                for c in children
            )
            lines.append(f"{label}: {states}")
    events = health.get("HealthEvents", [])
    lines.append("Events:" if events else "Events: (none)")
    lines += [_indent(_event_line(e), "  ") for e in events]
    if health.get("UnhealthyEvaluations"):
        lines.append("Unhealthy evaluations:")
        lines += _evaluation_lines(health["UnhealthyEvaluations"], 1)
    return "\n".join(lines)


@cli.command("health")
@click.argument("entity", required=False, default="cluster")
@click.argument("names", nargs=-1)
@click.option(
    "--events",
    "events",
    type=click.Choice(sorted(_FILTERS)),
    default="all",
    show_default=True,
    help="Which events to show.",
)
@state_dir_option
@json_option
def health(
    entity: str, names: tuple[str, ...], events: str, state_dir: str | None, as_json: bool
) -> None:
    """The aggregated health of ENTITY (default: the cluster), its events and, when it is not
    Ok, the evaluations that say why.

    ENTITY is cluster, node NAME, app NAME, service NAME, partition ID, replica PARTITION_ID ID,
    deployed-app NODE APP or package NODE APP SERVICE_MANIFEST.
    """
    kind = ALIASES.get(entity, entity)
    wanted = HEALTH_ENTITIES.get(kind)
    if wanted is None:
        choices = ", ".join(sorted({*HEALTH_ENTITIES, *ALIASES}))
        raise click.UsageError(f"unknown entity {entity!r}; one of: {choices}")
    if len(names) != wanted:
        raise click.UsageError(f"{entity} takes {wanted} name(s), got {len(names)}")
    with client_for(state_dir) as client:
        answer = client.health(kind, *names, events_filter=_FILTERS[events])
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    title = "Cluster" if kind == "cluster" else f"{kind.capitalize()} {' '.join(names)}"
    click.echo(render_health(title, answer))
