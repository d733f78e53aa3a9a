"""Every message of the host <-> agent protocol, one frozen dataclass each.

Construct messages with keyword arguments; they check their fields at once and raise
:class:`~fabrichost.errors.LocalProtocolError` naming the message and field when one is wrong
(h11's events do the same). :func:`message_from_json` builds one from a decoded frame and raises
:class:`~fabrichost.errors.RemoteProtocolError` instead, because then the peer is at fault.
``message.to_json()`` is the inverse. The class name is the wire ``type``.

There are three shapes:

* :class:`Request` carries ``id``, positive and increasing per sender; it gets exactly one reply.
* :class:`Reply` carries ``re``, the id of the request it answers; :class:`Error` is the failure
  reply to any request that can fail.
* :class:`Notification` carries neither and gets no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol._base import REPLICA_FIELDS as _REPLICA
from fabrichost.protocol._base import REPLY_FIELDS as _REPLY
from fabrichost.protocol._base import REQUEST_FIELDS as _REQUEST
from fabrichost.protocol._base import (
    Message,
    Notification,
    ReplicaNotification,
    Reply,
    Request,
)
from fabrichost.protocol._values import (
    Endpoint,
    HealthState,
    ReplicaRole,
    RunStatus,
    ServiceKind,
    check_bool,
    check_endpoints,
    check_enum,
    check_event_name,
    check_json,
    check_metrics,
    check_name,
    check_optional_text,
    check_positive,
    check_settings,
    check_text,
    check_versions,
    optional,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fabrichost.protocol._framing import JSON, JSONObject


# -- host -> agent --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello(Request):
    """The host's first message: the protocol versions it speaks, its pid and runtime name."""

    versions: tuple[int, ...]
    pid: int
    runtime: str
    _FIELDS = (
        *_REQUEST,
        ("versions", check_versions),
        ("pid", check_positive),
        ("runtime", check_text),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterServiceType(Request):
    """The host can create replicas of ``service_type``.

    ``handles_config`` (version 3, optional): whether that type's replicas take a changed
    config package while they run (:class:`ConfigChanged`); an upgrade that changes a config
    package restarts a host none of whose types does. Absent means no.
    """

    service_type: str
    handles_config: bool | None = None
    _FIELDS = (
        *_REQUEST,
        ("service_type", check_name),
        ("handles_config", optional(check_bool)),
    )
    _OPTIONAL = frozenset({"handles_config"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportHealth(ReplicaNotification):
    """A replica reports its health (``property`` names what the report is about)."""

    state: HealthState
    property: str
    description: str
    # Optional (added later, see ``Message._OPTIONAL``): the report's time to live and whether
    # it is removed, rather than turned to Error, when that runs out.
    time_to_live_ms: int | None = None
    remove_when_expired: bool | None = None
    _FIELDS = (
        *_REPLICA,
        ("state", check_enum(HealthState)),
        ("property", check_name),
        ("description", check_text),
        ("time_to_live_ms", optional(check_positive)),
        ("remove_when_expired", optional(check_bool)),
    )
    _OPTIONAL = frozenset({"time_to_live_ms", "remove_when_expired"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLoad(ReplicaNotification):
    """A replica reports its load metrics (name → non-negative integer)."""

    metrics: Mapping[str, int]
    _FIELDS = (*_REPLICA, ("metrics", check_metrics))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaFaulted(ReplicaNotification):
    """A replica failed on its own; the agent should abort and replace it."""

    reason: str
    _FIELDS = (*_REPLICA, ("reason", check_text))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunCompleted(ReplicaNotification):
    """A replica's ``run()`` returned (``Completed``, with ``output``) or raised (``Failed``)."""

    status: RunStatus
    output: JSON
    error: str | None
    _FIELDS = (
        *_REPLICA,
        ("status", check_enum(RunStatus)),
        ("output", check_json),
        ("error", check_optional_text),
    )

    def _check_together(self) -> None:
        if self.status is RunStatus.COMPLETED and self.error is not None:
            raise LocalProtocolError("RunCompleted: a Completed run has no error")
        if self.status is RunStatus.FAILED and (self.error is None or self.output is not None):
            raise LocalProtocolError("RunCompleted: a Failed run has an error and a null output")


# -- agent -> host --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenReplica(Request):
    """Create and open a replica (stateful) or instance (stateless) in the host."""

    service_name: str
    service_type: str
    service_kind: ServiceKind
    partition_id: str
    replica_id: int
    role: ReplicaRole
    init_data: str | None
    endpoints: Mapping[str, Endpoint]
    _FIELDS = (
        *_REQUEST,
        ("service_name", check_name),
        ("service_type", check_name),
        ("service_kind", check_enum(ServiceKind)),
        *_REPLICA,
        ("role", check_enum(ReplicaRole)),
        ("init_data", check_optional_text),
        ("endpoints", check_endpoints),
    )

    def _check_together(self) -> None:
        stateless = self.service_kind is ServiceKind.STATELESS
        if stateless != (self.role is ReplicaRole.NONE):
            raise LocalProtocolError(
                "OpenReplica.role: a Stateless instance opens with role None and a Stateful "
                f"replica with Primary, ActiveSecondary or IdleSecondary, got {self.service_kind} "
                f"with {self.role}"
            )

    @property
    def replica_key(self) -> tuple[str, int]:
        """``(partition_id, replica_id)``."""
        return (self.partition_id, self.replica_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRole(Request):
    """Change a stateful replica's role; ``None`` means it is being dropped."""

    partition_id: str
    replica_id: int
    role: ReplicaRole
    _FIELDS = (*_REQUEST, *_REPLICA, ("role", check_enum(ReplicaRole)))

    @property
    def replica_key(self) -> tuple[str, int]:
        """``(partition_id, replica_id)``."""
        return (self.partition_id, self.replica_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseReplica(Request):
    """Close a replica gracefully (its state is kept)."""

    partition_id: str
    replica_id: int
    _FIELDS = (*_REQUEST, *_REPLICA)

    @property
    def replica_key(self) -> tuple[str, int]:
        """``(partition_id, replica_id)``."""
        return (self.partition_id, self.replica_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class AbortReplica(ReplicaNotification):
    """Drop a replica now, without waiting for it; no reply."""

    _FIELDS = _REPLICA


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigChanged(Notification):
    """The settings of config package ``package`` (section → parameter → value)."""

    package: str
    settings: Mapping[str, Mapping[str, str]]
    _FIELDS = (("package", check_name), ("settings", check_settings))


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Request):
    """Close every replica, answer, then close the channel and exit."""

    _FIELDS = _REQUEST


@dataclass(frozen=True, slots=True, kw_only=True)
class RaiseEvent(Request):
    """Deliver external event ``name`` with ``data`` (any JSON) to an open replica (version 2).

    The host puts it in the replica's event inbox (first in, first out per name) and answers
    :class:`EventRaised` once it is there, or ``Error`` (``ReplicaDoesNotExist``,
    ``EventBufferFull``). Only sent on a channel whose agreed version is 2 or more.
    """

    partition_id: str
    replica_id: int
    name: str
    data: JSON
    _FIELDS = (*_REQUEST, *_REPLICA, ("name", check_event_name), ("data", check_json))

    @property
    def replica_key(self) -> tuple[str, int]:
        """``(partition_id, replica_id)``."""
        return (self.partition_id, self.replica_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping(Request):
    """Are you there? Either side may ask; the answer is :class:`Pong`."""

    _FIELDS = _REQUEST


# -- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Welcome(Reply):
    """The agent accepts the host and chose ``version`` from the host's list."""

    version: int
    node_name: str
    _FIELDS = (*_REPLY, ("version", check_positive), ("node_name", check_name))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceTypeRegistered(Reply):
    """The agent will place replicas of that type in this host."""

    _FIELDS = _REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaOpened(Reply):
    """The replica is open; ``address`` is what it listens on (empty if nothing)."""

    partition_id: str
    replica_id: int
    address: str
    _FIELDS = (*_REPLY, *_REPLICA, ("address", check_text))


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleChanged(Reply):
    """The replica has its new role; ``address`` is what it listens on now."""

    address: str
    _FIELDS = (*_REPLY, ("address", check_text))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaClosed(Reply):
    """The replica is closed and gone from the host."""

    _FIELDS = _REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class EventRaised(Reply):
    """The event is in the replica's inbox: its ``run`` gets it when it waits for its name."""

    _FIELDS = _REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownComplete(Reply):
    """Every replica is closed; the host closes the channel next."""

    _FIELDS = _REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class Pong(Reply):
    """The answer to :class:`Ping`."""

    _FIELDS = _REPLY


@dataclass(frozen=True, slots=True, kw_only=True)
class Error(Reply):
    """The request failed; ``code`` is one of :class:`ErrorCode` or another string."""

    code: str
    message: str
    _FIELDS = (*_REPLY, ("code", check_name), ("message", check_text))


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault(Notification):
    """The sender saw the peer break the protocol and closes the channel next."""

    code: str
    message: str
    _FIELDS = (("code", check_name), ("message", check_text))


MESSAGE_TYPES: Final[Mapping[str, type[Message]]] = {
    cls.__name__: cls
    for cls in (
        Hello, RegisterServiceType, ReportHealth, ReportLoad, ReplicaFaulted, RunCompleted,
        OpenReplica, ChangeRole, CloseReplica, AbortReplica, ConfigChanged, RaiseEvent, Shutdown,
        Ping, Welcome, ServiceTypeRegistered, ReplicaOpened, RoleChanged, ReplicaClosed,
        EventRaised, ShutdownComplete, Pong, Error, Fault,
    )
}  # fmt: skip
_KEYS: Final[Mapping[str, frozenset[str]]] = {
    name: frozenset(("type", *(field for field, _ in cls._FIELDS)))
    for name, cls in MESSAGE_TYPES.items()
}


def message_from_json(obj: JSONObject) -> Message:
    """Build the message a decoded frame describes.

    Raises:
        RemoteProtocolError: unknown ``type``, a missing or unexpected field, or a field whose
            value is wrong; the message says which.
    """
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise RemoteProtocolError(f"unknown message type {_clip(repr(kind))}")
    cls = MESSAGE_TYPES[kind]
    keys = _KEYS[kind]
    if not keys - cls._OPTIONAL <= obj.keys() <= keys:
        missing = sorted(keys - cls._OPTIONAL - obj.keys())
        extra = sorted(obj.keys() - keys)
        raise RemoteProtocolError(
            f"{kind}: missing fields {missing}, unexpected fields {_clip(str(extra))}"
        )
    # A Callable[..., Message] view of the class lets the checked fields go in as keywords; the
    # class's own __post_init__ is what validates them.
    factory: Callable[..., Message] = cls
    try:
        return factory(**{key: value for key, value in obj.items() if key != "type"})
    except LocalProtocolError as exc:
        raise RemoteProtocolError(str(exc)) from None


def _clip(text: str, limit: int = 200) -> str:
    """Peer-supplied text in an error, cut short: a hostile frame cannot flood the logs."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
