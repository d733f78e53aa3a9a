"""Application upgrades over REST, in Service Fabric's shapes (what ``sfctl application
upgrade``, ``upgrade-status``, ``upgrade-rollback`` and ``upgrade-resume`` send and read).

* ``POST /Applications/{app}/$/Upgrade``: an ApplicationUpgradeDescription; 200 once the upgrade
  is checked, recorded and started (it goes on in the background);
* ``GET /Applications/{app}/$/GetUpgradeProgress``: ApplicationUpgradeProgressInfo;
* ``POST /Applications/{app}/$/RollbackUpgrade``;
* ``POST /Applications/{app}/$/MoveToNextUpgradeDomain`` (a ResumeApplicationUpgradeDescription:
  ``UpgradeDomainName``).

Durations come as SF spells them: an ISO 8601 duration (``PT0H10M0S``, sfctl's defaults), or a
number of milliseconds (as a number or a string).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from starlette.routing import Route

from fabrichost.agent import (
    FailureAction,
    UpgradeDescription,
    UpgradeMode,
    UpgradeProgress,
    parse_enum,
)
from fabrichost.api._body import read_json_object
from fabrichost.errors import ApiError
from fabrichost.wire import id_to_name

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.requests import Request

    from fabrichost.agent import Cluster

_ISO_DURATION: Final = re.compile(
    r"P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
#: .NET's TimeSpan.MaxValue, which SF (and sfctl's defaults) use for "no limit".
_TIMESPAN_MAX_DAYS: Final = 10675199


def parse_duration(value: object, field: str) -> float:
    """Seconds from an SF duration: ISO 8601 (``PT0H2M0S``) or milliseconds; ``math.inf`` for
    TimeSpan.MaxValue (sfctl's "no timeout").

    Raises:
        ApiError: naming ``field``, for anything else.
    """
    if isinstance(value, bool):
        raise ApiError(f"{field} must be a duration, not {value!r}")
    if isinstance(value, int | float):
        millis = float(value)
    elif isinstance(value, str) and (m := _ISO_DURATION.fullmatch(value.strip())) and value != "P":
        parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
        if parts["days"] >= _TIMESPAN_MAX_DAYS:
            return math.inf
        return (
            parts["days"] * 86400 + parts["hours"] * 3600 + parts["minutes"] * 60 + parts["seconds"]
        )
    elif isinstance(value, str):
        try:
            millis = float(value)
        except ValueError:
            raise ApiError(
                f"{field} must be an ISO 8601 duration (PT0H10M0S) or milliseconds, not {value!r}"
            ) from None
    else:
        raise ApiError(f"{field} must be a duration, not {value!r}")
    if not math.isfinite(millis) or millis < 0:
        raise ApiError(f"{field} must be a duration >= 0, not {value!r}")
    return millis / 1000


def _parameters(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list) or not all(
        isinstance(p, dict) and isinstance(p.get("Key"), str) and isinstance(p.get("Value"), str)
        for p in value
    ):
        raise ApiError('Parameters must be a list of {"Key": "...", "Value": "..."} objects')
    return {p["Key"]: p["Value"] for p in value}


def upgrade_description(body: dict[str, Any], app_name: str) -> UpgradeDescription:
    """An ApplicationUpgradeDescription body, checked field by field."""
    name = body.get("Name")
    if name is not None and name != app_name:
        raise ApiError(f"ApplicationUpgradeDescription.Name is {name!r}, not {app_name!r}")
    target = body.get("TargetApplicationTypeVersion")
    if target is None or target == "":
        raise ApiError("ApplicationUpgradeDescription.TargetApplicationTypeVersion is required")
    if not isinstance(target, str):
        raise ApiError(
            "ApplicationUpgradeDescription.TargetApplicationTypeVersion must be a string, "
            f"not {target!r}"
        )
    kind = body.get("UpgradeKind", "Rolling")
    if kind != "Rolling":
        raise ApiError(f"UpgradeKind must be Rolling, not {kind!r}")
    policy = body.get("MonitoringPolicy") or {}
    if not isinstance(policy, dict):
        raise ApiError("MonitoringPolicy must be an object")
    values: dict[str, Any] = {}
    durations = {
        "health_check_wait": "HealthCheckWaitDurationInMilliseconds",
        "health_check_stable": "HealthCheckStableDurationInMilliseconds",
        "health_check_retry_timeout": "HealthCheckRetryTimeoutInMilliseconds",
        "upgrade_domain_timeout": "UpgradeDomainTimeoutInMilliseconds",
        "upgrade_timeout": "UpgradeTimeoutInMilliseconds",
    }
    for key, field in durations.items():
        if policy.get(field) is not None:
            values[key] = parse_duration(policy[field], f"MonitoringPolicy.{field}")
    if policy.get("FailureAction") not in (None, "Invalid"):
        values["failure_action"] = parse_enum(
            FailureAction, policy["FailureAction"], "MonitoringPolicy.FailureAction"
        )
    if body.get("RollingUpgradeMode") not in (None, "Invalid"):
        values["mode"] = parse_enum(UpgradeMode, body["RollingUpgradeMode"], "RollingUpgradeMode")
    force = body.get("ForceRestart")
    if force is not None:
        if not isinstance(force, bool):
            raise ApiError(f"ForceRestart must be true or false, not {force!r}")
        values["force_restart"] = force
    return UpgradeDescription(target, _parameters(body.get("Parameters")), **values)


def _utc(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _millis(seconds: float) -> str:
    return str(round(seconds * 1000))


def _duration(seconds: float) -> str:
    """SF's spelling of a duration in a description: milliseconds, TimeSpan.MaxValue as SF."""
    return "4294967295000" if math.isinf(seconds) else _millis(seconds)


def description_json(progress: UpgradeProgress) -> dict[str, Any]:
    d = progress.description
    return {
        "Name": progress.application,
        "TargetApplicationTypeVersion": d.target_version,
        "Parameters": [{"Key": k, "Value": v} for k, v in sorted(d.parameters.items())],
        "UpgradeKind": "Rolling",
        "RollingUpgradeMode": d.mode.value,
        "ForceRestart": d.force_restart,
        "MonitoringPolicy": {
            "FailureAction": d.failure_action.value,
            "HealthCheckWaitDurationInMilliseconds": _duration(d.health_check_wait),
            "HealthCheckStableDurationInMilliseconds": _duration(d.health_check_stable),
            "HealthCheckRetryTimeoutInMilliseconds": _duration(d.health_check_retry_timeout),
            "UpgradeTimeoutInMilliseconds": _duration(d.upgrade_timeout),
            "UpgradeDomainTimeoutInMilliseconds": _duration(d.upgrade_domain_timeout),
        },
    }


def progress_json(progress: UpgradeProgress, current_version: str) -> dict[str, Any]:
    """SF's ApplicationUpgradeProgressInfo, with fabrichost's own ``CurrentApplicationTypeVersion``
    (the version in force) and ``Details`` (what each domain restarted)."""
    now = progress.finished_at or datetime.now(UTC).timestamp()
    current = progress.current_domain
    domain_started = progress.domain_started_at or progress.started_at
    at_failure = progress.failure_domain
    return {
        "Name": progress.application,
        "TypeName": progress.type_name,
        "TargetApplicationTypeVersion": progress.target_version,
        "CurrentApplicationTypeVersion": current_version,
        "UpgradeDomains": [
            {"Name": name, "State": state.value} for name, state in progress.domains.items()
        ],
        "UpgradeState": progress.state.value,
        "NextUpgradeDomain": progress.next_domain or "",
        "RollingUpgradeMode": progress.description.mode.value,
        "UpgradeDescription": description_json(progress),
        "UpgradeDurationInMilliseconds": _millis(now - progress.started_at),
        "UpgradeDomainDurationInMilliseconds": _millis(max(0.0, now - domain_started)),
        "UnhealthyEvaluations": [],
        "CurrentUpgradeDomainProgress": {
            "DomainName": current or "",
            "NodeUpgradeProgressList": (
                [{"NodeName": current, "UpgradePhase": "Upgrading", "PendingSafetyChecks": []}]
                if current
                else []
            ),
        },
        "StartTimestampUtc": _utc(progress.started_at),
        "FailureTimestampUtc": _utc(progress.failed_at),
        "FailureReason": progress.failure_reason.value,
        "UpgradeDomainProgressAtFailure": {
            "DomainName": at_failure or "",
            "NodeUpgradeProgressList": (
                [{"NodeName": at_failure, "UpgradePhase": "Upgrading", "PendingSafetyChecks": []}]
                if at_failure
                else []
            ),
        },
        "UpgradeStatusDetails": progress.failure,
        "IsNodeByNode": True,
        "Details": list(progress.details),
    }


class UpgradeRoutes:
    """The route handlers of application upgrades."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def _app_name(self, request: Request) -> str:
        return self._cluster.state.application(id_to_name(request.path_params["app"])).name

    async def start(self, request: Request) -> Any:
        name = self._app_name(request)
        body = await read_json_object(request)
        await self._cluster.upgrades.start(name, upgrade_description(body, name))
        return {}

    async def progress(self, request: Request) -> Any:
        name = self._app_name(request)
        app = self._cluster.state.application(name)
        return progress_json(self._cluster.upgrades.progress(name), app.type_version)

    async def rollback(self, request: Request) -> Any:
        self._cluster.upgrades.rollback(self._app_name(request))
        return {}

    async def move_next(self, request: Request) -> Any:
        name = self._app_name(request)
        body = await read_json_object(request)
        domain = body.get("UpgradeDomainName")
        if domain is not None and not isinstance(domain, str):
            raise ApiError("UpgradeDomainName must be a string")
        self._cluster.upgrades.resume(name, domain or None)
        return {}

    def routes(self, wrap: Callable[[Callable[[Request], Awaitable[Any]]], Any]) -> list[Route]:
        """The upgrade routes, each handler passed through ``wrap`` (the app's error
        translation)."""
        root = "/Applications/{app}/$/"
        return [
            Route(root + "Upgrade", wrap(self.start), methods=["POST"]),
            Route(root + "GetUpgradeProgress", wrap(self.progress), methods=["GET"]),
            Route(root + "RollbackUpgrade", wrap(self.rollback), methods=["POST"]),
            Route(root + "MoveToNextUpgradeDomain", wrap(self.move_next), methods=["POST"]),
        ]
