"""Application upgrades: the part of :class:`FabricClient` that speaks Service Fabric's upgrade
routes (``$/Upgrade``, ``GetUpgradeProgress``, ``RollbackUpgrade``, ``MoveToNextUpgradeDomain``).

An upgrade moves an application to another *provisioned* version of its type, as in Service
Fabric; :meth:`UpgradeMixin.upgrade_from_package` provisions a package first::

    client.provision("build/MyApp")                      # ApplicationTypeVersion 1.1.0
    client.upgrade_application("fabric:/App1", "1.1.0")  # starts it; returns at once
    progress = client.wait_upgrade("fabric:/App1")       # SF's ApplicationUpgradeProgressInfo
    progress["UpgradeState"]                             # "RollingForwardCompleted"

Durations are seconds here (SF's JSON spells them in milliseconds).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from fabrichost.errors import FabricHostError
from fabrichost.wire import name_to_id

if TYPE_CHECKING:
    from collections.abc import Mapping

#: SF's RollingUpgradeMode values.
UPGRADE_MODES: Final = ("Monitored", "UnmonitoredAuto", "UnmonitoredManual")
#: UpgradeState values after which nothing more happens.
FINISHED_UPGRADE_STATES: Final = frozenset(
    {"RollingForwardCompleted", "RollingBackCompleted", "Failed"}
)
#: Seconds between two looks at an upgrade's progress while waiting for it.
_POLL: Final = 0.1


@dataclass(frozen=True, slots=True)
class UpgradeTimeouts:
    """An upgrade's monitoring durations in seconds (None: the agent's default)."""

    health_check_wait: float | None = None
    health_check_stable: float | None = None
    health_check_retry_timeout: float | None = None
    upgrade_domain_timeout: float | None = None
    upgrade_timeout: float | None = None

    def policy(self) -> dict[str, str]:
        fields = {
            "HealthCheckWaitDurationInMilliseconds": self.health_check_wait,
            "HealthCheckStableDurationInMilliseconds": self.health_check_stable,
            "HealthCheckRetryTimeoutInMilliseconds": self.health_check_retry_timeout,
            "UpgradeDomainTimeoutInMilliseconds": self.upgrade_domain_timeout,
            "UpgradeTimeoutInMilliseconds": self.upgrade_timeout,
        }
        return {k: str(round(v * 1000)) for k, v in fields.items() if v is not None}


class UpgradeMixin:
    """Upgrade calls of :class:`fabrichost.client.FabricClient` (mixed into it)."""

    if TYPE_CHECKING:

        def _call(
            self,
            method: str,
            path: str,
            *,
            json: Any = None,
            params: Mapping[str, str] | None = None,
        ) -> Any: ...

        def application(self, name: str) -> Any: ...

        # A Created (``value``, ``created``); named loosely: _client imports this module.
        def provision_outcome(
            self, package_dir: str | Path, *, reuse_existing: bool = False
        ) -> Any: ...

        def unprovision(self, type_name: str, version: str) -> None: ...

    def upgrade_application(
        self,
        name: str,
        type_version: str,
        parameters: Mapping[str, str] | None = None,
        *,
        mode: str = "Monitored",
        failure_action: str = "Rollback",
        force_restart: bool = False,
        timeouts: UpgradeTimeouts | None = None,
    ) -> None:
        """Start upgrading application ``name`` to ``type_version`` (already provisioned).

        ``parameters`` replace the application's (as in SF); None keeps the ones it has.
        Returns once the agent has checked and started the upgrade; follow it with
        :meth:`get_upgrade_progress` or :meth:`wait_upgrade`.
        """
        if parameters is None:
            current = self.application(name).get("Parameters", [])
            parameters = {p["Key"]: p["Value"] for p in current}
        body = {
            "Name": name,
            "TargetApplicationTypeVersion": type_version,
            "Parameters": [{"Key": k, "Value": v} for k, v in parameters.items()],
            "UpgradeKind": "Rolling",
            "RollingUpgradeMode": mode,
            "ForceRestart": force_restart,
            "MonitoringPolicy": {
                "FailureAction": failure_action,
                **(timeouts or UpgradeTimeouts()).policy(),
            },
        }
        self._call("POST", f"/Applications/{name_to_id(name)}/$/Upgrade", json=body)

    def get_upgrade_progress(self, name: str) -> Any:
        """SF's ApplicationUpgradeProgressInfo of the application's latest upgrade."""
        return self._call("GET", f"/Applications/{name_to_id(name)}/$/GetUpgradeProgress")

    def rollback_upgrade(self, name: str) -> None:
        """Roll an upgrade that is rolling forward back to the version it started from."""
        self._call("POST", f"/Applications/{name_to_id(name)}/$/RollbackUpgrade")

    def move_to_next_upgrade_domain(self, name: str, domain: str | None = None) -> None:
        """Let a pending upgrade (UnmonitoredManual, or a failed check under a Manual failure
        action) go on, with the upgrade domain it waits to start."""
        self._call(
            "POST",
            f"/Applications/{name_to_id(name)}/$/MoveToNextUpgradeDomain",
            json={"UpgradeDomainName": domain or ""},
        )

    def wait_upgrade(self, name: str, timeout: float = 600.0, *, until_pending: bool = True) -> Any:
        """Wait until the application's upgrade is over (or, with ``until_pending``, waits
        to be told to go on) and return its progress.

        Raises:
            TimeoutError: it was still going after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            progress = self.get_upgrade_progress(name)
            state = progress.get("UpgradeState")
            if state in FINISHED_UPGRADE_STATES or (
                until_pending and state == "RollingForwardPending"
            ):
                return progress
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the upgrade of {name} is still {state} after {timeout:g} s")
            time.sleep(_POLL)

    def upgrade_from_package(
        self,
        package_dir: str | Path,
        name: str,
        parameters: Mapping[str, str] | None = None,
        **options: Any,
    ) -> str:
        """Provision ``package_dir`` (an identical provisioned type is reused) and start
        upgrading ``name`` to its version; returns that version. A type this call provisioned
        is unprovisioned again when the upgrade cannot start.

        Raises:
            FabricHostError: the package is of another application type than ``name``'s (an
                upgrade names only a version: the agent would take it as one of the
                application's own type).
        """
        app_type_name = str(self.application(name)["TypeName"])
        outcome = self.provision_outcome(Path(package_dir), reuse_existing=True)
        app_type = outcome.value
        version = str(app_type.get("Version", ""))
        try:
            if app_type.get("Name") != app_type_name:
                raise FabricHostError(
                    f"{package_dir} is application type {app_type.get('Name')} {version}; "
                    f"{name} is of type {app_type_name}: an upgrade keeps the application's type"
                )
            self.upgrade_application(name, version, parameters, **options)
        except FabricHostError:
            if outcome.created:
                # The upgrade's error is the one to report, whatever this one does.
                with contextlib.suppress(FabricHostError):
                    self.unprovision(str(app_type.get("Name", "")), version)
            raise
        return version
