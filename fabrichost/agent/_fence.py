"""Fencing the processes of an earlier run of the agent, before anything starts again.

Strategy: every process the agent starts carries ``FABRICHOST_AGENT_STATE_DIR=<state dir>`` in
its environment, and descendants inherit it. When an agent starts (or ``down`` sweeps up), every
process carrying this state directory's marker is, by construction, from an earlier run: nothing
of this run exists yet. Those are killed (a PID reused by an unrelated process does not carry the
marker, so it is never signalled). Then each recorded process slot's incarnation lock is probed:
the kernel releases it only when every holder is dead, so a free lock is the proof. A lock still
held (a descendant that scrubbed its environment) is reported; the slot's next start waits for
it (``_lock.acquire_nowait`` refuses), so nothing is ever duplicated.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from fabrichost.agent._environment import ENV_MARKER
from fabrichost.agent._lock import is_held

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)


def processes_carrying(name: str, value: str) -> list[psutil.Process]:
    """Live (not zombie) processes whose environment has ``name=value``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(name) == value and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            continue
    return found


def sweep_strays(state_dir: Path, grace: float = 2.0) -> list[int]:
    """Stop every process that carries the marker of ``state_dir``; return their pids.

    SIGTERM first, SIGKILL after ``grace`` seconds; returns once they are gone (or after a
    further ``grace``).
    """
    strays = processes_carrying(ENV_MARKER, str(state_dir))
    for proc in strays:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(strays, timeout=grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace)
    return [p.pid for p in strays]


# Unique per main process; its descendants inherit it. When the main process exits, whatever
# still carries it is killed (ChildProcess's leftover_marker).
INCARNATION_ENV = "FABRICHOST_INCARNATION"


def fence_previous_run(state_dir: Path, lock_paths: Iterable[str]) -> list[str]:
    """Kill the earlier run's processes and check their locks; return the slots still held."""
    killed = sweep_strays(state_dir, grace=1.0)
    if killed:
        log.warning("stopped %d process(es) of an earlier run: %s", len(killed), killed)
    held = [path for path in lock_paths if is_held(Path(path))]
    for path in held:
        log.error(
            "%s is still held by a process of an earlier run; that slot will not start "
            "until it exits",
            path,
        )
    return held
