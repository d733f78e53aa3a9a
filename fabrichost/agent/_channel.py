"""The agent's end of one host's channel: an asyncio driver around the sans-IO ``Connection``.

The driver is a short loop (read, feed, handle events) plus request/reply bookkeeping: every
request gets a future keyed by its id and a deadline; a request that times out is expired in the
connection, so a late reply is dropped rather than treated as a violation. Requests are written
without waiting for earlier replies (pipelining), so opening 1,000 replicas costs one round trip
of latency. A host that breaks the protocol gets a ``Fault`` and its channel is closed; the
caller (the code package host) then kills the process, faulting that host alone.

Strategy: flow control (``docs/protocol.md`` §7b). A busy host is paced, never faulted for
being behind: at most ``ChannelLimits.window`` of the agent's requests are unanswered at once
(a reply is the credit for the next request, as in HTTP/2 and AMQP), and no request is written
while the bytes the host has not read yet exceed the write buffer's high-water mark; the rest
wait in the agent, in order, and their deadline starts when they are written. Above
``max_unread`` bytes the agent also stops reading the host's own messages, so a host that sends
without reading cannot grow the agent's memory. The only host faulted for its reading is one
that stopped reading altogether: bytes unread and none read (and nothing answered) for
``stall_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import struct
import termios
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from fabrichost.errors import ActivationError, ProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    CLOSED,
    NEED_DATA,
    AbortReplica,
    ChangeRole,
    CloseReplica,
    ConfigChanged,
    Connection,
    Endpoint,
    Error,
    ErrorCode,
    Fault,
    Hello,
    Notification,
    OpenReplica,
    Ping,
    Pong,
    RaiseEvent,
    RegisterServiceType,
    ReplicaOpened,
    Reply,
    Request,
    Role,
    RoleChanged,
    ServiceTypeRegistered,
    Shutdown,
    Welcome,
    negotiate_version,
)

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping

    from fabrichost.agent._model import Replica, ReplicaRole
    from fabrichost.protocol import JSON, Message

log = logging.getLogger(__name__)

REQUEST_TIMEOUT: Final = 30.0
HANDSHAKE_TIMEOUT: Final = 30.0  # a host that never says Hello is faulted
READ_SIZE: Final = 256 * 1024
# Unread bytes above which the agent stops reading the host's messages until it catches up.
MAX_UNREAD: Final = 1024 * 1024
# Unread bytes above which no further request is written (the write buffer's high-water mark).
WRITE_HIGH_WATER: Final = 256 * 1024
REQUEST_WINDOW: Final = 1024  # the agent's requests unanswered on one channel at most
STALL_TIMEOUT: Final = 60.0  # unread bytes and none read for this long: the host is faulted
CHANNEL_CLOSED: Final = "the host closed its channel"  # serve()'s reason for an EOF


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    """How the agent paces one host (see the module docstring and ``docs/protocol.md`` §7b)."""

    window: int = REQUEST_WINDOW
    max_unread: int = MAX_UNREAD
    stall_timeout: float = STALL_TIMEOUT


def _kernel_unread(sock: socket.socket) -> int:
    """Bytes (as the kernel accounts them) sent on ``sock`` that its peer has not read yet."""
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:  # closed meanwhile: nothing more will be read
        return 0
    return int(struct.unpack("i", raw)[0])


class HostError(ActivationError):
    """The host answered a request with ``Error``; ``code`` is the protocol's error code and
    ``detail`` the host's own message (for ``ServiceFailed``, the service's exception)."""

    def __init__(self, message: str, code: str, detail: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class HostChannel:
    """The agent's end of the channel to one host process.

    Args:
        sock: the agent's end of the socketpair (the child inherited the other end).
        pid: the host process, for messages and queries.
        node_name: sent in ``Welcome``.
        on_register: called when the host registers a service type; raising refuses it.
        on_notification: called with every notification the host sends (health, load, ...).
        config: config package → section → parameter → value, sent after ``Welcome``.
        request_timeout: seconds a written request waits for its reply.
        limits: the pacing of requests and the stalled-host guard (``ChannelLimits()``).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        pid: int,
        node_name: str,
        on_register: Callable[[str], None],
        on_notification: Callable[[Message], None],
        config: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        limits: ChannelLimits | None = None,
    ) -> None:
        self.pid = pid
        self._sock = sock
        self._node_name = node_name
        self._on_register = on_register
        self._on_notification = on_notification
        self._timeout = request_timeout
        self._config = config or {}
        self._conn = Connection(Role.AGENT)
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self._registered: set[str] = set()
        #: The registered service types whose replicas take config changes while they run.
        self.config_handlers: set[str] = set()
        self._limits = limits = limits or ChannelLimits()
        self._window = asyncio.Semaphore(limits.window)
        # The stalled-host guard: a timer armed while bytes are unread, and what it saw last.
        self._stall_timer: asyncio.TimerHandle | None = None
        self._stall_mark = (0, 0)  # (unread bytes, replies read) when the timer was armed
        self._replies = 0
        self._stalled: str | None = None

    # -- the read loop --------------------------------------------------------------------------

    async def serve(self) -> str:
        """Serve the channel until it ends; return why it ended (for logs and health)."""
        reason = await self._serve()
        return self._stalled or reason

    async def _serve(self) -> str:
        try:
            reader, self._writer = await asyncio.open_connection(sock=self._sock)
            self._writer.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
            self._ready.set()
            handshake_deadline = asyncio.get_running_loop().time() + HANDSHAKE_TIMEOUT
            while True:
                event = self._conn.next_event()
                if event is NEED_DATA:
                    if self._conn.version is None:  # no Welcome yet: Hello has a deadline
                        async with asyncio.timeout_at(handshake_deadline):
                            data = await reader.read(READ_SIZE)
                    else:
                        data = await reader.read(READ_SIZE)
                    self._conn.receive_data(data)
                elif event is CLOSED:
                    return CHANNEL_CLOSED
                elif isinstance(event, Fault):
                    return f"the host gave up on its channel: {event.code}: {event.message}"
                else:
                    self._handle(event)
                    # (The agent's own buffer only: the kernel's holds a bounded ~200 KiB.)
                    if self._writer.transport.get_write_buffer_size() > self._limits.max_unread:
                        # Strategy: a host that sends faster than it reads is read no further
                        # until it catches up (it is not faulted: the stall guard judges that).
                        await self._writer.drain()
        except RemoteProtocolError as exc:
            self._write_quietly(Fault(code=ErrorCode.PROTOCOL_VIOLATION, message=str(exc)[:4096]))
            return f"protocol violation: {str(exc)[:512]}"
        except TimeoutError:
            return f"the host sent no Hello within {HANDSHAKE_TIMEOUT:g} s"
        except OSError as exc:
            return f"channel error: {exc}"
        finally:
            self.close()

    # -- flow control -----------------------------------------------------------------------------

    def _unread(self) -> int:
        """Bytes written for the host that it has not read: the agent's buffer's and the
        kernel's."""
        if self._writer is None:
            return 0
        return self._writer.transport.get_write_buffer_size() + _kernel_unread(self._sock)

    def _arm_stall_guard(self) -> None:
        if self._stall_timer is None and not self._closed:
            self._stall_mark = (self._unread(), self._replies)
            loop = asyncio.get_running_loop()
            self._stall_timer = loop.call_later(self._limits.stall_timeout, self._check_stall)

    def _check_stall(self) -> None:
        """Runs ``stall_timeout`` after the guard was armed: fault a host that read nothing."""
        self._stall_timer = None
        unread = self._unread()
        if self._closed or unread == 0:
            return  # it read everything: disarmed until the next write
        before, replies = self._stall_mark
        if unread < before or self._replies != replies:
            self._arm_stall_guard()  # it is reading, slowly: a busy host is paced, not faulted
            return
        self._stalled = (
            f"the host stopped reading its channel: nothing read for "
            f"{self._limits.stall_timeout:g} s, {unread // 1024} KiB unread"
        )
        log.warning("host %s: %s", self.pid, self._stalled)
        self._write_quietly(Fault(code=ErrorCode.PROTOCOL_VIOLATION, message=self._stalled))
        assert self._writer is not None
        self._writer.transport.abort()  # its unread bytes go too: serve() ends at once
        self.close()

    def _handle(self, message: Message) -> None:
        if isinstance(message, Reply):
            self._replies += 1
            future = self._pending.get(message.re)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, Hello):
            self._welcome(message)
        elif isinstance(message, RegisterServiceType):
            self._register(message)
        elif isinstance(message, Ping):
            self._write(Pong(re=message.id))
        elif isinstance(message, Notification):
            try:
                self._on_notification(message)
            except Exception:
                log.exception("handling %s from host %s failed", type(message).__name__, self.pid)

    def _welcome(self, hello: Hello) -> None:
        version = negotiate_version(hello.versions, self._conn.supported_versions)
        if version is None:
            self._write(
                Error(
                    re=hello.id,
                    code=ErrorCode.UNSUPPORTED_VERSION,
                    message=f"this agent speaks versions {self._conn.supported_versions}",
                )
            )
            raise RemoteProtocolError(f"host {self.pid} offered no supported version")
        self._write(Welcome(re=hello.id, version=version, node_name=self._node_name))
        # The host reads no files: its config packages arrive now, before any replica opens.
        for package, settings in self._config.items():
            self._write(ConfigChanged(package=package, settings=settings))

    def _register(self, request: RegisterServiceType) -> None:
        if request.service_type in self._registered:
            self._write(
                Error(
                    re=request.id,
                    code=ErrorCode.SERVICE_TYPE_ALREADY_REGISTERED,
                    message=f"{request.service_type} is registered already",
                )
            )
            return
        try:
            self._on_register(request.service_type)
        except Exception as exc:  # the host is told why; the agent goes on
            self._write(
                Error(
                    re=request.id,
                    code=ErrorCode.SERVICE_TYPE_NOT_REGISTERED,
                    message=str(exc)[:4096],
                )
            )
            return
        self._registered.add(request.service_type)
        if request.handles_config:
            self.config_handlers.add(request.service_type)
        self._write(ServiceTypeRegistered(re=request.id))

    def send_config(self, package: str, settings: Mapping[str, Mapping[str, str]]) -> None:
        """Deliver the new settings of config package ``package`` to the running host (an
        upgrade that changed them); later incarnations get them at their ``Welcome``.

        Raises:
            ProtocolError: the channel is closed.
        """
        self._config = {**self._config, package: settings}
        if self._conn.version is not None:  # else its Welcome, still to come, carries them
            self._write(ConfigChanged(package=package, settings=settings))

    # -- writing ----------------------------------------------------------------------------------

    def _write(self, message: Message) -> None:
        if self._closed or self._writer is None:
            raise ProtocolError(f"the channel to host {self.pid} is closed")
        self._writer.write(self._conn.send(message))
        self._arm_stall_guard()

    def _write_quietly(self, message: Message) -> None:
        with contextlib.suppress(ProtocolError, OSError):
            self._write(message)

    async def request(self, build: Callable[[int], Request]) -> Reply:
        """Send the request ``build(id)`` and wait for its reply.

        The request waits in the agent, in order, while the host has ``window`` requests
        unanswered or too many bytes unread (flow control; a stalled host's channel closes);
        its deadline (``request_timeout``) starts when it is written.

        Raises:
            HostError: the host answered with ``Error`` (an ``ActivationError``).
            TimeoutError: no answer in time (the request is expired).
            ProtocolError: the channel closed first.
        """
        async with asyncio.timeout(self._timeout):
            await self._ready.wait()
        async with self._window:
            await self._writable()
            request_id = self._conn.new_request_id()
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            self._pending[request_id] = future
            try:
                self._write(build(request_id))
                async with asyncio.timeout(self._timeout):
                    reply = await future
            except TimeoutError:
                if request_id in self._conn.pending_requests():
                    self._conn.expire_request(request_id)
                raise
            finally:
                self._pending.pop(request_id, None)
        if isinstance(reply, Error):
            raise HostError(
                f"host {self.pid} answered {reply.code}: {reply.message}", reply.code, reply.message
            )
        return reply

    async def _writable(self) -> None:
        """Wait until the agent's write buffer is under its high-water mark."""
        if self._closed or self._writer is None:
            raise ProtocolError(f"the channel to host {self.pid} closed")
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:  # closed while we waited
            raise ProtocolError(f"the channel to host {self.pid} closed") from exc
        if self._closed:
            raise ProtocolError(f"the channel to host {self.pid} closed")

    async def open_replica(
        self, replica: Replica, *, role: ReplicaRole, endpoints: Mapping[str, int]
    ) -> str:
        service = replica.service
        wire_endpoints = {name: Endpoint(port=port) for name, port in endpoints.items()}
        reply = await self.request(
            lambda rid: OpenReplica(
                id=rid,
                service_name=service.name,
                service_type=service.type_name,
                service_kind=service.kind,
                partition_id=replica.partition.id,
                replica_id=replica.id,
                role=role,
                init_data=service.init_data,
                endpoints=wire_endpoints,
            )
        )
        assert isinstance(reply, ReplicaOpened)
        return reply.address

    async def change_role(self, partition_id: str, replica_id: int, role: ReplicaRole) -> str:
        reply = await self.request(
            lambda rid: ChangeRole(
                id=rid, partition_id=partition_id, replica_id=replica_id, role=role
            )
        )
        assert isinstance(reply, RoleChanged)
        return reply.address

    async def close_replica(self, partition_id: str, replica_id: int) -> None:
        await self.request(
            lambda rid: CloseReplica(id=rid, partition_id=partition_id, replica_id=replica_id)
        )

    async def close_or_abort(self, partition_id: str, replica_id: int) -> bool:
        """Close a replica as Service Fabric does: one whose close fails (its ``close()``
        raised: the host answers ``Error``) or does not answer in time is aborted. Returns
        False if the channel closed instead (the process is going away), else True."""
        try:
            await self.close_replica(partition_id, replica_id)
        except (ActivationError, TimeoutError) as exc:
            log.warning("closing replica %s failed, aborting it: %s", replica_id, exc)
            # Still the host's until aborted (protocol §7); a no-op if it is not any more.
            self.abort_replica(partition_id, replica_id)
        except ProtocolError as exc:
            log.warning("closing replica %s failed: %s", replica_id, exc)
            return False
        return True

    @property
    def supports_events(self) -> bool:
        """Whether the host agreed on protocol version 2 (``RaiseEvent``) or later."""
        return self._conn.version is not None and self._conn.version >= 2

    async def raise_event(self, partition_id: str, replica_id: int, name: str, data: JSON) -> None:
        """Put an external event in an open replica's inbox; returns once the host has it.

        Raises:
            HostError: the host refused it (``ReplicaDoesNotExist``, ``EventBufferFull``).
            TimeoutError: no answer in time: the host may or may not have it.
            ProtocolError: not sent (the replica is not open, the channel closed) or no answer
                because the channel closed.
        """
        await self.request(
            lambda rid: RaiseEvent(
                id=rid, partition_id=partition_id, replica_id=replica_id, name=name, data=data
            )
        )

    def abort_replica(self, partition_id: str, replica_id: int) -> None:
        """Tell the host to drop a replica now (no reply); it is not the host's any more."""
        with contextlib.suppress(ProtocolError, OSError):
            self._write(AbortReplica(partition_id=partition_id, replica_id=replica_id))

    async def shutdown(self) -> None:
        """Ask the host to close its replicas and exit (best effort, bounded by the timeout)."""
        await self.request(lambda rid: Shutdown(id=rid))

    def close(self) -> None:
        """Close our end: the host sees EOF, closes its replicas and exits."""
        if self._closed:
            return
        self._closed = True
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ProtocolError(f"the channel to host {self.pid} closed"))
        if self._writer is not None:
            self._writer.close()
        else:
            self._sock.close()
