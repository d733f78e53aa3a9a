"""Health reports of one entity, as Service Fabric's health store keeps them: pure, no IO.

Use one :class:`EntityReports` per entity (the model objects hold theirs, so an entity that is
deleted loses its reports with it)::

    reports = EntityReports()
    reports.report(HealthInformation("Watchdog", "Disk", HealthState.WARNING, ttl=30.0), clock)
    reports.events(clock)        # -> [HealthEvent], expired ones dropped or turned to Error

Theory of operation. A report is keyed by ``(SourceId, Property)``; a newer report with the same
key replaces the older one, and one whose ``SequenceNumber`` is not greater than the stored one's
is stale and refused (``FABRIC_E_HEALTH_STALE_REPORT``), as Service Fabric refuses it. A report
without a sequence number gets the next one of :func:`next_sequence_number`, which grows with the
clock (SF uses ticks), so unnumbered reports always supersede. Expiry is evaluated when the
events are read, never by a timer: an expired report with ``RemoveWhenExpired`` disappears, any
other one is shown as ``Error`` with ``IsExpired``. The agent's own observations
(``System.*`` sources) are not stored reports: they are derived from the runtime model on every
read and handed to :meth:`EntityReports.replace_system`, which keeps the timestamps of those that
did not change.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from fabrichost.errors import ApiError
from fabrichost.protocol import HealthState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

SYSTEM_PREFIX: Final = "System."
STALE_REPORT: Final = "FABRIC_E_HEALTH_STALE_REPORT"

_SEVERITY: Final = {HealthState.OK: 0, HealthState.WARNING: 1, HealthState.ERROR: 2}


def worst(states: Iterable[HealthState]) -> HealthState:
    """The worst of ``states`` (Ok for none)."""
    return max(states, key=_SEVERITY.__getitem__, default=HealthState.OK)


def severity(state: HealthState) -> int:
    return _SEVERITY[state]


_sequence_floor = 0


def next_sequence_number() -> int:
    """A sequence number greater than every one handed out before, in 100 ns ticks of the clock
    (Service Fabric's own health client numbers reports from the clock the same way)."""
    global _sequence_floor
    _sequence_floor = max(_sequence_floor + 1, time.time_ns() // 100)
    return _sequence_floor


#: .NET's TimeSpan.MaxValue in seconds: the longest TTL Service Fabric can say, and what its
#: client sends for "infinite".
MAX_TTL_SECONDS: Final = 922_337_203_685.4775807


@dataclass(frozen=True, slots=True)
class HealthClock:
    """Where the store reads time: a monotonic clock for expiry, UTC for timestamps (tests
    inject both)."""

    monotonic: Callable[[], float] = time.monotonic
    utc: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class HealthInformation:
    """One report, as a reporter sends it (SF's ``HealthInformation``).

    ``ttl`` is in seconds, None for infinite; ``sequence_number`` None takes the next of
    :func:`next_sequence_number`.
    """

    source_id: str
    property: str
    state: HealthState
    description: str = ""
    ttl: float | None = None
    sequence_number: int | None = None
    remove_when_expired: bool = False

    def __post_init__(self) -> None:
        if not self.source_id or not self.property:
            raise ApiError("a health report needs a SourceId and a Property")
        if self.ttl is not None and not self.ttl > 0:  # (NaN is not > 0 either)
            raise ApiError(f"TimeToLiveInMilliSeconds must be positive, not {self.ttl * 1000:g}")
        if self.ttl is not None and self.ttl > MAX_TTL_SECONDS - 1:
            # As long as SF's longest TTL (to the second), or longer: infinite, as SF says it.
            object.__setattr__(self, "ttl", None)
        if self.sequence_number is not None and self.sequence_number < 0:
            raise ApiError(f"SequenceNumber must be >= 0, not {self.sequence_number}")


@dataclass(frozen=True, slots=True)
class HealthEvent:
    """A report as the store holds it (SF's ``HealthEvent``), with its timestamps."""

    info: HealthInformation
    sequence_number: int
    source_utc: datetime
    last_modified_utc: datetime
    received_at: float  # the monotonic clock's reading when it arrived: its TTL runs from here
    last_ok_at: datetime | None = None
    last_warning_at: datetime | None = None
    last_error_at: datetime | None = None
    is_expired: bool = False

    @property
    def state(self) -> HealthState:
        """The state it counts as: its own, or Error once it expired."""
        return HealthState.ERROR if self.is_expired else self.info.state

    def expired_at(self, now: float) -> bool:
        return self.info.ttl is not None and now - self.received_at >= self.info.ttl


def _transitioned(
    previous: HealthEvent | None, state: HealthState, now: datetime
) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The (Ok, Warning, Error) transition timestamps after a report in ``state``: the new
    state's is now if the state changed, the others stay."""
    stamps = [
        previous.last_ok_at if previous else None,
        previous.last_warning_at if previous else None,
        previous.last_error_at if previous else None,
    ]
    if previous is None or previous.info.state is not state:
        stamps[severity(state)] = now
    return stamps[0], stamps[1], stamps[2]


class EntityReports:
    """The health events of one entity, keyed by ``(SourceId, Property)``."""

    __slots__ = ("_events",)

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], HealthEvent] = {}

    def report(self, info: HealthInformation, clock: HealthClock) -> HealthEvent:
        """Store ``info``; raises ApiError ``FABRIC_E_HEALTH_STALE_REPORT`` if an earlier report
        of the same source and property has a sequence number as high or higher."""
        key = (info.source_id, info.property)
        previous = self._events.get(key)
        number = info.sequence_number
        if number is None:
            number = next_sequence_number()
        if previous is not None and number <= previous.sequence_number:
            raise ApiError(
                f"stale health report: SourceId={info.source_id!r}, Property={info.property!r} "
                f"has SequenceNumber {previous.sequence_number} already, this one has {number}",
                code=STALE_REPORT,
            )
        now = clock.utc()
        ok_at, warning_at, error_at = _transitioned(previous, info.state, now)
        event = HealthEvent(
            info,
            number,
            source_utc=now,
            last_modified_utc=now,
            received_at=clock.monotonic(),
            last_ok_at=ok_at,
            last_warning_at=warning_at,
            last_error_at=error_at,
        )
        self._events[key] = event
        return event

    def replace_system(self, infos: Iterable[HealthInformation], clock: HealthClock) -> None:
        """Make ``infos`` the entity's ``System.*`` events: one unchanged since the last call
        keeps its timestamps and number, a changed one is reported anew, a missing one is gone."""
        wanted = {(i.source_id, i.property): i for i in infos}
        for key in [k for k in self._events if k[0].startswith(SYSTEM_PREFIX) and k not in wanted]:
            del self._events[key]
        for key, info in wanted.items():
            previous = self._events.get(key)
            if previous is not None and previous.info == info:
                continue
            self.report(info, clock)

    def events(self, clock: HealthClock) -> list[HealthEvent]:
        """The current events: expired ones removed (``RemoveWhenExpired``) or marked expired."""
        now = clock.monotonic()
        current = []
        for key, event in list(self._events.items()):
            if event.expired_at(now):
                if event.info.remove_when_expired:
                    del self._events[key]
                    continue
                event = replace(event, is_expired=True)
            current.append(event)
        return current

    def clear(self) -> None:
        self._events.clear()
