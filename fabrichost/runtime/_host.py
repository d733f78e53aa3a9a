"""The runtime host: one channel to the agent, many replicas, one asyncio loop.

:class:`Host` reads frames, turns them into messages with a
:class:`~fabrichost.protocol.Connection`, and runs each request as its own task, so a slow
replica never holds up the others. Requests about one replica are serialised by that replica's
lock. The host's life ends in one of four ways, each recorded in :attr:`Host.done` as the exit
code: the agent closes the channel (EOF, 0), asks for ``Shutdown`` (0), breaks the protocol
(``Fault`` sent, 1), or sends ``Fault`` itself (1). Every way out closes every replica, bounded by
``Timeouts.close_all``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import threading
from typing import TYPE_CHECKING, Final

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    CLOSED,
    HANDLES_CONFIG_VERSION,
    NEED_DATA,
    AbortReplica,
    ChangeRole,
    CloseReplica,
    ConfigChanged,
    Connection,
    Error,
    ErrorCode,
    EventRaised,
    Fault,
    Hello,
    OpenReplica,
    Ping,
    Pong,
    RaiseEvent,
    RegisterServiceType,
    ReplicaClosed,
    ReplicaOpened,
    Reply,
    Role,
    RoleChanged,
    ServiceTypeRegistered,
    Shutdown,
    ShutdownComplete,
    State,
    Welcome,
)
from fabrichost.runtime._context import make_context, pick_config
from fabrichost.runtime._events import EventBufferFull, EventWaitCancelled
from fabrichost.runtime._replica import Replica, invoke, overrides, refuse_open

if TYPE_CHECKING:
    from collections.abc import Coroutine, Mapping

    from fabrichost.protocol import Message, ReplicaKey, ReplicaNotification, Request
    from fabrichost.runtime._context import ProcessEnvironment, Settings, Timeouts
    from fabrichost.runtime._service import ServiceClass

_log = logging.getLogger(__name__)

_READ_SIZE: Final = 256 * 1024
_FINAL_STATES: Final = frozenset({State.CLOSED, State.DONE, State.FAULTED})


class Host:
    """Serves the replicas of ``types`` over one channel; see the module docstring."""

    def __init__(
        self,
        types: Mapping[str, ServiceClass],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: ProcessEnvironment,
        *,
        runtime: str,
        pid: int,
        timeouts: Timeouts,
    ) -> None:
        self._types = dict(types)
        self._reader = reader
        self._writer = writer
        self._process = process
        self._runtime = runtime
        self._pid = pid
        self._timeouts = timeouts
        self._conn = Connection(Role.HOST)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._node_name = process.node_name
        self._config: dict[str, Settings] = {}
        self._replicas: dict[ReplicaKey, Replica] = {}
        self._requests: dict[int, asyncio.Future[Reply]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: The exit code, once the host's life is over.
        self.done: asyncio.Future[int] = self._loop.create_future()

    async def serve(self) -> int:
        """Handshake, serve until EOF, Shutdown, a fault or SIGINT/SIGTERM; return the exit code."""
        reader = self._loop.create_task(self._read_loop())
        self._spawn(self._handshake())
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            return await self.done
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._loop.remove_signal_handler(signum)
            reader.cancel()
            await self._close_all()
            for task in list(self._tasks):
                task.cancel()
            await self._close_channel()

    def post_report(self, message: ReplicaNotification) -> None:
        """Send a replica's report from any thread; dropped if the replica is gone."""
        if threading.get_ident() == self._loop_thread:
            self._send_report(message)
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: the host has exited
            self._loop.call_soon_threadsafe(self._send_report, message)

    # -- plumbing ---------------------------------------------------------------------------------

    def _finish(self, code: int) -> None:
        if not self.done.done():
            self.done.set_result(code)

    def _on_signal(self, signum: int) -> None:
        _log.info("received %s: closing replicas and exiting", signal.Signals(signum).name)
        self._finish(0)

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("internal error in the runtime host", exc_info=exc)
            self._finish(1)

    def _send(self, message: Message) -> None:
        if self._writer.is_closing():
            return
        try:
            data = self._conn.send(message)
        except LocalProtocolError:
            if self._conn.state in _FINAL_STATES:
                _log.debug("not sent, the channel is %s: %s", self._conn.state.name, message)
                return
            raise
        self._writer.write(data)

    def _send_report(self, message: ReplicaNotification) -> None:
        if message.replica_key in self._replicas:
            self._send(message)

    def _reply_error(self, request: Request, code: str, message: str) -> None:
        self._send(Error(re=request.id, code=code, message=message))

    async def _request(self, message: Request) -> Reply:
        future: asyncio.Future[Reply] = self._loop.create_future()
        self._requests[message.id] = future
        self._send(message)
        return await future

    async def _close_channel(self) -> None:
        self._writer.close()
        # OSError or a timeout: the agent is gone or not reading; nothing more to say to it.
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), timeout=2.0)

    # -- the channel ------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        conn = self._conn
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    conn.receive_data(await self._reader.read(_READ_SIZE))
                elif event is CLOSED:
                    _log.info("the agent closed the channel")
                    self._finish(0)
                    return
                else:
                    self._dispatch(event)
        except RemoteProtocolError as exc:
            _log.error("the agent broke the protocol: %s", exc)
            self._send(Fault(code=ErrorCode.PROTOCOL_VIOLATION, message=str(exc)))
            self._finish(1)
        except OSError as exc:  # e.g. ECONNRESET: the agent is gone, as with EOF
            _log.info("the channel failed: %s", exc)
            self._finish(0)

    def _dispatch(self, message: Message) -> None:
        if isinstance(message, Reply):
            future = self._requests.pop(message.re, None)
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, OpenReplica):
            self._spawn(self._open(message))
        elif isinstance(message, ChangeRole):
            self._spawn(self._change_role(message))
        elif isinstance(message, CloseReplica):
            self._spawn(self._close(message))
        elif isinstance(message, AbortReplica):
            self._spawn(self._abort(message))
        elif isinstance(message, RaiseEvent):
            self._raise_event(message)  # at once, not in a task: events keep their order
        elif isinstance(message, ConfigChanged):
            self._config_changed(message)
        elif isinstance(message, Shutdown):
            self._spawn(self._shutdown(message))
        elif isinstance(message, Ping):
            self._send(Pong(re=message.id))
        elif isinstance(message, Fault):
            _log.error("the agent faulted this host: %s: %s", message.code, message.message)
            self._finish(1)

    async def _handshake(self) -> None:
        try:
            async with asyncio.timeout(self._timeouts.handshake):
                await self._register()
        except TimeoutError:
            _log.error("the agent did not accept this host in %.0f s", self._timeouts.handshake)
            self._finish(1)

    async def _register(self) -> None:
        hello = Hello(
            id=self._conn.new_request_id(),
            versions=self._conn.supported_versions,
            pid=self._pid,
            runtime=self._runtime,
        )
        reply = await self._request(hello)
        if not isinstance(reply, Welcome):
            _log.error("the agent refused this host: %s", _refusal(reply))
            self._finish(1)
            return
        self._node_name = reply.node_name
        # Only on a channel that knows the field (an older agent would refuse it).
        tell_config = reply.version >= HANDLES_CONFIG_VERSION
        requests = [
            RegisterServiceType(
                id=self._conn.new_request_id(),
                service_type=name,
                handles_config=overrides(cls, "config_changed") if tell_config else None,
            )
            for name, cls in self._types.items()
        ]
        replies = await asyncio.gather(*(self._request(request) for request in requests))
        for request, answer in zip(requests, replies, strict=True):
            if not isinstance(answer, ServiceTypeRegistered):
                _log.error(
                    "the agent refused service type %s: %s", request.service_type, _refusal(answer)
                )
                self._finish(1)
                return
        _log.info("registered %s as %s", ", ".join(self._types), self._node_name)

    # -- replicas ---------------------------------------------------------------------------------

    async def _open(self, request: OpenReplica) -> None:
        if (refusal := refuse_open(request, self._types, self._replicas)) is not None:
            self._reply_error(request, *refusal)
            return
        context = make_context(
            self._process, request, node_name=self._node_name, config_packages=self._config
        )
        try:
            service = self._types[request.service_type](context)
        except Exception as exc:
            _log.exception("creating %s failed", request.service_type)
            self._reply_error(request, ErrorCode.SERVICE_FAILED, f"{type(exc).__name__}: {exc}")
            return
        service._post = self.post_report
        replica = Replica(
            service,
            request.replica_key,
            request.role,
            self.post_report,
            run_grace=self._timeouts.run_grace,
        )
        self._replicas[replica.key] = replica
        async with replica.lock:
            try:
                address = await replica.open()
            except Exception as exc:
                _log.exception("open of replica %s failed", request.replica_id)
                self._forget(replica)
                await replica.abort()
                self._reply_error(request, ErrorCode.SERVICE_FAILED, f"{type(exc).__name__}: {exc}")
                return
        self._send(
            ReplicaOpened(
                re=request.id,
                partition_id=request.partition_id,
                replica_id=request.replica_id,
                address=address,
            )
        )

    def _forget(self, replica: Replica) -> None:
        replica.gone = True
        if self._replicas.get(replica.key) is replica:
            del self._replicas[replica.key]

    def _live(self, request: ChangeRole | CloseReplica) -> Replica | None:
        replica = self._replicas.get(request.replica_key)
        if replica is None or replica.gone:
            self._reply_error(
                request,
                ErrorCode.REPLICA_DOES_NOT_EXIST,
                f"replica {request.replica_id} of partition {request.partition_id} is not open",
            )
            return None
        return replica

    async def _change_role(self, request: ChangeRole) -> None:
        if (replica := self._live(request)) is None:
            return
        if not replica.stateful:
            self._reply_error(request, ErrorCode.SERVICE_FAILED, "a stateless instance has no role")
            return
        async with replica.lock:
            try:
                address = await replica.change_role(request.role)
            except Exception as exc:
                _log.exception("change_role(%s) of replica %s failed", request.role, replica.key[1])
                self._reply_error(request, ErrorCode.SERVICE_FAILED, f"{type(exc).__name__}: {exc}")
                return
        self._send(RoleChanged(re=request.id, address=address))

    async def _close(self, request: CloseReplica) -> None:
        if (replica := self._live(request)) is None:
            return
        replica.gone = True  # set before any await, so a second close or an abort sees it
        error = await self._close_replica(replica)
        if error is None:
            self._send(ReplicaClosed(re=request.id))
        else:
            message = f"close() raised {type(error).__name__}: {error}; the replica was aborted"
            self._reply_error(request, ErrorCode.SERVICE_FAILED, message)

    async def _close_replica(self, replica: Replica) -> Exception | None:
        async with replica.lock:
            try:
                await replica.close()
            except Exception as exc:
                _log.exception("close of replica %s failed; aborting it", replica.key[1])
                await replica.abort()
                return exc
            finally:
                self._forget(replica)
        return None

    async def _abort(self, message: AbortReplica) -> None:
        replica = self._replicas.get(message.replica_key)
        if replica is None or replica.gone:
            return  # never opened here, or already on its way out
        self._forget(replica)
        async with replica.lock:
            await replica.abort()

    def _raise_event(self, request: RaiseEvent) -> None:
        replica = self._replicas.get(request.replica_key)
        missing = f"replica {request.replica_id} of partition {request.partition_id} is not open"
        if replica is None or replica.gone:
            self._reply_error(request, ErrorCode.REPLICA_DOES_NOT_EXIST, missing)
            return
        try:
            replica.inbox.deliver(request.name, request.data)
        except EventWaitCancelled:
            self._reply_error(request, ErrorCode.REPLICA_DOES_NOT_EXIST, missing)
        except EventBufferFull as exc:
            self._reply_error(request, ErrorCode.EVENT_BUFFER_FULL, str(exc))
        else:
            self._send(EventRaised(re=request.id))

    def _config_changed(self, message: ConfigChanged) -> None:
        self._config[message.package] = {
            section: dict(params) for section, params in message.settings.items()
        }
        config_packages = dict(self._config)
        config = pick_config(config_packages)
        for replica in self._replicas.values():
            service = replica.service
            service.context = dataclasses.replace(
                service.context, config=config, config_packages=config_packages
            )
            if overrides(service, "config_changed"):
                self._spawn(self._notify_config(replica, message.package))

    async def _notify_config(self, replica: Replica, package: str) -> None:
        try:
            await invoke(replica.service.config_changed, package)
        except Exception:
            _log.exception("config_changed(%r) of replica %s raised", package, replica.key[1])

    async def _shutdown(self, request: Shutdown) -> None:
        _log.info("the agent asked this host to shut down")
        await self._close_all()
        self._send(ShutdownComplete(re=request.id))
        self._finish(0)

    async def _close_all(self) -> None:
        """Close every replica (those already closing are waited for), within the timeout."""
        waits: list[asyncio.Task[object]] = []
        for replica in list(self._replicas.values()):
            if replica.gone:
                waits.append(self._loop.create_task(replica.wait_idle()))
            else:
                replica.gone = True
                waits.append(self._loop.create_task(self._close_replica(replica)))
        if not waits:
            return
        timeout = self._timeouts.close_all
        _, pending = await asyncio.wait(waits, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            _log.warning("%d replicas did not close within %.1f s", len(pending), timeout)


def _refusal(reply: Reply) -> str:
    """An ``Error`` reply as a reader wants it in the log (the agent quotes the log's last lines
    when this host keeps exiting): its code and message, not a dataclass repr."""
    if isinstance(reply, Error):
        return f"{reply.code}: {reply.message}"
    return repr(reply)
