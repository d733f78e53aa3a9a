"""The health store of one entity: keys, sequence numbers, expiry, system reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fabrichost.agent._health import (
    STALE_REPORT,
    EntityReports,
    HealthClock,
    HealthInformation,
    next_sequence_number,
    worst,
)
from fabrichost.errors import ApiError
from fabrichost.protocol import HealthState

OK, WARNING, ERROR = HealthState.OK, HealthState.WARNING, HealthState.ERROR


class FakeTime:
    """A clock the test moves: monotonic seconds and the matching UTC time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.start = datetime(2026, 1, 1, tzinfo=UTC)

    def clock(self) -> HealthClock:
        return HealthClock(
            monotonic=lambda: self.now,
            utc=lambda: self.start + timedelta(seconds=self.now),
        )


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


def test_a_report_replaces_the_one_of_the_same_source_and_property(time_: FakeTime) -> None:
    reports, clock = EntityReports(), time_.clock()
    reports.report(HealthInformation("W", "Disk", WARNING, "80%", sequence_number=1), clock)
    reports.report(HealthInformation("W", "Cpu", OK, sequence_number=1), clock)
    reports.report(HealthInformation("W", "Disk", ERROR, "99%", sequence_number=2), clock)
    events = {e.info.property: e for e in reports.events(clock)}
    assert set(events) == {"Disk", "Cpu"}
    assert (events["Disk"].state, events["Disk"].info.description) == (ERROR, "99%")


def test_a_report_with_a_sequence_number_not_above_the_stored_one_is_refused(
    time_: FakeTime,
) -> None:
    reports, clock = EntityReports(), time_.clock()
    reports.report(HealthInformation("W", "Disk", WARNING, sequence_number=5), clock)
    for stale in (5, 4):
        with pytest.raises(ApiError) as refused:
            reports.report(HealthInformation("W", "Disk", ERROR, sequence_number=stale), clock)
        assert refused.value.code == STALE_REPORT
    (event,) = reports.events(clock)
    assert (event.state, event.sequence_number) == (WARNING, 5)  # unchanged


def test_reports_without_a_number_always_supersede_and_numbers_grow() -> None:
    first, second = next_sequence_number(), next_sequence_number()
    assert second > first > 10**15  # clock ticks, above any hand-written number
    reports, clock = EntityReports(), HealthClock()
    reports.report(HealthInformation("W", "P", WARNING), clock)
    reports.report(HealthInformation("W", "P", OK), clock)
    assert [e.state for e in reports.events(clock)] == [OK]


def test_an_expired_report_counts_as_error_or_is_removed(time_: FakeTime) -> None:
    reports, clock = EntityReports(), time_.clock()
    reports.report(HealthInformation("W", "Kept", OK, ttl=10.0), clock)
    reports.report(HealthInformation("W", "Gone", OK, ttl=10.0, remove_when_expired=True), clock)
    reports.report(HealthInformation("W", "Forever", OK), clock)
    time_.now += 9.9
    assert all(not e.is_expired for e in reports.events(clock))
    time_.now += 0.1
    events = {e.info.property: e for e in reports.events(clock)}
    assert set(events) == {"Kept", "Forever"}
    assert (events["Kept"].is_expired, events["Kept"].state) == (True, ERROR)
    assert events["Kept"].info.state is OK  # what was reported stays readable
    # A fresh report of the property revives it.
    reports.report(HealthInformation("W", "Kept", OK, ttl=10.0), clock)
    assert all(e.state is OK for e in reports.events(clock))


def test_transition_timestamps_change_only_when_the_state_does(time_: FakeTime) -> None:
    reports, clock = EntityReports(), time_.clock()
    reports.report(HealthInformation("W", "P", OK), clock)
    (first,) = reports.events(clock)
    time_.now += 5
    reports.report(HealthInformation("W", "P", OK, "again"), clock)
    (again,) = reports.events(clock)
    assert again.last_ok_at == first.last_ok_at
    assert again.last_modified_utc > first.last_modified_utc
    time_.now += 5
    reports.report(HealthInformation("W", "P", ERROR), clock)
    (error,) = reports.events(clock)
    assert error.last_ok_at == first.last_ok_at
    assert error.last_error_at == error.last_modified_utc
    assert error.last_warning_at is None


def test_system_reports_are_replaced_as_a_set_and_keep_their_timestamps(time_: FakeTime) -> None:
    reports, clock = EntityReports(), time_.clock()
    reports.report(HealthInformation("User", "P", WARNING), clock)
    up = HealthInformation("System.FM", "State", OK, "up")
    reports.replace_system([up, HealthInformation("System.FM", "Extra", OK)], clock)
    (before,) = [e for e in reports.events(clock) if e.info.property == "State"]
    time_.now += 5
    reports.replace_system([up], clock)
    events = {e.info.property: e for e in reports.events(clock)}
    assert set(events) == {"P", "State"}  # Extra is gone, the user's report stays
    assert events["State"] == before  # unchanged: same number and timestamps
    reports.replace_system([HealthInformation("System.FM", "State", ERROR, "down")], clock)
    assert {e.info.property: e.state for e in reports.events(clock)}["State"] is ERROR


def test_bad_information_is_refused_naming_the_field() -> None:
    with pytest.raises(ApiError, match="SourceId and a Property"):
        HealthInformation("", "P", OK)
    with pytest.raises(ApiError, match="TimeToLiveInMilliSeconds"):
        HealthInformation("S", "P", OK, ttl=0.0)
    with pytest.raises(ApiError, match="SequenceNumber"):
        HealthInformation("S", "P", OK, sequence_number=-1)


def test_worst() -> None:
    assert worst([]) is OK
    assert worst([OK, ERROR, WARNING]) is ERROR
    assert worst([OK, WARNING]) is WARNING
