"""Health queries and reports: the part of :class:`FabricClient` that speaks Service Fabric's
``GetHealth`` and ``ReportHealth`` routes.

An entity is named by its kind and its names, as the CLI's ``fabrichost health`` names it::

    client.health("cluster")
    client.health("application", "fabric:/App1", events_filter=8)   # Error events only
    client.health("replica", partition_id, replica_id)
    client.report_health("service", "fabric:/App1/Web", source_id="Watchdog",
                         property="Latency", state="Warning", ttl=30.0)

Answers are SF's JSON (``ClusterHealth``, ``ServiceHealth`` ...); a report's ``ttl`` is seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fabrichost.wire import name_to_id

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The entity kinds and how many names each takes.
HEALTH_ENTITIES: Final = {
    "cluster": 0,
    "node": 1,
    "application": 1,
    "service": 1,
    "partition": 1,
    "replica": 2,
    "deployed-application": 2,
    "service-package": 3,
}


def health_path(kind: str, *names: str) -> str:
    """The path an entity's ``GetHealth``/``ReportHealth`` hangs under (``/Nodes/_Node_0``)."""
    wanted = HEALTH_ENTITIES.get(kind)
    if wanted is None:
        raise ValueError(f"unknown entity kind {kind!r}: one of {', '.join(HEALTH_ENTITIES)}")
    if len(names) != wanted:
        raise ValueError(f"a {kind} is named by {wanted} name(s), not {len(names)}")
    if kind == "node":
        return f"/Nodes/{names[0]}"
    if kind == "application":
        return f"/Applications/{name_to_id(names[0])}"
    if kind == "service":
        return f"/Services/{name_to_id(names[0])}"
    if kind == "partition":
        return f"/Partitions/{names[0]}"
    if kind == "replica":
        return f"/Partitions/{names[0]}/$/GetReplicas/{names[1]}"
    if kind == "cluster":
        return ""
    deployed = f"/Nodes/{names[0]}/$/GetApplications/{name_to_id(names[1])}"
    if kind == "deployed-application":
        return deployed
    return f"{deployed}/$/GetServicePackages/{names[2]}"


def ttl_duration(seconds: float) -> str:
    """``seconds`` as the ISO 8601 duration SF's ``TimeToLiveInMilliSeconds`` carries."""
    return f"PT{seconds:.3f}S"


class HealthMixin:
    """Health calls of :class:`fabrichost.client.FabricClient` (mixed into it)."""

    if TYPE_CHECKING:

        def _call(
            self,
            method: str,
            path: str,
            *,
            json: Any = None,
            params: Mapping[str, str] | None = None,
        ) -> Any: ...

    def health(self, kind: str, *names: str, events_filter: int = 0, **filters: int) -> Any:
        """The entity's aggregated health (SF's ``*Health`` JSON).

        ``events_filter`` and ``filters`` (``NodesHealthStateFilter=8`` ...) are SF's
        HealthStateFilter flags: 0 all, 2 Ok, 4 Warning, 8 Error (or-ed).
        """
        path = health_path(kind, *names)
        route = "/$/GetClusterHealth" if kind == "cluster" else f"{path}/$/GetHealth"
        params = {"EventsHealthStateFilter": str(events_filter)}
        params.update({name: str(value) for name, value in filters.items()})
        return self._call("GET", route, params=params)

    def report_health(
        self,
        kind: str,
        *names: str,
        source_id: str,
        property: str,
        state: str,
        description: str = "",
        ttl: float | None = None,
        sequence_number: int | None = None,
        remove_when_expired: bool = False,
    ) -> None:
        """Report ``state`` about ``property`` of the entity, as ``source_id``.

        ``ttl`` is seconds (None: forever); a report whose ``sequence_number`` is not above the
        last one of the same source and property raises ApiError
        ``FABRIC_E_HEALTH_STALE_REPORT``.
        """
        path = health_path(kind, *names)
        route = "/$/ReportClusterHealth" if kind == "cluster" else f"{path}/$/ReportHealth"
        body: dict[str, Any] = {
            "SourceId": source_id,
            "Property": property,
            "HealthState": state,
            "Description": description,
            "RemoveWhenExpired": remove_when_expired,
        }
        if ttl is not None:
            body["TimeToLiveInMilliSeconds"] = ttl_duration(ttl)
        if sequence_number is not None:
            body["SequenceNumber"] = str(sequence_number)
        self._call("POST", route, json=body, params={"Immediate": "true"})
