"""Running the agent in the background (``up``) and stopping it (``down``).

``up`` starts ``python -m fabrichost.daemon`` in its own session with one end of a pipe; the agent
writes ``ready`` to it once its HTTP socket listens and ``agent.json`` is written, so ``up`` waits
for an event with a deadline instead of polling a port. ``down`` asks the agent to shut down (it
stops every process it started), waits for it to exit, and then sweeps any process that still
carries the state directory's marker variable — so nothing is left behind even after a SIGKILL.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import select
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import psutil

from fabrichost.daemon._statedir import LOG_FILE, StateDirLock, start_turn
from fabrichost.errors import FabricHostError
from fabrichost.wire import AGENT_FILE, AgentRecord, read_token

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from pathlib import Path

log = logging.getLogger(__name__)

# Seconds an agent has to exit after it was asked to (a shutdown or SIGTERM) before SIGKILL,
# once `down`'s own deadline is used up.
AGENT_EXIT_TIMEOUT = 5.0


@dataclasses.dataclass(frozen=True, slots=True)
class Started:
    """What ``up`` found: the serving agent's record, and whether this call started it."""

    record: AgentRecord
    started: bool


def start_background(
    state_dir: Path,
    *,
    nodes: int | None,
    port: int,
    timeout: float = 30.0,
    fork_server: bool = True,
) -> AgentRecord:
    """Start an agent for ``state_dir`` in the background; return once it serves.

    If an agent already serves this state directory, its record is returned unchanged.
    ``fork_server`` False makes it spawn every runtime host (``docs/fork-server.md``).
    """
    started = start_agent(
        state_dir, nodes=nodes, port=port, timeout=timeout, fork_server=fork_server
    )
    return started.record


def start_agent(
    state_dir: Path,
    *,
    nodes: int | None,
    port: int,
    timeout: float = 30.0,
    allow_users: Collection[int] = (),
    owner_fd: int | None = None,
    remove_state_on_exit: bool = False,
    fork_server: bool = True,
) -> Started:
    """Start an agent for ``state_dir`` unless one serves it already; return once one serves.

    ``nodes`` None keeps the node count the state directory records (1 for a fresh one).
    Concurrent calls for one directory take turns (``up.lock``): one starts the agent, the
    others find it serving (``started`` False). An agent started by other means that wins the
    directory's lock meanwhile is waited for and reported the same way. ``allow_users`` are
    uids served besides the agent's own user (``serve``).

    ``owner_fd`` ties the agent to its starter: the read end of a pipe whose write end only the
    starter holds. When the starter closes it or dies (by any signal, SIGKILL too: the kernel
    closes its fds), the agent stops as on SIGTERM. ``remove_state_on_exit`` makes the agent
    delete ``state_dir`` once it has stopped (a temporary one).
    """
    deadline = time.monotonic() + timeout
    with start_turn(state_dir, deadline):
        existing = running_agent(state_dir)
        if existing is not None:
            return Started(existing, started=False)
        extra: list[str] = []
        if owner_fd is not None:
            extra += ["--owner-fd", str(owner_fd)]
        if remove_state_on_exit:
            extra.append("--remove-state-on-exit")
        if not fork_server:
            extra.append("--no-fork-server")
        pass_fds = () if owner_fd is None else (owner_fd,)
        return _spawn(state_dir, nodes, port, deadline, allow_users, extra, pass_fds)


def _spawn(
    state_dir: Path,
    nodes: int | None,
    port: int,
    deadline: float,
    allow_users: Collection[int],
    extra: list[str],
    pass_fds: tuple[int, ...],
) -> Started:
    read_end, write_end = os.pipe()
    args = [
        sys.executable,
        "-m",
        "fabrichost.daemon",  # the agent alone, without the command line's imports
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
        "--ready-fd",
        str(write_end),
    ]
    if nodes is not None:
        args += ["--nodes", str(nodes)]
    for uid in allow_users:
        args += ["--allow-user", str(uid)]
    args += extra
    with (state_dir / LOG_FILE).open("ab") as log_file:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=(write_end, *pass_fds),  # close_fds: nothing else of ours leaks in
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
    state_dir: Path,
    *,
    timeout: float = 30.0,
    on_wait: Callable[[str], None] | None = None,
    on_swept: Callable[[list[int]], None] | None = None,
) -> bool:
    """Stop the agent of ``state_dir`` and every process it started. True if one was running.

    An agent that is still starting (an ``up`` waiting for it, or an agent restoring the
    cluster before it serves) is waited for, then stopped: stopping only what it had fenced
    so far would leave it running. One that does not serve within ``timeout`` is killed.
    ``on_wait`` is told once about each kind of wait; ``on_swept`` is given the pids of the
    processes left behind by an earlier agent (a killed one) that were stopped afterwards.
    """

    def sweep() -> None:
        from fabrichost.agent import sweep_strays  # (the agent's code: only when needed)

        swept = sweep_strays(state_dir)
        if swept and on_swept is not None:
            on_swept(swept)

    if not state_dir.is_dir():
        sweep()  # its processes may outlive a deleted directory
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
                (state_dir / AGENT_FILE).unlink()
            sweep()


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
        token = read_token(state_dir)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{record.Endpoint}/$/fabrichost/Shutdown", timeout=5.0, headers=headers)
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
