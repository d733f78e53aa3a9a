"""One replica inside a runtime host: calls into the user's service object in the right order.

The host serialises everything that happens to one replica with :attr:`Replica.lock`; replicas
run concurrently with each other. Sync service methods run through :func:`asyncio.to_thread`;
a sync ``run`` gets its own daemon thread instead, because it may run for the replica's whole
life and would otherwise pin a pool worker (and a daemon thread cannot keep a finished host
alive).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import threading
from typing import TYPE_CHECKING, cast

from fabrichost.errors import LocalProtocolError
from fabrichost.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    ErrorCode,
    ReplicaRole,
    RunCompleted,
    RunStatus,
    ServiceKind,
    encode_payload,
)
from fabrichost.runtime._cancel import CancellationToken
from fabrichost.runtime._events import EventInbox, EventWaitCancelled
from fabrichost.runtime._service import StatefulService

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from fabrichost.protocol import JSON, OpenReplica, ReplicaKey, ReplicaNotification
    from fabrichost.runtime._service import Service, ServiceClass

_log = logging.getLogger(__name__)

# A completion must fit in one frame (DEFAULT_MAX_FRAME_SIZE, 1 MiB) with room for its envelope.
MAX_OUTPUT_BYTES = DEFAULT_MAX_FRAME_SIZE - 4096
MAX_ERROR_CHARS = 64 * 1024


def overrides(service: Service | type[Service], name: str) -> bool:
    """Whether the service's class (or ``service``, a class) implements ``name`` itself (else
    the call is skipped)."""
    cls = service if isinstance(service, type) else type(service)
    # StatefulService inherits every default of the common base and adds change_role's.
    return getattr(cls, name, None) is not getattr(StatefulService, name)


async def invoke(method: Callable[..., object], *args: object) -> object:
    """Call a service method that may be sync (run on a worker thread) or async."""
    if inspect.iscoroutinefunction(method):
        result: object = await method(*args)
        return result
    result = await asyncio.to_thread(method, *args)
    if inspect.isawaitable(result):  # a plain def that returned an awaitable
        result = await result
    return result


def refuse_open(
    request: OpenReplica, types: Mapping[str, ServiceClass], replicas: Mapping[ReplicaKey, Replica]
) -> tuple[str, str] | None:
    """Why the host cannot open ``request`` (an error code and message), or None if it can."""
    cls = types.get(request.service_type)
    if cls is None:
        return ErrorCode.SERVICE_TYPE_NOT_REGISTERED, f"no service type {request.service_type}"
    if issubclass(cls, StatefulService) != (request.service_kind is ServiceKind.STATEFUL):
        return (
            ErrorCode.SERVICE_FAILED,
            f"service type {request.service_type} is implemented by {cls.__name__}, which "
            f"cannot host a {request.service_kind} service",
        )
    if request.replica_key in replicas:
        return ErrorCode.REPLICA_ALREADY_EXISTS, f"replica {request.replica_id} is open"
    return None


def _address(value: object, method: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"{method}() must return an address string or None, got {value!r}")


class Replica:
    """The runtime's record of one open (or opening) replica."""

    __slots__ = (
        "_report",
        "_run",
        "_run_grace",
        "_token",
        "address",
        "gone",
        "inbox",
        "key",
        "lock",
        "role",
        "service",
        "stateful",
    )

    def __init__(
        self,
        service: Service,
        key: ReplicaKey,
        role: ReplicaRole,
        report: Callable[[ReplicaNotification], None],
        *,
        run_grace: float,
    ) -> None:
        self.service = service
        self.key = key
        self.role = role
        self.stateful = isinstance(service, StatefulService)
        self.address = ""
        #: Set once the replica is being closed or was aborted: nothing more may start.
        self.gone = False
        self.lock = asyncio.Lock()
        self._report = report
        self._run_grace = run_grace
        self._token: CancellationToken | None = None
        self._run: asyncio.Future[object] | None = None
        #: External events for this replica; the service reads them through ``wait_for_event``.
        self.inbox = EventInbox()
        service._inbox = self.inbox

    async def open(self) -> str:
        """``open()``, then (stateful) ``change_role(role)``, then start ``run`` if it applies."""
        address = None
        if overrides(self.service, "open"):
            address = _address(await invoke(self.service.open), "open")
        if isinstance(self.service, StatefulService) and overrides(self.service, "change_role"):
            role_address = _address(
                await invoke(self.service.change_role, self.role), "change_role"
            )
            address = role_address if role_address is not None else address
        self.address = address or ""
        self._start_run_if_serving()
        return self.address

    async def change_role(self, role: ReplicaRole) -> str:
        """Move a stateful replica to ``role``; returns the address to publish."""
        if role is self.role:
            return self.address  # as Service Fabric does: no call when the role is unchanged
        if self.role is ReplicaRole.PRIMARY:
            await self.stop_run()
        assert isinstance(self.service, StatefulService)  # the host checked the kind
        address = None
        if overrides(self.service, "change_role"):
            address = _address(await invoke(self.service.change_role, role), "change_role")
        self.role = role
        self.service.context = dataclasses.replace(self.service.context, role=role)
        if address is not None:
            self.address = address
        self._start_run_if_serving()
        return self.address

    async def wait_idle(self) -> None:
        """Wait until nothing is happening to this replica (its lock is free)."""
        async with self.lock:
            pass

    async def close(self) -> None:
        """Stop ``run`` (bounded wait), then ``close()``."""
        self.inbox.close()  # a run waiting for an event wakes now
        await self.stop_run()
        if overrides(self.service, "close"):
            await invoke(self.service.close)

    async def abort(self) -> None:
        """Cancel ``run`` without waiting, then ``abort()``; exceptions are logged, not raised."""
        run = self._run
        self.inbox.close()
        if self._token is not None:
            self._token.cancel()
        if isinstance(run, asyncio.Task):
            run.cancel()
        try:
            if overrides(self.service, "abort"):
                await invoke(self.service.abort)
        except Exception:
            _log.exception("abort() of replica %s of partition %s raised", self.key[1], self.key[0])

    # -- run --------------------------------------------------------------------------------------

    def _start_run_if_serving(self) -> None:
        serving = not self.stateful or self.role is ReplicaRole.PRIMARY
        if self.gone or not serving or self._run is not None or not overrides(self.service, "run"):
            return
        token = CancellationToken()
        if inspect.iscoroutinefunction(self.service.run):
            coroutine = self.service.run(token)
            assert inspect.iscoroutine(coroutine)
            run: asyncio.Future[object] = asyncio.get_running_loop().create_task(coroutine)
        else:
            run = self._start_thread(token)
        self._token, self._run = token, run
        run.add_done_callback(lambda future: self._run_finished(future, token))

    def _start_thread(self, token: CancellationToken) -> asyncio.Future[object]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        run = self.service.run

        def target() -> None:
            try:
                outcome: tuple[object, BaseException | None] = (run(token), None)
            except BaseException as exc:  # reported to the agent as a Failed run
                outcome = (None, exc)
            # RuntimeError: the loop is closed, the host is exiting and nobody listens.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, future, outcome)

        name = f"run-{self.key[0][:8]}-{self.key[1]}"
        threading.Thread(target=target, name=name, daemon=True).start()
        return future

    async def stop_run(self) -> None:
        """Cancel the token and wait up to ``run_grace`` seconds for ``run`` to return."""
        token, run = self._token, self._run
        self._token = self._run = None
        if token is None or run is None:
            return
        self.inbox.interrupt()  # a run waiting for an event wakes (events stay for the next)
        token.cancel()
        if run.done():
            return
        done, _ = await asyncio.wait({run}, timeout=self._run_grace)
        if not done and isinstance(run, asyncio.Task):
            run.cancel()
            done, _ = await asyncio.wait({run}, timeout=1.0)
        if not done:
            _log.warning(
                "run() of replica %s of partition %s ignored cancellation for %.0f s; moving on",
                self.key[1],
                self.key[0],
                self._run_grace,
            )

    def _run_finished(self, future: asyncio.Future[object], token: CancellationToken) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if token.cancelled or self.gone:
            # Stopped by us (close, abort, demotion): not a completion the agent asked about.
            if error is not None and not isinstance(
                error, asyncio.CancelledError | EventWaitCancelled
            ):
                _log.warning("run() of replica %s raised while stopping: %r", self.key[1], error)
            return
        if self._run is future:
            self._run = self._token = None
        if not self.stateful:
            # A stateless run that ended on its own is the instance's end: an event raised
            # from now on is refused (the agent answers 410), not accepted for nobody.
            self.inbox.close()
        self._report(self._completion(future, error))

    def _completion(
        self, future: asyncio.Future[object], error: BaseException | None
    ) -> RunCompleted:
        partition_id, replica_id = self.key
        if error is None:
            try:
                done = RunCompleted(
                    partition_id=partition_id,
                    replica_id=replica_id,
                    status=RunStatus.COMPLETED,
                    output=cast("JSON", future.result()),  # RunCompleted checks it is JSON
                    error=None,
                )
                size = len(encode_payload(done.to_json()))
                if size <= MAX_OUTPUT_BYTES:
                    return done
                # Too large for one frame: it could never be delivered, so say so instead.
                text = f"run() returned {size} bytes of output; at most {MAX_OUTPUT_BYTES} fit"
            except LocalProtocolError as exc:
                text = f"run() returned a value that is not JSON: {exc}"
        else:
            _log.error("run() of replica %s failed", replica_id, exc_info=error)
            text = f"{type(error).__name__}: {error}"
        if len(text) > MAX_ERROR_CHARS:
            text = text[:MAX_ERROR_CHARS] + " [truncated]"
        return RunCompleted(
            partition_id=partition_id,
            replica_id=replica_id,
            status=RunStatus.FAILED,
            output=None,
            error=text,
        )


def _settle(future: asyncio.Future[object], outcome: tuple[object, BaseException | None]) -> None:
    if future.done():
        return
    result, error = outcome
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
