"""SF's ApplicationUpgradeDescription as the agent reads it: durations, modes, refusals."""

from __future__ import annotations

import math

import pytest

from fabrichost.agent import FailureAction, UpgradeMode
from fabrichost.api._upgrades import parse_duration, upgrade_description
from fabrichost.errors import ApiError


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT0H10M0S", 600.0),  # sfctl's HealthCheckRetryTimeout default
        ("PT0H2M0S", 120.0),
        ("P1DT2H", 93600.0),
        ("PT1.5S", 1.5),
        ("0", 0.0),
        ("60000", 60.0),
        (250, 0.25),
        ("P10675199DT02H48M05.4775807S", math.inf),  # .NET TimeSpan.MaxValue: no limit
    ],
)
def test_durations_are_iso_8601_or_milliseconds(value: object, seconds: float) -> None:
    assert parse_duration(value, "X") == seconds


@pytest.mark.parametrize("value", ["ten minutes", "-5", "P", True, None, [1], "PT-1S"])
def test_anything_else_is_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ApiError, match=r"MonitoringPolicy\.X"):
        parse_duration(value, "MonitoringPolicy.X")


def test_sfctl_s_description_reads_whole() -> None:
    body = {
        "Name": "fabric:/App1",
        "TargetApplicationTypeVersion": "2.0.0",
        "Parameters": [{"Key": "Greeting", "Value": "hi"}],
        "UpgradeKind": "Rolling",
        "RollingUpgradeMode": "Monitored",
        "ForceRestart": None,
        "MonitoringPolicy": {
            "FailureAction": "Manual",
            "HealthCheckWaitDurationInMilliseconds": "0",
            "HealthCheckStableDurationInMilliseconds": "PT0H2M0S",
            "HealthCheckRetryTimeoutInMilliseconds": "PT0H10M0S",
            "UpgradeTimeoutInMilliseconds": "P10675199DT02H48M05.4775807S",
            "UpgradeDomainTimeoutInMilliseconds": "P10675199DT02H48M05.4775807S",
        },
        "ApplicationHealthPolicy": {"ConsiderWarningAsError": False},
    }
    d = upgrade_description(body, "fabric:/App1")
    assert (d.target_version, d.parameters) == ("2.0.0", {"Greeting": "hi"})
    assert (d.mode, d.failure_action, d.force_restart) == (
        UpgradeMode.MONITORED,
        FailureAction.MANUAL,
        False,
    )
    assert (d.health_check_stable, d.health_check_retry_timeout) == (120.0, 600.0)
    assert math.isinf(d.upgrade_timeout)


def test_a_bare_description_takes_the_dev_defaults() -> None:
    d = upgrade_description({"TargetApplicationTypeVersion": "2.0.0"}, "fabric:/App1")
    assert (d.mode, d.failure_action, d.parameters) == (
        UpgradeMode.MONITORED,
        FailureAction.ROLLBACK,
        {},
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "TargetApplicationTypeVersion is required"),
        (
            {"TargetApplicationTypeVersion": 2},
            "TargetApplicationTypeVersion must be a string, not 2",
        ),
        ({"TargetApplicationTypeVersion": "2", "Name": "fabric:/Other"}, "Name is 'fabric:/Other'"),
        ({"TargetApplicationTypeVersion": "2", "UpgradeKind": "Invalid"}, "UpgradeKind must be"),
        ({"TargetApplicationTypeVersion": "2", "RollingUpgradeMode": "Fast"}, "RollingUpgradeMode"),
        ({"TargetApplicationTypeVersion": "2", "Parameters": {"K": "V"}}, "Parameters must be"),
        (
            {"TargetApplicationTypeVersion": "2", "MonitoringPolicy": {"FailureAction": "Pray"}},
            "MonitoringPolicy.FailureAction must be one of Rollback, Manual",
        ),
        ({"TargetApplicationTypeVersion": "2", "ForceRestart": "yes"}, "ForceRestart must be"),
    ],
)
def test_a_wrong_field_is_refused_by_name(body: dict[str, object], message: str) -> None:
    with pytest.raises(ApiError, match=message):
        upgrade_description(body, "fabric:/App1")
