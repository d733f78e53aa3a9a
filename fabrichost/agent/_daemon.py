"""Running the agent: in the foreground (``fabrichost agent``), in the background (``up``), and
stopping it (``down``).

``up`` starts ``python -m fabrichost agent`` in its own session with one end of a pipe; the agent
writes ``ready`` to it once its HTTP socket listens and ``agent.json`` is written, so ``up`` waits
for an event with a deadline instead of polling a port. ``down`` asks the agent to shut down (it
stops every process it started), waits for it to exit, and then sweeps any process that still
carries the state directory's marker variable — so nothing is left behind even after a SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn

from fabrichost._version import __version__
from fabrichost.agent._cluster import AgentSettings, Cluster
from fabrichost.agent._fence import sweep_strays
from fabrichost.agent._statedir import (
    LOG_FILE,
    AgentRecord,
    StateDirLock,
)
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: the agent owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise FabricHostError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


async def serve(
    state_dir: Path,
    *,
    port: int,
    settings: AgentSettings,
    ready_fd: int | None = None,
    on_ready: Callable[[AgentRecord], None] | None = None,
) -> None:
    """Run the agent until SIGINT/SIGTERM or ``POST /$/fabrichost/Shutdown``.

    ``ready_fd`` (a pipe's write end) gets ``ready`` and is closed, and ``on_ready`` is called,
    once the HTTP socket listens. Returns after every hosted process has been stopped.
    """
    from fabrichost.api._app import build_app

    lock = StateDirLock(state_dir)
    lock.acquire()
    sock = _listen(port)
    endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cluster = Cluster(state_dir, settings)
    await cluster.restore()  # what an earlier run created, after fencing its processes
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    me = psutil.Process()
    record = AgentRecord(endpoint, me.pid, me.create_time(), str(state_dir), settings.node_count)

    def status() -> dict[str, Any]:
        return {
            "Endpoint": endpoint,
            "AgentProcessId": me.pid,
            "StateDirectory": str(state_dir),
            "Version": __version__,
            "Nodes": [
                {"Name": n.name, "NodeStatus": "Up" if n.up else "Down"}
                for n in cluster.nodes.values()
            ],
        }

    app = build_app(cluster, status=status, shutdown=stop.set)
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _Server(config)
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        record.write(state_dir)
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        if on_ready is not None:
            on_ready(record)
        log.info("agent serving %s at %s with %d node(s)", state_dir, endpoint, settings.node_count)
        stop_wait = asyncio.create_task(stop.wait())
        await asyncio.wait({stop_wait, server_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
    finally:
        await cluster.shutdown()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server_task, timeout=5)
        sock.close()
        with contextlib.suppress(OSError):
            (state_dir / "agent.json").unlink()
        lock.release()


def start_background(
    state_dir: Path, *, nodes: int, port: int, timeout: float = 30.0
) -> AgentRecord:
    """Start an agent for ``state_dir`` in the background; return once it serves.

    If an agent already serves this state directory, its record is returned unchanged.
    """
    existing = running_agent(state_dir)
    if existing is not None:
        return existing
    state_dir.mkdir(parents=True, exist_ok=True)
    read_end, write_end = os.pipe()
    args = [
        sys.executable,
        "-m",
        "fabrichost.agent",  # the agent alone, without the command line's imports
        "--state-dir",
        str(state_dir),
        "--nodes",
        str(nodes),
        "--port",
        str(port),
        "--ready-fd",
        str(write_end),
    ]
    with (state_dir / LOG_FILE).open("ab") as log_file:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        answer = os.read(read_end, 64) if ready else b""
    finally:
        os.close(read_end)
    if answer.startswith(b"ready"):
        record = AgentRecord.read(state_dir)
        if record is not None:
            proc.returncode = 0  # detached on purpose: the agent outlives this command
            return record
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    tail = (state_dir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-5:]
    reason = "\n  ".join(tail) or "no output"
    raise FabricHostError(f"the agent did not start (see {state_dir / LOG_FILE}):\n  {reason}")


def running_agent(state_dir: Path) -> AgentRecord | None:
    """The record of the agent serving ``state_dir``, if one is alive."""
    record = AgentRecord.read(state_dir)
    if record is None or not StateDirLock(state_dir).is_held_elsewhere():
        return None
    return record if _same_process(record.AgentProcessId, record.AgentStartTime) else None


def _same_process(pid: int, start_time: float) -> bool:
    """True if ``pid`` is still the process that started at ``start_time`` (no PID reuse)."""
    try:
        proc = psutil.Process(pid)
        # A zombie (or a process on its way out) is not a running agent any more.
        alive = proc.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
        return alive and abs(proc.create_time() - start_time) < 0.01
    except psutil.Error:
        return False


def stop_background(state_dir: Path, *, timeout: float = 30.0) -> bool:
    """Stop the agent of ``state_dir`` and every process it started. True if one was running."""
    import httpx

    record = AgentRecord.read(state_dir)
    was_running = False
    if record is not None and _same_process(record.AgentProcessId, record.AgentStartTime):
        was_running = True
        try:
            pidfd = os.pidfd_open(record.AgentProcessId)
        except ProcessLookupError:  # it exited just now
            pidfd = -1
        try:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{record.Endpoint}/$/fabrichost/Shutdown", timeout=5.0)
            if pidfd >= 0 and not _wait_exit(pidfd, timeout):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                _wait_exit(pidfd, 5.0)
        finally:
            if pidfd >= 0:
                os.close(pidfd)
    with contextlib.suppress(OSError):
        (state_dir / "agent.json").unlink()
    sweep_strays(state_dir)
    return was_running


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Wait for the process behind ``pidfd`` to exit (the kernel makes the pidfd readable).

    A pidfd, not polling: the agent is not our child, and once it exits it may stay a zombie
    until PID 1 reaps it, which is not our business.
    """
    ready, _, _ = select.select([pidfd], [], [], timeout)
    return bool(ready)
