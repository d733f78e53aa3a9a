""":func:`run_host`: the entry point a runtime host's program calls."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Final

from fabrichost.errors import FabricHostError
from fabrichost.runtime._context import CHANNEL_FD_ENV, ProcessEnvironment, Timeouts
from fabrichost.runtime._host import Host
from fabrichost.runtime._service import StatefulService, StatelessService

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.runtime._service import ServiceClass

_log = logging.getLogger(__name__)

#: Worker threads for sync service methods; each blocked call holds one.
SERVICE_THREADS: Final = 64
_THREAD_EXIT_WAIT: Final = 1.0


def run_host(types: Mapping[str, ServiceClass]) -> None:
    """Register ``types`` with the agent and serve their replicas until told to stop.

    Call it from the program a code package runs, once, from the main thread::

        if __name__ == "__main__":
            run_host({"MyServiceType": MyService})

    The agent passes the channel as an inherited socket whose descriptor number is in
    ``FABRICHOST_CHANNEL_FD``. The host says ``Hello``, registers every type, then opens, moves
    and closes replicas as the agent asks, many at once. It returns (exit code 0) when the agent
    closes the channel or asks for ``Shutdown``, or on SIGINT/SIGTERM, after closing every replica
    (at most ~10 s). When the agent breaks the protocol or faults the host it exits with code 1.
    If a service's sync method is still blocked at exit, the process ends with ``os._exit`` so
    that nothing is left behind.

    Raises:
        TypeError: a value of ``types`` is not a StatelessService/StatefulService subclass.
        ValueError: ``types`` is empty or has an empty name.
        FabricHostError: the process was not started with a channel.
    """
    _check_types(types)
    sock = _open_channel()
    _configure_logging()
    code = _serve(types, sock)
    _exit(code)


def _check_types(types: Mapping[str, ServiceClass]) -> None:
    if not types:
        raise ValueError("run_host() needs at least one service type")
    for name, cls in types.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"service type names must be non-empty strings, got {name!r}")
        if not (isinstance(cls, type) and issubclass(cls, StatelessService | StatefulService)):
            raise TypeError(
                f"service type {name!r} must map to a StatelessService or StatefulService "
                f"subclass, got {cls!r}"
            )


def _open_channel() -> socket.socket:
    value = os.environ.get(CHANNEL_FD_ENV)
    if value is None or not value.isdigit():
        raise FabricHostError(
            f"{CHANNEL_FD_ENV} is {value!r}: run_host() must be started by the fabrichost agent, "
            "which passes the channel's file descriptor in it"
        )
    try:
        sock = socket.socket(fileno=int(value))
    except OSError as exc:
        raise FabricHostError(f"{CHANNEL_FD_ENV}={value} is not an open socket: {exc}") from exc
    if sock.family != socket.AF_UNIX or sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise FabricHostError(f"{CHANNEL_FD_ENV}={value} is not an AF_UNIX stream socket")
    # Processes the services start must not inherit the channel: a surviving grandchild would
    # hold it open, and the agent would never see this host's EOF.
    sock.set_inheritable(False)
    del os.environ[CHANNEL_FD_ENV]
    return sock


def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=os.environ.get("FABRICHOST_LOG_LEVEL", "INFO").upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def _serve(types: Mapping[str, ServiceClass], sock: socket.socket) -> int:
    # Not asyncio.run(): it joins the default executor's threads at the end, so one service
    # blocked forever in a sync method would keep the host alive after the agent left.
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(SERVICE_THREADS, thread_name_prefix="fabrichost-service")
    loop.set_default_executor(executor)
    try:
        return loop.run_until_complete(_main(types, sock))
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
        executor.shutdown(wait=False, cancel_futures=True)
        loop.close()


async def _main(types: Mapping[str, ServiceClass], sock: socket.socket) -> int:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    version = sys.version_info
    host = Host(
        types,
        reader,
        writer,
        ProcessEnvironment.from_environ(),
        runtime=f"python/{version.major}.{version.minor}.{version.micro}",
        pid=os.getpid(),
        timeouts=Timeouts.from_environ(),
    )
    return await host.serve()


def _exit(code: int) -> None:
    deadline = time.monotonic() + _THREAD_EXIT_WAIT
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate() if t.is_alive() and not t.daemon]
    stuck.remove(threading.main_thread().name)
    if stuck:
        # The interpreter would join these threads forever at exit.
        _log.warning("service threads still blocked at exit (%s); exiting anyway", ", ".join(stuck))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        raise SystemExit(code)
