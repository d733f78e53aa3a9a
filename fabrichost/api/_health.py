"""Service Fabric's health routes: ``GetHealth`` (GET and POST) and ``ReportHealth`` of every
entity, rendered as SF's ``*Health`` JSON (the ``azure-servicefabric`` models' field names).

Only the default health policies are evaluated: a POST ``GetHealth`` whose body sets a policy to
anything but its default is refused rather than answered as if the policy applied.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final

from starlette.routing import Route

from fabrichost.agent import MAX_TTL_SECONDS, HealthInformation
from fabrichost.api._body import read_json_object
from fabrichost.errors import ApiError, NotFoundError, NotSupportedError
from fabrichost.protocol import HealthState
from fabrichost.wire import id_to_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from datetime import datetime

    from starlette.requests import Request

    from fabrichost.agent import (
        Application,
        Cluster,
        EntityHealth,
        EntityReports,
        HealthChild,
        HealthEvaluation,
        HealthEvent,
        Replica,
        ServicePackageActivation,
    )

Json = dict[str, Any]

NEVER: Final = "0001-01-01T00:00:00.000Z"
INFINITE_TTL: Final = "P10675199DT2H48M5.4775807S"  # .NET's TimeSpan.MaxValue, as SF sends it
_DURATION: Final = re.compile(
    r"P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)
_FILTER_BITS: Final = {HealthState.OK: 2, HealthState.WARNING: 4, HealthState.ERROR: 8}


def _time(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else NEVER


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return INFINITE_TTL
    whole, rest = divmod(seconds, 1)
    hours, left = divmod(int(whole), 3600)
    minutes, secs = divmod(left, 60)
    frac = f"{secs + rest:.3f}".rstrip("0").rstrip(".")
    return f"PT{hours}H{minutes}M{frac}S"


def parse_ttl(value: Any) -> float | None:
    """``TimeToLiveInMilliSeconds``: an ISO 8601 duration (what the SF client sends), or a number
    of milliseconds; None (absent) or .NET's TimeSpan.MaxValue is infinite."""
    if value is None or value == INFINITE_TTL:
        return None
    seconds: float | None = None
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value) / 1000
        elif isinstance(value, str) and (m := _DURATION.fullmatch(value)) and len(value) > 2:
            parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
            seconds = parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]
    except OverflowError:  # more digits than a float holds: longer than any TTL
        seconds = math.inf
    if seconds is None:
        raise ApiError(
            "TimeToLiveInMilliSeconds must be an ISO 8601 duration like 'PT30S' or a number of "
            f"milliseconds, not {value!r}"
        )
    if not seconds < MAX_TTL_SECONDS + 1:  # (+1: SF's own infinite, rounded)
        raise ApiError(
            f"TimeToLiveInMilliSeconds {value!r} is longer than the longest Service Fabric "
            f"allows ({INFINITE_TTL}, which means infinite)"
        )
    return seconds


