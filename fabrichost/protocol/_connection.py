"""The sans-IO connection: one end of a host <-> agent channel.

Example (a host's driver; the agent's is the same with ``Role.AGENT``)::

    conn = Connection(Role.HOST)
    sock.sendall(conn.send(Hello(id=conn.new_request_id(), versions=(1,), pid=os.getpid(),
                                 runtime="python")))
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            conn.receive_data(sock.recv(65536))   # b"" means EOF
        elif event is CLOSED:
            break
        else:
            handle(event)                          # may call conn.send(...) for replies

The connection never does IO and never looks at a clock: timeouts belong to the driver, which
calls :meth:`Connection.expire_request` when it gives up on a request. Everything the peer gets
wrong raises :class:`~fabrichost.errors.RemoteProtocolError` from :meth:`Connection.next_event`
and leaves the connection ``FAULTED``; everything the local side gets wrong raises
:class:`~fabrichost.errors.LocalProtocolError` from :meth:`Connection.send` and changes nothing.
"""

from __future__ import annotations

from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from fabrichost.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from fabrichost.protocol._base import Message, ReplicaNotification, Reply, Request
from fabrichost.protocol._framing import (
    DEFAULT_MAX_FRAME_SIZE,
    FrameDecoder,
    decode_payload,
    encode_frame,
    encode_payload,
)
from fabrichost.protocol._messages import (
    AbortReplica,
    ChangeRole,
    CloseReplica,
    Hello,
    OpenReplica,
    RaiseEvent,
    RegisterServiceType,
    ReplicaOpened,
    ServiceTypeRegistered,
    Welcome,
    message_from_json,
)
from fabrichost.protocol._state import (
    INTRODUCED_IN,
    REPLIES,
    SENDABLE,
    SUPPORTED_VERSIONS,
    TRANSITIONS,
    Role,
    State,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

ReplicaKey = tuple[str, int]


class Sentinel(Enum):
    """What :meth:`Connection.next_event` returns when it has no message."""

    NEED_DATA = "NEED_DATA"
    CLOSED = "CLOSED"

    def __repr__(self) -> str:
        return self.name


#: Feed more bytes with :meth:`Connection.receive_data`, then ask again.
NEED_DATA: Final = Sentinel.NEED_DATA
#: The peer closed the channel and every message before the EOF has been returned.
CLOSED: Final = Sentinel.CLOSED


#: How many expired request ids and aborted replicas a connection remembers, to forgive the
#: late reply or report that crosses the expiry or the abort on the wire. Such stragglers come
#: within moments; remembering every one would grow without bound in a long-lived shared host.
FORGIVEN_LIMIT: Final = 4096

_T = TypeVar("_T")


class _RecentSet(Generic[_T]):
    """A set that keeps only its ``limit`` most recently added members."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._members: dict[_T, None] = {}  # insertion-ordered: the oldest first

    def __contains__(self, item: object) -> bool:
        return item in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, item: _T) -> None:
        self._members.pop(item, None)
        self._members[item] = None
        if len(self._members) > self._limit:
            del self._members[next(iter(self._members))]

    def discard(self, item: _T) -> None:
        self._members.pop(item, None)


class _ReplicaState(Enum):
    OPENING = "opening"
    OPEN = "open"


class Connection:
    """One end of a channel. See the module docstring for the driving loop.

    Args:
        role: which end this is.
        max_frame_size: the largest frame payload accepted and sent, in bytes (default 1 MiB).
        supported_versions: the protocol versions this end speaks.

    On the agent's end the connection also tracks which replicas the host owns: those the agent
    sent ``OpenReplica`` for, until their ``ReplicaClosed`` or the agent's ``AbortReplica`` (or
    an ``Error`` answering the open). A host message about any other replica is a protocol
    violation, except reports about a replica the agent aborted, which may have crossed the
    ``AbortReplica`` on the wire and are dropped silently.
    """

    def __init__(
        self,
        role: Role,
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        supported_versions: tuple[int, ...] = SUPPORTED_VERSIONS,
    ) -> None:
        self.role: Final = role
        self.state = State.IDLE
        #: The version agreed in the handshake, once ``Welcome`` has passed.
        self.version: int | None = None
        self.supported_versions: Final = supported_versions
        self._max_frame_size = max_frame_size
        self._decoder = FrameDecoder(max_frame_size)
        self._eof = False
        self._fault_sent = False
        self._error: RemoteProtocolError | None = None
        self._last_sent_id = 0
        self._id_counter = 0
        self._last_received_id = 0
        self._ours: dict[int, Request] = {}
        self._expired: _RecentSet[int] = _RecentSet(FORGIVEN_LIMIT)
        self._theirs: dict[int, Request] = {}
        self._registered_types: set[str] = set()
        self._replicas: dict[ReplicaKey, _ReplicaState] = {}
        self._aborted: _RecentSet[ReplicaKey] = _RecentSet(FORGIVEN_LIMIT)

    # -- the driver's side ------------------------------------------------------------------------

    def new_request_id(self) -> int:
        """A fresh request id; send requests in the order their ids were taken."""
        self._id_counter += 1
        return self._id_counter

    def pending_requests(self) -> Mapping[int, Request]:
        """Requests sent and neither answered nor expired, by id (a live read-only view)."""
        return MappingProxyType(self._ours)

    def unanswered_requests(self) -> Mapping[int, Request]:
        """Requests received from the peer that have no reply yet (a live read-only view)."""
        return MappingProxyType(self._theirs)

    def expire_request(self, request_id: int) -> Request:
        """Give up on a request (its timeout passed): a late reply will be dropped silently.

        Expiring changes nothing else: an expired ``OpenReplica`` leaves its replica owned by the
        host until the agent sends ``AbortReplica`` for it.
        """
        request = self._ours.pop(request_id, None)
        if request is None:
            raise LocalProtocolError(f"request id {request_id} is not pending")
        self._expired.add(request_id)
        return request

    @property
    def registered_types(self) -> frozenset[str]:
        """Service types whose registration the agent accepted."""
        return frozenset(self._registered_types)

    def owned_replicas(self) -> frozenset[ReplicaKey]:
        """On the agent's end: the ``(partition_id, replica_id)`` the host owns."""
        return frozenset(self._replicas)

    # -- receiving --------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the channel; ``b""`` means the peer closed it (EOF)."""
        if self.state is State.FAULTED:
            return  # nothing more is read from a peer that broke the rules
        if self._eof:
            raise LocalProtocolError("receive_data called after EOF was already fed")
        if data:
            self._decoder.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Message | Sentinel:
        """The next message, or :data:`NEED_DATA`, or :data:`CLOSED` after EOF.

        Raises:
            RemoteProtocolError: the peer broke a rule (now or earlier); the connection is
                ``FAULTED`` and the driver should send a ``Fault`` and close the channel.
        """
        if self._error is not None:
            raise RemoteProtocolError(f"the connection is faulted: {self._error}")
        while True:
            if self.state is State.CLOSED:
                return CLOSED
            try:
                message = self._next_message()
                if isinstance(message, Sentinel) or self._accept(message):
                    return message
            except RemoteProtocolError as exc:
                self._error = exc
                self.state = State.FAULTED
                raise

    def _next_message(self) -> Message | Sentinel:
        payload = self._decoder.next_frame()
        if payload is not None:
            return message_from_json(decode_payload(payload))
        if not self._eof:
            return NEED_DATA
        if self._decoder.buffered:
            raise RemoteProtocolError(
                f"the channel closed in the middle of a frame ({self._decoder.buffered} bytes "
                "of it arrived)"
            )
        self.state = State.CLOSED
        return CLOSED

    def _accept(self, message: Message) -> bool:
        """Check and apply a received message; False means drop it silently."""
        name = type(message).__name__
        peer = self.role.peer
        if name not in SENDABLE[(peer, self.state)]:
            raise RemoteProtocolError(
                f"{name} cannot be sent by the {peer.value} in state {self.state.name}"
            )
        self._check_version(name, RemoteProtocolError)
        if isinstance(message, Request):
            if message.id <= self._last_received_id:
                raise RemoteProtocolError(
                    f"{name} has id {message.id}, not above the previous request id "
                    f"{self._last_received_id}"
                )
            self._check_request(message, RemoteProtocolError)
            self._last_received_id = message.id
            self._theirs[message.id] = message
        elif isinstance(message, Reply):
            request = self._ours.get(message.re)
            if request is None:
                if message.re in self._expired:
                    self._expired.discard(message.re)
                    return False
                raise RemoteProtocolError(
                    f"{name} answers request id {message.re}, which was never sent"
                )
            self._apply_reply(request, message, RemoteProtocolError)
            del self._ours[message.re]
        elif self.role is Role.AGENT and isinstance(message, ReplicaNotification):
            key = message.replica_key
            if key not in self._replicas:
                if key in self._aborted:
                    return False
                raise RemoteProtocolError(
                    f"{name} names replica {key[1]} of partition {key[0]}, which this host does "
                    "not own"
                )
        self._move(name)
        return True

    # -- sending ----------------------------------------------------------------------------------

    def send(self, message: Message) -> bytes:
        """Check that ``message`` may be sent now, record it, and return its frame's bytes.

        Raises:
            LocalProtocolError: the message is illegal in this state (``"X cannot be sent in
                state Y"``), answers nothing pending, names a replica it may not, or is too
                large. The connection is unchanged.
        """
        name = type(message).__name__
        if name not in SENDABLE[(self.role, self.state)] or (
            self.state is State.FAULTED and self._fault_sent
        ):
            raise LocalProtocolError(f"{name} cannot be sent in state {self.state.name}")
        self._check_version(name, LocalProtocolError)
        data = encode_frame(encode_payload(message.to_json()), self._max_frame_size)
        if isinstance(message, Request):
            if message.id <= self._last_sent_id:
                raise LocalProtocolError(
                    f"{name} has id {message.id}, not above the previous request id "
                    f"{self._last_sent_id}"
                )
            self._check_request(message, LocalProtocolError)
            self._last_sent_id = message.id
            self._id_counter = max(self._id_counter, message.id)
            self._ours[message.id] = message
            if isinstance(message, OpenReplica) and self.role is Role.AGENT:
                self._replicas[message.replica_key] = _ReplicaState.OPENING
                self._aborted.discard(message.replica_key)
        elif isinstance(message, Reply):
            request = self._theirs.get(message.re)
            if request is None:
                raise LocalProtocolError(
                    f"{name} answers request id {message.re}, which is not pending"
                )
            self._apply_reply(request, message, LocalProtocolError)
            del self._theirs[message.re]
        else:
            self._sent_notification(message)
        self._fault_sent = self._fault_sent or name == "Fault"
        self._move(name)
        return data

    def _sent_notification(self, message: Message) -> None:
        if self.role is Role.AGENT and isinstance(message, AbortReplica):
            key = message.replica_key
            if key not in self._replicas:
                raise LocalProtocolError(
                    f"AbortReplica names replica {key[1]} of partition {key[0]}, which the host "
                    "does not own"
                )
            del self._replicas[key]
            self._aborted.add(key)

    # -- rules shared by both directions ----------------------------------------------------------

    def _move(self, name: str) -> None:
        self.state = TRANSITIONS.get((self.state, name), self.state)

    def _check_version(self, name: str, error: type[ProtocolError]) -> None:
        """A message type added in a later version passes only on a channel that agreed on it."""
        needed = INTRODUCED_IN.get(name)
        if needed is not None and (self.version is None or self.version < needed):
            raise error(
                f"{name} needs protocol version {needed}; this channel agreed on version "
                f"{self.version}"
            )

    def _check_request(self, request: Request, error: type[ProtocolError]) -> None:
        """Rules about a request that depend on what happened before (both directions)."""
        if isinstance(request, OpenReplica):
            if request.service_type not in self._registered_types:
                raise error(
                    f"OpenReplica for service type {request.service_type!r}, which the host has "
                    "not registered"
                )
            if self.role is Role.AGENT and request.replica_key in self._replicas:
                raise error(
                    f"OpenReplica for replica {request.replica_id} of partition "
                    f"{request.partition_id}, which the host already owns"
                )
        elif (
            isinstance(request, ChangeRole | CloseReplica | RaiseEvent)
            and self.role is Role.AGENT
            and self._replicas.get(request.replica_key) is not _ReplicaState.OPEN
        ):
            raise error(
                f"{type(request).__name__} for replica {request.replica_id} of partition "
                f"{request.partition_id}, which is not open in the host"
            )

    def _apply_reply(self, request: Request, reply: Reply, error: type[ProtocolError]) -> None:
        """Check that ``reply`` may answer ``request``, then record what it means."""
        request_name = type(request).__name__
        reply_name = type(reply).__name__
        if reply_name not in REPLIES[request_name]:
            raise error(f"{reply_name} cannot answer {request_name} (request id {request.id})")
        if isinstance(request, Hello) and isinstance(reply, Welcome):
            if (
                reply.version not in request.versions
                or reply.version not in self.supported_versions
            ):
                raise error(
                    f"Welcome chose version {reply.version}, but the host offered "
                    f"{list(request.versions)} and this end speaks {list(self.supported_versions)}"
                )
            self.version = reply.version
        elif isinstance(request, RegisterServiceType) and isinstance(reply, ServiceTypeRegistered):
            self._registered_types.add(request.service_type)
        elif isinstance(request, OpenReplica):
            self._answered_open(request, reply, error)
        elif isinstance(request, CloseReplica) and reply_name == "ReplicaClosed":
            self._replicas.pop(request.replica_key, None)

    def _answered_open(
        self, request: OpenReplica, reply: Reply, error: type[ProtocolError]
    ) -> None:
        key = request.replica_key
        if isinstance(reply, ReplicaOpened):
            if (reply.partition_id, reply.replica_id) != key:
                raise error(
                    f"ReplicaOpened names replica {reply.replica_id} of partition "
                    f"{reply.partition_id}, but request {request.id} opened replica {key[1]} of "
                    f"partition {key[0]}"
                )
            if key in self._replicas:
                self._replicas[key] = _ReplicaState.OPEN
        else:
            self._replicas.pop(key, None)
