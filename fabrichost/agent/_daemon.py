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
import dataclasses
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import psutil
import uvicorn

from fabrichost._version import __version__
from fabrichost.agent._cluster import AgentSettings, Cluster
from fabrichost.agent._fence import sweep_strays
from fabrichost.agent._persist import Persistence
from fabrichost.agent._statedir import (
    LOG_FILE,
    AgentRecord,
    StateDirLock,
    read_node_count,
    start_turn,
    write_node_count,
)
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from fabrichost.store import Store

log = logging.getLogger(__name__)

# Seconds an agent has to exit after it was asked to (a shutdown or SIGTERM) before SIGKILL,
# once `down`'s own deadline is used up.
AGENT_EXIT_TIMEOUT = 5.0


class _Server(uvicorn.Server):
    """uvicorn, minus its own signal handling: the agent owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(port: int) -> socket.socket:
    # IPPROTO_TCP spelled out: accepted sockets inherit the protocol number, and asyncio turns
    # Nagle off (TCP_NODELAY) only for sockets that say TCP. With proto 0, a response written
    # as headers then body waited for the client's delayed ACK: 40 ms on every request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise FabricHostError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}") from exc
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


_NODE_NAME = re.compile(r"_Node_(\d+)")


def recorded_node_count(state_dir: Path, store: Store) -> int | None:
    """How many nodes the cluster of ``state_dir`` has (None: a fresh state directory).

    ``cluster.json`` says it; a state directory from before that file existed is judged by the
    highest node its store names (node states, replicas, processes).
    """
    count = read_node_count(state_dir)
    if count is not None:
        return count
    names = [*store.nodes(), *(r.node for r in store.replicas())]
    names += [p.node for p in store.processes()]
    numbers = [int(m.group(1)) for n in names if (m := _NODE_NAME.fullmatch(n))]
    return max(numbers) + 1 if numbers else None


def _settle_nodes(
    state_dir: Path, persist: Persistence, settings: AgentSettings, nodes: int | None
) -> AgentSettings:
    """The node count to run with: ``nodes`` if given, else the recorded one, else
    ``settings.node_count``; recorded (file and store) before the cluster is built."""
    store = persist.store
    recorded = recorded_node_count(state_dir, store)
    count = nodes if nodes is not None else (recorded or settings.node_count)
    if recorded is not None and count != recorded:
        log.warning(
            "the cluster of %s had %d node(s); it now has %d (--nodes)", state_dir, recorded, count
        )
    known = store.nodes()
    for i in range(count):
        if f"_Node_{i}" not in known:
            store.set_node(f"_Node_{i}", True)
    for name, up in known.items():
        m = _NODE_NAME.fullmatch(name)
        if m and int(m.group(1)) >= count and not up:
            store.set_node(name, True)  # a removed node that comes back later comes back up
    write_node_count(state_dir, count)
    return dataclasses.replace(settings, node_count=count)


async def serve(
    state_dir: Path,
    *,
    port: int,
    settings: AgentSettings,
    nodes: int | None = None,
    ready_fd: int | None = None,
    on_ready: Callable[[AgentRecord], None] | None = None,
) -> None:
    """Run the agent until SIGINT/SIGTERM or ``POST /$/fabrichost/Shutdown``.

    ``nodes`` is the node count asked for; None keeps the count the state directory records
    (``settings.node_count`` for a fresh one). ``ready_fd`` (a pipe's write end) gets ``ready``
    and is closed, and ``on_ready`` is called, once the HTTP socket listens; if the agent cannot
    start, it gets ``error <message>`` instead. Returns after every hosted process has been
    stopped.
    """
    ready = _ReadyPipe(ready_fd)
    try:
        await _serve(state_dir, port, settings, nodes, ready, on_ready)
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
) -> None:
    from fabrichost.api._app import build_app

    lock = StateDirLock(state_dir)
    lock.acquire()
    try:
        sock = _listen(port)
    except BaseException:
        lock.release()
        raise
    endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    persist = Persistence.open(state_dir)
    settings = _settle_nodes(state_dir, persist, settings, nodes)
    cluster = Cluster(state_dir, settings, persist=persist)
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
        ready.say("ready")
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


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    """What ``up`` found: the serving agent's record, and whether this call started it."""

    record: AgentRecord
    started: bool


def start_background(
    state_dir: Path, *, nodes: int | None, port: int, timeout: float = 30.0
) -> AgentRecord:
    """Start an agent for ``state_dir`` in the background; return once it serves.

    If an agent already serves this state directory, its record is returned unchanged.
    """
    return start_agent(state_dir, nodes=nodes, port=port, timeout=timeout).record


def start_agent(state_dir: Path, *, nodes: int | None, port: int, timeout: float = 30.0) -> Started:
    """Start an agent for ``state_dir`` unless one serves it already; return once one serves.

    ``nodes`` None keeps the node count the state directory records (1 for a fresh one).
    Concurrent calls for one directory take turns (``up.lock``): one starts the agent, the
    others find it serving (``started`` False). An agent started by other means that wins the
    directory's lock meanwhile is waited for and reported the same way.
    """
    deadline = time.monotonic() + timeout
    with start_turn(state_dir, deadline):
        existing = running_agent(state_dir)
        if existing is not None:
            return Started(existing, started=False)
        return _spawn(state_dir, nodes, port, deadline)


def _spawn(state_dir: Path, nodes: int | None, port: int, deadline: float) -> Started:
    read_end, write_end = os.pipe()
    args = [
        sys.executable,
        "-m",
        "fabrichost.agent",  # the agent alone, without the command line's imports
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--ready-fd",
        str(write_end),
    ]
    if nodes is not None:
        args += ["--nodes", str(nodes)]
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
        ready, _, _ = select.select([read_end], [], [], max(0.0, deadline - time.monotonic()))
        answer = os.read(read_end, 4096) if ready else b""
    finally:
        os.close(read_end)
    if answer.startswith(b"ready"):
        record = AgentRecord.read(state_dir)
        if record is not None:
            proc.returncode = 0  # detached on purpose: the agent outlives this command
            return Started(record, started=True)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()
    # Lost the directory to an agent started otherwise (`fabrichost agent`): report that one.
    while StateDirLock(state_dir).is_held_elsewhere():
        other = running_agent(state_dir)
        if other is not None:
            return Started(other, started=False)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if answer.startswith(b"error "):
        reason = answer[len(b"error ") :].decode(errors="replace").strip()
        raise FabricHostError(f"the agent did not start: {reason}")
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


def stop_background(
    state_dir: Path, *, timeout: float = 30.0, on_wait: Callable[[str], None] | None = None
) -> bool:
    """Stop the agent of ``state_dir`` and every process it started. True if one was running.

    An agent that is still starting (an ``up`` waiting for it, or an agent restoring the
    cluster before it serves) is waited for, then stopped: stopping only what it had fenced
    so far would leave it running. One that does not serve within ``timeout`` is killed.
    ``on_wait`` is told once about each kind of wait.
    """
    if not state_dir.is_dir():
        sweep_strays(state_dir)  # its processes may outlive a deleted directory
        return False
    deadline = time.monotonic() + timeout
    told: set[str] = set()

    def waiting(message: str) -> None:
        if message not in told and on_wait is not None:
            on_wait(message)
        told.add(message)

    with contextlib.ExitStack() as stack:
        # An `up` starting the agent finishes first, and so does another `down`. A directory
        # we cannot write, or a turn never given, does not stop us: we go on without it.
        with contextlib.suppress(OSError, FabricHostError):
            stack.enter_context(
                start_turn(
                    state_dir,
                    deadline,
                    on_wait=lambda: waiting(
                        f"waiting for another `fabrichost up` or `down` of {state_dir}"
                    ),
                )
            )
        try:
            return _stop_agent(state_dir, deadline, timeout, waiting)
        finally:
            with contextlib.suppress(OSError):
                (state_dir / "agent.json").unlink()
            sweep_strays(state_dir)


def _stop_agent(
    state_dir: Path, deadline: float, timeout: float, waiting: Callable[[str], None]
) -> bool:
    import httpx

    record = _started_agent(state_dir, deadline, waiting)
    if record is None:
        stuck = StateDirLock(state_dir).holder()
        if stuck is None:
            return False
        log.warning("the agent %d of %s never served; killing it", stuck.pid, state_dir)
        waiting(f"the agent {stuck.pid} did not start serving within {timeout:.0f} s; killing it")
        _kill(stuck)
        return True
    try:
        pidfd = os.pidfd_open(record.AgentProcessId)
    except ProcessLookupError:  # it exited just now
        return True
    try:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{record.Endpoint}/$/fabrichost/Shutdown", timeout=5.0)
        if not _wait_exit(pidfd, max(deadline - time.monotonic(), AGENT_EXIT_TIMEOUT)):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            _wait_exit(pidfd, 5.0)
    finally:
        os.close(pidfd)
    return True


def _started_agent(
    state_dir: Path, deadline: float, waiting: Callable[[str], None]
) -> AgentRecord | None:
    """The record of the agent of ``state_dir``, waiting (until ``deadline``) for one that
    holds the directory's lock but does not serve yet: it restores the cluster first. None if
    no agent serves by then."""
    while True:
        record = AgentRecord.read(state_dir)
        if record is not None and _same_process(record.AgentProcessId, record.AgentStartTime):
            return record
        if not StateDirLock(state_dir).is_held_elsewhere() or time.monotonic() >= deadline:
            return None
        waiting(f"the agent of {state_dir} is starting; stopping it once it serves")
        time.sleep(0.05)  # the agent says nothing to us until it serves: bounded poll


def _kill(proc: psutil.Process) -> None:
    """SIGTERM (a restoring agent has no handler yet: it dies at once), then SIGKILL."""
    with contextlib.suppress(psutil.Error):
        proc.terminate()
        try:
            proc.wait(AGENT_EXIT_TIMEOUT)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)


def _wait_exit(pidfd: int, timeout: float) -> bool:
    """Wait for the process behind ``pidfd`` to exit (the kernel makes the pidfd readable).

    A pidfd, not polling: the agent is not our child, and once it exits it may stay a zombie
    until PID 1 reaps it, which is not our business.
    """
    ready, _, _ = select.select([pidfd], [], [], timeout)
    return bool(ready)
