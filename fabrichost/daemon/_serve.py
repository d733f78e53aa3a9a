"""The agent as a server: the cluster behind its HTTP API, until SIGINT/SIGTERM or a shutdown.

This module composes the two: it sits above both ``fabrichost.agent`` (the cluster) and
``fabrichost.api`` (the routes), so neither imports the other's server concerns. It owns the
state directory's lock for the agent's lifetime and writes ``agent.json`` once it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn

from fabrichost import __version__
from fabrichost.agent import AgentSettings, Cluster, Persistence
from fabrichost.api import AccessPolicy, build_app
from fabrichost.daemon._nodes import settle_node_count
from fabrichost.daemon._statedir import StateDirLock, write_token
from fabrichost.errors import FabricHostError
from fabrichost.wire import AGENT_FILE, TOKEN_FILE, AgentRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator
    from pathlib import Path

log = logging.getLogger(__name__)

# Seconds the HTTP server has to finish its connections once the cluster has stopped.
SERVER_EXIT_TIMEOUT = 5.0


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: the agent owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(port: int) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (0 picks a free port)."""
    # IPPROTO_TCP spelled out: accepted sockets inherit the protocol number, and asyncio turns
    # Nagle off (TCP_NODELAY) only for sockets that say TCP. With proto 0, a response written
    # as headers then body waited for the client's delayed ACK: 40 ms on every request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = (
                "; another program (perhaps an agent of another state directory) holds it: "
                "choose another port (`--port 0` picks a free one) or stop that agent "
                "(`fabrichost down --state-dir ...`)"
            )
        raise FabricHostError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}{hint}") from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


async def serve(
    state_dir: Path,
    *,
    port: int,
    settings: AgentSettings | None = None,
    nodes: int | None = None,
    ready_fd: int | None = None,
    on_ready: Callable[[AgentRecord], None] | None = None,
    allow_users: Collection[int] = (),
    owner_fd: int | None = None,
) -> None:
    """Run the agent until SIGINT/SIGTERM, ``POST /$/fabrichost/Shutdown`` or its owner's end.

    The API serves the agent's own user, root, the uids in ``allow_users``, and whoever sends
    the token it writes to the state directory (``fabrichost.api.AccessPolicy``).

    ``nodes`` is the node count asked for; None keeps the count the state directory records
    (``settings.node_count`` for a fresh one). ``ready_fd`` (a pipe's write end) gets ``ready``
    and is closed, and ``on_ready`` is called, once the HTTP socket listens; if the agent cannot
    start, it gets ``error <message>`` instead. ``owner_fd`` (a pipe's read end whose write
    end only the agent's starter holds) turns readable when the starter closes it or dies, by
    any signal: the agent then stops as on SIGTERM. Returns after every hosted process has been
    stopped.
    """
    ready = _ReadyPipe(ready_fd)
    if owner_fd is not None:
        os.set_inheritable(owner_fd, False)  # no hosted process needs it
    try:
        settings = settings or AgentSettings()
        await _serve(
            state_dir, port, settings, nodes, ready, on_ready, frozenset(allow_users), owner_fd
        )
    except FabricHostError as exc:
        ready.say(f"error {exc}")  # nothing if it said ready already
        raise
    finally:
        ready.say("")


class _ReadyPipe:
    """The write end of ``up``'s pipe: one line is said on it (``ready`` or ``error …``)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def say(self, line: str) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if line:
                    os.write(fd, (line.replace("\n", " ") + "\n").encode())
            except OSError:
                pass
            finally:
                os.close(fd)


async def _serve(
    state_dir: Path,
    port: int,
    settings: AgentSettings,
    nodes: int | None,
    ready: _ReadyPipe,
    on_ready: Callable[[AgentRecord], None] | None,
    allow_users: frozenset[int],
    owner_fd: int | None,
) -> None:
    lock = StateDirLock(state_dir)
    lock.acquire()
    try:
        with contextlib.closing(listen(port)) as sock:
            persist = Persistence.open(state_dir)
            try:
                settings = settle_node_count(state_dir, persist, settings, nodes)
            except BaseException:
                persist.close()
                raise
            cluster = Cluster(state_dir, settings, persist=persist)
            try:
                await cluster.restore()  # what an earlier run created, after fencing it
            except BaseException:
                await cluster.shutdown()  # what the restore started so far; closes the store
                raise
            access = AccessPolicy(
                uids=frozenset({os.geteuid(), 0}) | allow_users, token=write_token(state_dir)
            )
            await _serve_cluster(cluster, sock, access, ready, on_ready, owner_fd)
    finally:
        lock.release()


async def _serve_cluster(
    cluster: Cluster,
    sock: socket.socket,
    access: AccessPolicy,
    ready: _ReadyPipe,
    on_ready: Callable[[AgentRecord], None] | None,
    owner_fd: int | None,
) -> None:
    """Serve ``cluster`` on ``sock`` until a stop is asked for, then stop the cluster (while the
    API still answers: a request waiting on it hears that the agent stops), then the server."""
    state_dir = cluster.state_dir
    endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if owner_fd is not None:
        # EOF (or an error) on the owner's pipe: its last write end is closed, so the owner
        # has stopped or died. Same path as SIGTERM. Level-triggered: unregister at once.
        def owner_gone() -> None:
            loop.remove_reader(owner_fd)
            log.info("the agent's owner has gone; stopping")
            stop.set()

        loop.add_reader(owner_fd, owner_gone)
    me = psutil.Process()
    record = AgentRecord(
        endpoint, me.pid, me.create_time(), str(state_dir), cluster.settings.node_count
    )

    def status() -> dict[str, Any]:
        return {
            "Endpoint": endpoint,
            "AgentProcessId": me.pid,
            "StateDirectory": str(state_dir),
            "Version": __version__,
            "Nodes": [
                {"Name": n.name, "NodeStatus": "Up" if n.up else "Down"}
                for n in cluster.state.nodes.values()
            ],
        }

    app = build_app(cluster, status=status, shutdown=stop.set, access=access)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _Server(config)
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        record.write(state_dir)
        ready.say("ready")
        if on_ready is not None:
            on_ready(record)
        log.info(
            "agent serving %s at %s with %d node(s)",
            state_dir,
            endpoint,
            cluster.settings.node_count,
        )
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_wait, server_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
    finally:
        await cluster.shutdown()
        server.should_exit = True
        await _server_stopped(server_task)
        for name in (AGENT_FILE, TOKEN_FILE):
            with contextlib.suppress(OSError):
                (state_dir / name).unlink()


async def _server_stopped(server_task: asyncio.Task[None]) -> None:
    """Wait (bounded) for the HTTP server to finish. A failure is logged, not raised: the
    cluster has stopped and the state directory is still to be released."""
    try:
        await asyncio.wait_for(server_task, timeout=SERVER_EXIT_TIMEOUT)
    except TimeoutError:
        log.warning("the HTTP server did not stop within %.0f s", SERVER_EXIT_TIMEOUT)
    except Exception:
        log.exception("the HTTP server failed")
