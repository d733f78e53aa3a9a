"""An application upgrade's description and progress: Service Fabric's words, no IO.

The description is what was asked (SF's ApplicationUpgradeDescription, durations in seconds);
the progress is how far it got (SF's ApplicationUpgradeProgressInfo): the state, each upgrade
domain's state (a node is an upgrade domain here), what was restarted, and why it failed. Both
go to the store as JSON (:meth:`UpgradeProgress.to_record`), so a restarted agent still answers
for the last upgrade of every application.
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from fabrichost.errors import ApiError

_E = TypeVar("_E", bound=enum.StrEnum)


class UpgradeState(enum.StrEnum):
    """SF's UpgradeState."""

    ROLLING_FORWARD_IN_PROGRESS = "RollingForwardInProgress"
    ROLLING_FORWARD_PENDING = "RollingForwardPending"
    ROLLING_FORWARD_COMPLETED = "RollingForwardCompleted"
    ROLLING_BACK_IN_PROGRESS = "RollingBackInProgress"
    ROLLING_BACK_COMPLETED = "RollingBackCompleted"
    FAILED = "Failed"

    @property
    def finished(self) -> bool:
        return self in (
            UpgradeState.ROLLING_FORWARD_COMPLETED,
            UpgradeState.ROLLING_BACK_COMPLETED,
            UpgradeState.FAILED,
        )


class UpgradeMode(enum.StrEnum):
    """SF's RollingUpgradeMode."""

    MONITORED = "Monitored"
    UNMONITORED_AUTO = "UnmonitoredAuto"
    UNMONITORED_MANUAL = "UnmonitoredManual"


class FailureAction(enum.StrEnum):
    """SF's FailureAction: what a Monitored upgrade does when a health check fails."""

    ROLLBACK = "Rollback"
    MANUAL = "Manual"


class DomainState(enum.StrEnum):
    """SF's UpgradeDomainState."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"


class FailureReason(enum.StrEnum):
    """SF's FailureReason."""

    NONE = "None"
    INTERRUPTED = "Interrupted"
    HEALTH_CHECK = "HealthCheck"
    UPGRADE_DOMAIN_TIMEOUT = "UpgradeDomainTimeout"
    OVERALL_UPGRADE_TIMEOUT = "OverallUpgradeTimeout"


def parse_enum(kind: type[_E], value: object, what: str) -> _E:
    """``kind(value)``, or an ApiError naming ``what`` and the allowed values."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return kind(value)
    allowed = ", ".join(m.value for m in kind)
    raise ApiError(f"{what} must be one of {allowed}, not {value!r}")


@dataclass(frozen=True, slots=True)
class UpgradeDescription:
    """How to upgrade (SF's ApplicationUpgradeDescription and MonitoringPolicy), durations in
    seconds (``math.inf`` for none). Short dev defaults; SF's in comments."""

    target_version: str
    #: The application's parameters in the new version (they replace the old ones, as in SF).
    parameters: dict[str, str] = field(default_factory=dict)
    mode: UpgradeMode = UpgradeMode.MONITORED  # sfctl's default is UnmonitoredAuto
    failure_action: FailureAction = FailureAction.ROLLBACK
    #: Restart every process even when only config or data changed (SF ForceRestart).
    force_restart: bool = False
    health_check_wait: float = 0.0  # SF 0
    health_check_stable: float = 0.0  # SF 120 s
    health_check_retry_timeout: float = 60.0  # SF 600 s
    upgrade_domain_timeout: float = math.inf  # SF infinite
    upgrade_timeout: float = math.inf  # SF infinite

    def __post_init__(self) -> None:
        durations = {
            "HealthCheckWaitDuration": self.health_check_wait,
            "HealthCheckStableDuration": self.health_check_stable,
            "HealthCheckRetryTimeout": self.health_check_retry_timeout,
            "UpgradeDomainTimeout": self.upgrade_domain_timeout,
            "UpgradeTimeout": self.upgrade_timeout,
        }
        for name, value in durations.items():
            if math.isnan(value) or value < 0:
                raise ApiError(f"{name} must be a duration >= 0, not {value}")
        if not self.target_version:
            raise ApiError("TargetApplicationTypeVersion must not be empty")

    def to_record(self) -> dict[str, Any]:
        """Plain JSON for the store (an infinite duration is None)."""
        record = asdict(self)
        for key, value in record.items():
            if isinstance(value, float) and math.isinf(value):
                record[key] = None
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> UpgradeDescription:
        values = dict(record)
        for key in (
            "health_check_wait",
            "health_check_stable",
            "health_check_retry_timeout",
            "upgrade_domain_timeout",
            "upgrade_timeout",
        ):
            if values.get(key) is None:
                values[key] = math.inf
        values["mode"] = parse_enum(UpgradeMode, values["mode"], "RollingUpgradeMode")
        values["failure_action"] = parse_enum(
            FailureAction, values["failure_action"], "FailureAction"
        )
        return cls(**values)


@dataclass
class UpgradeProgress:
    """The latest upgrade of one application, as it goes."""

    application: str
    type_name: str
    from_version: str
    from_parameters: dict[str, str]
    description: UpgradeDescription
    #: Upgrade domain (node) -> its state, in the order the upgrade walks them.
    domains: dict[str, DomainState]
    state: UpgradeState = UpgradeState.ROLLING_FORWARD_IN_PROGRESS
    current_domain: str | None = None
    #: The domain a manual mode waits to be told to start (SF NextUpgradeDomain).
    next_domain: str | None = None
    started_at: float = field(default_factory=time.time)
    domain_started_at: float | None = None
    finished_at: float | None = None
    failure_reason: FailureReason = FailureReason.NONE
    #: Why it failed, in words (the cause: the end of a failing code package's stderr).
    failure: str = ""
    failed_at: float | None = None
    failure_domain: str | None = None
    #: One line per step done: what each domain restarted or was handed (SF's
    #: UpgradeStatusDetails).
    details: list[str] = field(default_factory=list)

    @property
    def target_version(self) -> str:
        return self.description.target_version

    def failed(self, reason: FailureReason, failure: str) -> None:
        self.failure_reason = reason
        self.failure = failure
        self.failed_at = time.time()
        self.failure_domain = self.current_domain

    def to_record(self) -> dict[str, Any]:
        """The progress part of the store's row (the rest has columns of its own)."""
        return {
            "type_name": self.type_name,
            "domains": {name: state.value for name, state in self.domains.items()},
            "current_domain": self.current_domain,
            "next_domain": self.next_domain,
            "started_at": self.started_at,
            "domain_started_at": self.domain_started_at,
            "finished_at": self.finished_at,
            "failure_reason": self.failure_reason.value,
            "failure": self.failure,
            "failed_at": self.failed_at,
            "failure_domain": self.failure_domain,
            "details": self.details,
        }

    @classmethod
    def from_record(
        cls,
        application: str,
        from_version: str,
        from_parameters: dict[str, str],
        state: str,
        description: UpgradeDescription,
        record: dict[str, Any],
    ) -> UpgradeProgress:
        return cls(
            application,
            record["type_name"],
            from_version,
            from_parameters,
            description,
            {name: DomainState(s) for name, s in record["domains"].items()},
            UpgradeState(state),
            record.get("current_domain"),
            record.get("next_domain"),
            record["started_at"],
            record.get("domain_started_at"),
            record.get("finished_at"),
            FailureReason(record.get("failure_reason", "None")),
            record.get("failure", ""),
            record.get("failed_at"),
            record.get("failure_domain"),
            list(record.get("details", [])),
        )
