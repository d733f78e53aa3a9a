"""The value types that message fields hold, and the checks that keep them honest.

Each ``check_*`` function takes what a field was given (a Python value, or what
:func:`json.loads` produced), returns it in its canonical Python form (a JSON list becomes a
tuple, a JSON string an enum member, an endpoint object an :class:`Endpoint`) and raises
:class:`ValueError` with a short description of what was expected otherwise. The message classes
turn that into a protocol error naming the message and the field.

Integers are limited to 0..2**53-1 so that every JSON parser (JavaScript's included) reads them
exactly; the agent allocates request ids and replica ids inside that range.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final, TypeVar, cast

if TYPE_CHECKING:
    from fabrichost.protocol._framing import JSON, JSONObject

MAX_INT: Final = 2**53 - 1
#: What an external event's name may be (``RaiseEvent.name``); the agent's API, the client and
#: the command line refuse any other name before it reaches a host.
EVENT_NAME_RULE: Final = (
    "1-128 characters, ASCII letters, digits and ._- only, starting with a letter or _"
)
_EVENT_NAME_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_EVENT_NAME_REST: Final = _EVENT_NAME_FIRST | frozenset("0123456789.-")
_HEX: Final = frozenset("0123456789abcdef")
_E = TypeVar("_E", bound=StrEnum)
_T = TypeVar("_T")


class ReplicaRole(StrEnum):
    """A replica's role, as Service Fabric names it (``FABRIC_REPLICA_ROLE``).

    Stateless instances always have ``NONE``. For a stateful replica, ``NONE`` in a
    ``ChangeRole`` means it is being dropped and should delete its state.
    """

    NONE = "None"
    PRIMARY = "Primary"
    ACTIVE_SECONDARY = "ActiveSecondary"
    IDLE_SECONDARY = "IdleSecondary"


class ServiceKind(StrEnum):
    """Whether a service keeps state (replicas with roles) or not (instances)."""

    STATELESS = "Stateless"
    STATEFUL = "Stateful"


class HealthState(StrEnum):
    """The health a replica reports about itself."""

    OK = "Ok"
    WARNING = "Warning"
    ERROR = "Error"


class RunStatus(StrEnum):
    """How a replica's ``run()`` ended on its own: it returned, or it raised."""

    COMPLETED = "Completed"
    FAILED = "Failed"


class EndpointProtocol(StrEnum):
    """``Endpoint/@Protocol`` in a service manifest."""

    HTTP = "http"
    HTTPS = "https"
    TCP = "tcp"
    UDP = "udp"


class EndpointType(StrEnum):
    """``Endpoint/@Type`` in a service manifest."""

    INPUT = "Input"
    INTERNAL = "Internal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """An endpoint of a replica: the port the agent allocated or the manifest named."""

    port: int
    protocol: EndpointProtocol = EndpointProtocol.TCP
    type: EndpointType = EndpointType.INTERNAL

    def __post_init__(self) -> None:
        if type(self.port) is not int or not 1 <= self.port <= 65535:
            raise ValueError(f"port must be an integer in 1..65535, got {self.port!r}")
        object.__setattr__(self, "protocol", check_enum(EndpointProtocol)(self.protocol))
        object.__setattr__(self, "type", check_enum(EndpointType)(self.type))

    def to_json(self) -> JSONObject:
        """The endpoint as the wire carries it: ``{"port": …, "protocol": …, "type": …}``."""
        return {"port": self.port, "protocol": self.protocol.value, "type": self.type.value}


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_count(value: object) -> int:
    """An integer in 0..2**53-1."""
    if type(value) is not int or not 0 <= value <= MAX_INT:
        raise ValueError(f"expected an integer in 0..{MAX_INT}, got {_describe(value)}")
    return value


def check_positive(value: object) -> int:
    """An integer in 1..2**53-1 (ids, pids, versions)."""
    if type(value) is not int or not 1 <= value <= MAX_INT:
        raise ValueError(f"expected an integer in 1..{MAX_INT}, got {_describe(value)}")
    return value


def check_text(value: object) -> str:
    """Any string, empty included."""
    if type(value) is not str:
        raise ValueError(f"expected a string, got {_describe(value)}")
    return value


def check_name(value: object) -> str:
    """A non-empty string."""
    if type(value) is not str or not value:
        raise ValueError(f"expected a non-empty string, got {_describe(value)}")
    return value


def check_bool(value: object) -> bool:
    """true or false."""
    if type(value) is not bool:
        raise ValueError(f"expected true or false, got {_describe(value)}")
    return value


def optional(check: Callable[[object], _T]) -> Callable[[object], _T | None]:
    """``check``, or null."""

    def check_or_null(value: object) -> _T | None:
        return None if value is None else check(value)

    return check_or_null


def check_optional_text(value: object) -> str | None:
    """A string or null."""
    if value is not None and type(value) is not str:
        raise ValueError(f"expected a string or null, got {_describe(value)}")
    return value


def is_event_name(value: object) -> bool:
    """Whether ``value`` is a valid external event name (:data:`EVENT_NAME_RULE`)."""
    return (
        type(value) is str
        and 1 <= len(value) <= 128
        and value[0] in _EVENT_NAME_FIRST
        and _EVENT_NAME_REST.issuperset(value)
    )


def check_event_name(value: object) -> str:
    """An external event's name: :data:`EVENT_NAME_RULE`."""
    if not is_event_name(value):
        raise ValueError(f"expected an event name ({EVENT_NAME_RULE}), got {_describe(value)}")
    return cast("str", value)


