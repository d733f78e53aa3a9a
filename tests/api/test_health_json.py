"""SF's HealthInformation body and TTL spellings, read and written."""

from __future__ import annotations

import pytest

from fabrichost.api._health import INFINITE_TTL, _duration, parse_health_information, parse_ttl
from fabrichost.errors import ApiError
from fabrichost.protocol import HealthState


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("PT30S", 30.0),
        ("PT0H0M1.5S", 1.5),
        ("P1DT1H", 90000.0),
        ("PT2M", 120.0),
        (1500, 1.5),
        (None, None),
        (INFINITE_TTL, None),
    ],
)
def test_a_ttl_is_an_iso_duration_or_milliseconds(value: object, seconds: float | None) -> None:
    assert parse_ttl(value) == seconds


@pytest.mark.parametrize("value", ["30s", "P", "PT", "PT-1S", True, [1]])
def test_a_ttl_that_is_neither_is_refused(value: object) -> None:
    with pytest.raises(ApiError, match="TimeToLiveInMilliSeconds"):
        parse_ttl(value)


@pytest.mark.parametrize("value", ["P" + "9" * 400 + "D", "P99999999999D", 10**400, 1e300])
def test_a_ttl_longer_than_sf_can_say_is_refused_not_stored(value: object) -> None:
    # Stored, it would break every later read of the entity (a NaN, or a duration the SF
    # client cannot read back).
    with pytest.raises(ApiError, match="longer than the longest Service Fabric allows"):
        parse_ttl(value)


def test_a_ttl_as_long_as_sf_infinite_is_infinite() -> None:
    report = parse_health_information(
        {
            "SourceId": "W",
            "Property": "Disk",
            "HealthState": "Ok",
            "TimeToLiveInMilliSeconds": "P10675199DT2H48M5S",
        }
    )
    assert report.ttl is None
    assert _duration(report.ttl) == INFINITE_TTL


def test_durations_are_written_as_sf_reads_them() -> None:
    assert _duration(None) == INFINITE_TTL
    assert _duration(3.0) == "PT0H0M3S"
    assert _duration(3661.25) == "PT1H1M1.25S"
    assert parse_ttl(_duration(3661.25)) == 3661.25


def test_a_health_information_body_becomes_a_report() -> None:
    info = parse_health_information(
        {
            "SourceId": "W",
            "Property": "Disk",
            "HealthState": "Warning",
            "Description": "80%",
            "SequenceNumber": "12",
            "TimeToLiveInMilliSeconds": "PT10S",
            "RemoveWhenExpired": True,
            "HealthReportId": None,
        }
    )
    assert (info.source_id, info.property, info.state) == ("W", "Disk", HealthState.WARNING)
    assert (info.sequence_number, info.ttl, info.remove_when_expired) == (12, 10.0, True)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Property": "P", "HealthState": "Ok"}, "SourceId is required"),
        ({"SourceId": "S", "HealthState": "Ok"}, "Property is required"),
        ({"SourceId": "S", "Property": "P", "HealthState": "Unknown"}, "HealthState must be"),
        (
            {"SourceId": "S", "Property": "P", "HealthState": "Ok", "SequenceNumber": "x"},
            "SequenceNumber",
        ),
        (
            {"SourceId": "S", "Property": "P", "HealthState": "Ok", "RemoveWhenExpired": 1},
            "RemoveWhenExpired",
        ),
        ({"SourceId": "S", "Property": "P", "HealthState": "Ok", "Description": 5}, "Description"),
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body: dict[str, object], message: str) -> None:
    with pytest.raises(ApiError, match=message):
        parse_health_information(body)