def parse_health_information(body: dict[str, Any]) -> HealthInformation:
    """SF's ``HealthInformation`` body as the agent's HealthInformation."""
    for name in ("SourceId", "Property"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(f"HealthInformation.{name} is required (a non-empty string)")
    try:
        state = HealthState(str(body.get("HealthState")))
    except ValueError:
        raise ApiError(
            "HealthInformation.HealthState must be Ok, Warning or Error, "
            f"not {body.get('HealthState')!r}"
        ) from None
    description = body.get("Description") or ""
    if not isinstance(description, str):
        raise ApiError("HealthInformation.Description must be a string")
    number = body.get("SequenceNumber")
    if number is not None:
        try:
            number = int(str(number))
        except ValueError:
            raise ApiError(
                f"HealthInformation.SequenceNumber must be an integer, not {number!r}"
            ) from None
    remove = body.get("RemoveWhenExpired", False)
    if not isinstance(remove, bool):
        raise ApiError("HealthInformation.RemoveWhenExpired must be true or false")
    return HealthInformation(
        body["SourceId"],
        body["Property"],
        state,
        description,
        ttl=parse_ttl(body.get("TimeToLiveInMilliSeconds")),
        sequence_number=number,
        remove_when_expired=remove,
    )


def event_json(event: HealthEvent) -> Json:
    info = event.info
    return {
        "SourceId": info.source_id,
        "Property": info.property,
        "HealthState": event.state.value,
        "TimeToLiveInMilliSeconds": _duration(info.ttl),
        "Description": info.description,
        "SequenceNumber": str(event.sequence_number),
        "RemoveWhenExpired": info.remove_when_expired,
        "IsExpired": event.is_expired,
        "SourceUtcTimestamp": _time(event.source_utc),
        "LastModifiedUtcTimestamp": _time(event.last_modified_utc),
        "LastOkTransitionAt": _time(event.last_ok_at),
        "LastWarningTransitionAt": _time(event.last_warning_at),
        "LastErrorTransitionAt": _time(event.last_error_at),
    }


def evaluation_json(evaluation: HealthEvaluation) -> Json:
    body: Json = {
        "Kind": evaluation.kind,
        "AggregatedHealthState": evaluation.state.value,
        "Description": evaluation.description,
        **evaluation.fields,
    }
    if evaluation.event is not None:
        body["UnhealthyEvent"] = event_json(evaluation.event)
    else:
        body["UnhealthyEvaluations"] = [evaluation_json(c) for c in evaluation.children]
    return {"HealthEvaluation": body}


def _passes(state: HealthState, flags: int) -> bool:
    """SF's HealthStateFilter: 0 (Default) or 65535 (All) pass everything, 1 (None) nothing."""
    return flags == 0 or bool(flags & _FILTER_BITS[state])


def _filter(request: Request, name: str) -> int:
    value = request.query_params.get(name, "0")
    try:
        flags = int(value)
    except ValueError:
        raise ApiError(f"query parameter {name} must be an integer (a HealthStateFilter)") from None
    if not 0 <= flags <= 65535:
        raise ApiError(f"query parameter {name} must be 0..65535, not {flags}")
    return flags


def _child_state(child: HealthChild, fields: dict[str, str]) -> Json:
    found: Json = {"AggregatedHealthState": child.health.state.value}
    for json_name, ident_name in fields.items():
        found[json_name] = child.ident[ident_name]
    if child.kind == "Replica":  # SF's Stateful/Stateless ReplicaHealthState
        stateful = child.ident["ServiceKind"] == "Stateful"
        found["ServiceKind"] = child.ident["ServiceKind"]
        found["ReplicaId" if stateful else "InstanceId"] = child.ident["ReplicaOrInstanceId"]
    return found


# The *HealthStates list of each child group: its JSON name, filter and identity fields.
_CHILD_LISTS: Final = {
    "Nodes": ("NodeHealthStates", "NodesHealthStateFilter", {"Name": "NodeName"}),
    "Applications": (
        "ApplicationHealthStates",
        "ApplicationsHealthStateFilter",
        {"Name": "ApplicationName"},
    ),
    "Services": (
        "ServiceHealthStates",
        "ServicesHealthStateFilter",
        {"ServiceName": "ServiceName"},
    ),
    "DeployedApplications": (
        "DeployedApplicationHealthStates",
        "DeployedApplicationsHealthStateFilter",
        {"NodeName": "NodeName", "ApplicationName": "ApplicationName"},
    ),
    "Partitions": (
        "PartitionHealthStates",
        "PartitionsHealthStateFilter",
        {"PartitionId": "PartitionId"},
    ),
    "Replicas": (
        "ReplicaHealthStates",
        "ReplicasHealthStateFilter",
        {"PartitionId": "PartitionId"},
    ),
    "DeployedServicePackages": (
        "DeployedServicePackageHealthStates",
        "DeployedServicePackagesHealthStateFilter",
        {
            "NodeName": "NodeName",
            "ApplicationName": "ApplicationName",
            "ServiceManifestName": "ServiceManifestName",
            "ServicePackageActivationId": "ServicePackageActivationId",
        },
    ),
}
_CHILD_KIND: Final = {
    "Nodes": "Node",
    "Applications": "Application",
    "Services": "Service",
    "DeployedApplications": "DeployedApplication",
    "Partitions": "Partition",
    "Replicas": "Replica",
    "DeployedServicePackages": "DeployedServicePackage",
}


def health_json(result: EntityHealth, request: Request, identity: Json) -> Json:
    """An entity's ``*Health`` JSON, with SF's filters from the query applied."""
    events = _filter(request, "EventsHealthStateFilter")
    body: Json = {
        "AggregatedHealthState": result.health.state.value,
        "HealthEvents": [event_json(e) for e in result.events if _passes(e.state, events)],
        "UnhealthyEvaluations": [evaluation_json(e) for e in result.health.evaluations],
        **identity,
    }
    stats = []
    for group, children in result.children.items():
        name, filter_name, fields = _CHILD_LISTS[group]
        flags = _filter(request, filter_name)
        items = [_child_state(c, fields) for c in children if _passes(c.health.state, flags)]
        body[name] = items
        states = [c.health.state for c in children]
        stats.append(
            {
                "EntityKind": _CHILD_KIND[group],
                "HealthStateCount": {
                    "OkCount": states.count(HealthState.OK),
                    "WarningCount": states.count(HealthState.WARNING),
                    "ErrorCount": states.count(HealthState.ERROR),
                },
            }
        )
    if request.query_params.get("ExcludeHealthStatistics", "").lower() != "true" and stats:
        body["HealthStatistics"] = {"HealthStateCountList": stats}
    return body


def _default_policy(value: Any) -> bool:
    """Whether a policy value is what the defaults say anyway: absent, false, 0, or made of
    such values (``{"ConsiderWarningAsError": false, "MaxPercentUnhealthyNodes": 0}``)."""
    if isinstance(value, dict):
        return all(_default_policy(v) for v in value.values())
    if isinstance(value, list):
        return all(_default_policy(v) for v in value)
    return value is None or value is False or (type(value) is int and value == 0)


async def _refuse_policies(request: Request) -> None:
    """A POST GetHealth may carry health policies; only the defaults are evaluated."""
    if request.method != "POST":
        return
    body = await read_json_object(request)
    named = sorted(k for k, v in body.items() if not _default_policy(v))
    if named:
        raise NotSupportedError(
            "health policies are not supported (only the defaults are evaluated): "
            + ", ".join(named)
        )


class HealthRoutes:
    """The handlers of the health routes of one cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.view = cluster.health

    # -- entities named by a request ------------------------------------------------------------

    def _app(self, request: Request) -> Application:
        return self.state.application(id_to_name(request.path_params["app"]))

    def _replica(self, request: Request) -> Replica:
        partition = self.state.partition(request.path_params["partition"])
        wanted = request.path_params["replica"]
        for replica in partition.live_replicas():
            if str(replica.id) == wanted:
                return replica
        raise NotFoundError(
            f"replica {wanted} of partition {partition.id} does not exist",
            code="FABRIC_E_REPLICA_DOES_NOT_EXIST",
        )

    def _package(self, request: Request) -> tuple[Application, ServicePackageActivation]:
        app = self._app(request)
        node = self.state.node(request.path_params["node"])
        name = request.path_params["package"]
        wanted = request.query_params.get("ServicePackageActivationId")
        found = [
            a
            for a in self.state.activations_on(node, app.name)
            if a.package.name == name and (wanted is None or a.activation_id == wanted)
        ]
        if not found:
            raise NotFoundError(
                f"service package {name} of {app.name} is not deployed on {node.name}",
                code="FABRIC_E_HEALTH_ENTITY_NOT_FOUND",
            )
        return app, found[0]

    # -- GetHealth ------------------------------------------------------------------------------

    async def cluster_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        return health_json(self.view.cluster(), request, {})

    async def node_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        node = self.state.node(request.path_params["node"])
        return health_json(self.view.node(node), request, {"Name": node.name})

    async def app_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        app = self._app(request)
        return health_json(self.view.application(app), request, {"Name": app.name})

    async def service_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        service = self.state.service(id_to_name(request.path_params["service"]))
        return health_json(self.view.service(service), request, {"Name": service.name})

    async def partition_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        partition = self.state.partition(request.path_params["partition"])
        return health_json(self.view.partition(partition), request, {"PartitionId": partition.id})

    async def replica_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        replica = self._replica(request)
        kind = replica.service.kind.value
        ident = "ReplicaId" if kind == "Stateful" else "InstanceId"
        return health_json(
            self.view.replica(replica),
            request,
            {"PartitionId": replica.partition.id, "ServiceKind": kind, ident: str(replica.id)},
        )

    async def deployed_app_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        app = self._app(request)
        node = self.state.node(request.path_params["node"])
        self.view.deployed_reports(
            app, node
        )  # not deployed there: FABRIC_E_HEALTH_ENTITY_NOT_FOUND
        return health_json(
            self.view.deployed_application(app, node),
            request,
            {"Name": app.name, "NodeName": node.name},
        )

    async def package_health(self, request: Request) -> Any:
        await _refuse_policies(request)
        app, activation = self._package(request)
        return health_json(
            self.view.deployed_service_package(activation),
            request,
            {
                "ApplicationName": app.name,
                "ServiceManifestName": activation.package.name,
                "NodeName": activation.identity.node_name,
            },
        )

    # -- ReportHealth ---------------------------------------------------------------------------

    async def _report(self, request: Request, reports: EntityReports) -> Any:
        info = parse_health_information(await read_json_object(request))
        self.view.report(reports, info)
        return {}

    async def report_cluster(self, request: Request) -> Any:
        return await self._report(request, self.state.health)

    async def report_node(self, request: Request) -> Any:
        return await self._report(request, self.state.node(request.path_params["node"]).health)

    async def report_app(self, request: Request) -> Any:
        return await self._report(request, self._app(request).health)

    async def report_service(self, request: Request) -> Any:
        service = self.state.service(id_to_name(request.path_params["service"]))
        return await self._report(request, service.health)

    async def report_partition(self, request: Request) -> Any:
        partition = self.state.partition(request.path_params["partition"])
        return await self._report(request, partition.health)

    async def report_replica(self, request: Request) -> Any:
        return await self._report(request, self._replica(request).health)

    async def report_deployed_app(self, request: Request) -> Any:
        app = self._app(request)
        node = self.state.node(request.path_params["node"])
        return await self._report(request, self.view.deployed_reports(app, node))

    async def report_package(self, request: Request) -> Any:
        activation = self._package(request)[1]
        return await self._report(request, activation.health)

    def routes(self, wrap: Callable[[Callable[[Request], Awaitable[Any]]], Any]) -> list[Route]:
        """The GetHealth (GET and POST) and ReportHealth (POST) routes of every entity, each
        handler passed through ``wrap`` (the app's error translation)."""
        deployed = "/Nodes/{node}/$/GetApplications/{app}"
        package = deployed + "/$/GetServicePackages/{package}"
        found = [
            Route("/$/GetClusterHealth", wrap(self.cluster_health), methods=["GET", "POST"]),
            Route("/$/ReportClusterHealth", wrap(self.report_cluster), methods=["POST"]),
        ]
        for prefix, get, report in (
            ("/Nodes/{node}", self.node_health, self.report_node),
            ("/Applications/{app}", self.app_health, self.report_app),
            ("/Services/{service}", self.service_health, self.report_service),
            ("/Partitions/{partition}", self.partition_health, self.report_partition),
            (
                "/Partitions/{partition}/$/GetReplicas/{replica}",
                self.replica_health,
                self.report_replica,
            ),
            (deployed, self.deployed_app_health, self.report_deployed_app),
            (package, self.package_health, self.report_package),
        ):
            found.append(Route(prefix + "/$/GetHealth", wrap(get), methods=["GET", "POST"]))
            found.append(Route(prefix + "/$/ReportHealth", wrap(report), methods=["POST"]))
        return found