def check_guid(value: object) -> str:
    """A lowercase hyphenated GUID, ``8-4-4-4-12`` hex digits.

    Checked by hand rather than with a regular expression: this runs for every replica message.
    """
    if (
        type(value) is not str
        or len(value) != 36
        or value[8] != "-"
        or value[13] != "-"
        or value[18] != "-"
        or value[23] != "-"
        or not _HEX.issuperset(value.replace("-", ""))
    ):
        raise ValueError(
            f"expected a lowercase GUID like 8-4-4-4-12 hex digits, got {_describe(value)}"
        )
    return value


def check_enum(enum: type[_E]) -> Callable[[object], _E]:
    """A checker accepting a member of ``enum`` or its string value."""

    def check(value: object) -> _E:
        if isinstance(value, enum):
            return value
        if type(value) is str:
            try:
                return enum(value)
            except ValueError:
                pass
        choices = "|".join(member.value for member in enum)
        raise ValueError(f"expected one of {choices}, got {_describe(value)}")

    return check


def check_versions(value: object) -> tuple[int, ...]:
    """A non-empty list of distinct protocol versions."""
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"expected a non-empty list of integers, got {_describe(value)}")
    versions = tuple(check_positive(item) for item in value)
    if len(set(versions)) != len(versions):
        raise ValueError(f"expected distinct versions, got {_describe(value)}")
    return versions


def _check_mapping(value: object) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"expected an object, got {_describe(value)}")
    return value


def check_endpoints(value: object) -> dict[str, Endpoint]:
    """Endpoint name → :class:`Endpoint` (or its JSON object form)."""
    endpoints: dict[str, Endpoint] = {}
    for name, item in _check_mapping(value).items():
        key = check_name(name)
        if isinstance(item, Endpoint):
            endpoints[key] = item
            continue
        fields = _check_mapping(item)
        if fields.keys() != {"port", "protocol", "type"}:
            got = sorted(map(str, fields))
            raise ValueError(
                f"endpoint {key!r} must have exactly port, protocol and type, got {got}"
            )
        endpoints[key] = Endpoint(
            port=check_positive(fields["port"]),
            protocol=check_enum(EndpointProtocol)(fields["protocol"]),
            type=check_enum(EndpointType)(fields["type"]),
        )
    return endpoints


def check_settings(value: object) -> dict[str, dict[str, str]]:
    """Section name → parameter name → value, all strings."""
    settings: dict[str, dict[str, str]] = {}
    for section, params in _check_mapping(value).items():
        settings[check_name(section)] = {
            check_name(name): check_text(item) for name, item in _check_mapping(params).items()
        }
    return settings


def check_metrics(value: object) -> dict[str, int]:
    """Metric name → non-negative integer load."""
    return {check_name(name): check_count(item) for name, item in _check_mapping(value).items()}


def check_json(value: object) -> JSON:
    """Any JSON value: objects with string keys, arrays, strings, finite numbers, booleans, null."""
    # Strategy: walk with an explicit stack so that a deeply nested value cannot exhaust the
    # interpreter's recursion limit here (it would be refused by the encoder's limit later).
    stack: list[object] = [value]
    while stack:
        item = stack.pop()
        if item is None or type(item) in (str, int, bool):
            continue
        if type(item) is float:
            if item != item or item in (float("inf"), float("-inf")):
                raise ValueError(f"expected a finite number, got {item!r}")
        elif isinstance(item, dict):
            if not all(type(key) is str for key in item):
                raise ValueError("expected JSON object keys to be strings")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            raise ValueError(f"expected a JSON value, got {_describe(item)}")
    return cast("JSON", value)
