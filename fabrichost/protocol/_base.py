"""The three shapes of message (request, reply, notification) and what they share.

A message class lists its wire fields in ``_FIELDS`` with one check per field; the shared
``__post_init__`` runs the checks, so every message is validated on construction, whether it was
built by local code or decoded from the wire (see :mod:`fabrichost.protocol._messages`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar, Final

from fabrichost.errors import LocalProtocolError
from fabrichost.protocol._values import Endpoint, check_guid, check_json, check_positive

if TYPE_CHECKING:
    from fabrichost.protocol._framing import JSON, JSONObject

Check = Callable[[object], object]
Fields = tuple[tuple[str, Check], ...]


class ErrorCode:
    """The ``code`` values fabrichost sends in :class:`Error` and :class:`Fault`.

    Codes are open-ended strings: a receiver must accept codes it does not know.
    """

    UNSUPPORTED_VERSION: Final = "UnsupportedVersion"
    SERVICE_TYPE_NOT_REGISTERED: Final = "ServiceTypeNotRegistered"
    SERVICE_TYPE_ALREADY_REGISTERED: Final = "ServiceTypeAlreadyRegistered"
    REPLICA_ALREADY_EXISTS: Final = "ReplicaAlreadyExists"
    REPLICA_DOES_NOT_EXIST: Final = "ReplicaDoesNotExist"
    SERVICE_FAILED: Final = "ServiceFailed"
    EVENT_BUFFER_FULL: Final = "EventBufferFull"
    PROTOCOL_VIOLATION: Final = "ProtocolViolation"


class Message:
    """Base of every message. ``_FIELDS`` lists the wire fields in order with their checks."""

    __slots__ = ()
    _FIELDS: ClassVar[tuple[tuple[str, Check], ...]] = ()
    # Fields added to a message after its first version: they may be missing on the wire (their
    # value is then None) and are left out of it when None, so a peer that predates them sends
    # and receives the same bytes as before.
    _OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def __post_init__(self) -> None:
        for name, check in self._FIELDS:
            value = getattr(self, name)
            try:
                checked = check(value)
            except ValueError as exc:
                raise LocalProtocolError(f"{type(self).__name__}.{name}: {exc}") from None
            if checked is not value:
                object.__setattr__(self, name, checked)
        self._check_together()

    def _check_together(self) -> None:
        """Rules that involve more than one field; overridden where there are some."""

    def to_json(self) -> JSONObject:
        """The message as a JSON object, ``type`` first."""
        obj: JSONObject = {"type": type(self).__name__}
        for name, _ in self._FIELDS:
            value = getattr(self, name)
            if value is None and name in self._OPTIONAL:
                continue
            obj[name] = _to_json(value)
        return obj


def _to_json(value: object) -> JSON:
    if isinstance(value, StrEnum):
        return value.value
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, Endpoint):
        return value.to_json()
    if isinstance(value, Mapping):
        return {str(key): _to_json(item) for key, item in value.items()}
    return check_json(value)


REQUEST_FIELDS: Final[Fields] = (("id", check_positive),)
REPLY_FIELDS: Final[Fields] = (("re", check_positive),)
REPLICA_FIELDS: Final[Fields] = (
    ("partition_id", check_guid),
    ("replica_id", check_positive),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Message):
    """A message that gets exactly one reply, matched by ``id``."""

    id: int
    _FIELDS = REQUEST_FIELDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply(Message):
    """The answer to the request whose ``id`` is ``re``."""

    re: int
    _FIELDS = REPLY_FIELDS


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification(Message):
    """A one-way message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaNotification(Notification):
    """A one-way message about one replica, named by partition and replica id."""

    partition_id: str
    replica_id: int
    _FIELDS = REPLICA_FIELDS

    @property
    def replica_key(self) -> tuple[str, int]:
        """``(partition_id, replica_id)``."""
        return (self.partition_id, self.replica_id)
