"""Orphans of code packages: the agent adopts them (a child subreaper) so it can find them cheaply.

Theory of operation. A process that daemonises (``setsid`` and a fork whose parent exits) leaves
its code package's process group and session; once its parent is gone it is an orphan. By default
the kernel reparents an orphan to PID 1, and only a scan of every process's environment on the
machine finds it again. :func:`adopt_orphans` makes the agent a *child subreaper*
(``prctl(PR_SET_CHILD_SUBREAPER)``): every orphan among the agent's descendants is reparented to
the agent instead. So whatever a code package left behind is one of the agent's own children
(``/proc/self/task/*/children``: a handful of entries), and what it started in turn is found by
walking down from there.

Each main process carries a unique ``FABRICHOST_INCARNATION`` (see ``_activation``). When it exits,
the kernel has reparented its children to us before its pidfd turns readable, so
:func:`find_leftovers` sees all of them: every *adopted* child that carries the incarnation, and
everything below it. ``ChildProcess`` kills those before it reports the exit.

A subreaper must reap what it adopts, or the orphans stay zombies. On every SIGCHLD,
:func:`reap_adopted` reaps the adopted children that have exited: those not spawned through
``ChildProcess`` (their exit status belongs to ``ChildProcess``, which reaps them itself) and not
in the agent's own session. Every code package starts a session of its own and no descendant can
join the agent's, so a child the agent might one day spawn some other way, in its own session,
is never reaped from under its owner.

Without the subreaper (an agent embedded in a process that did not call :func:`adopt_orphans`,
such as a test's in-process cluster) orphans go to PID 1, and :func:`find_leftovers` falls back to
scanning every process's environment: run it off the event loop then (see :func:`adopting`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from typing import TYPE_CHECKING, Final

import psutil

from fabrichost.agent._fence import processes_carrying

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Iterator

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER: Final = 36  # <linux/prctl.h>

# Process-wide, as the subreaper attribute itself is: pids spawned through ChildProcess and not
# reaped yet (their owner reaps them), and whether this process adopts orphans.
_spawned: set[int] = set()
_adopting = False
_held = 0  # reaping_held() blocks in progress


def note_spawned(pid: int) -> None:
    """``pid`` was spawned by its owner, who reaps it: :func:`reap_adopted` leaves it alone."""
    _spawned.add(pid)


def note_reaped(pid: int) -> None:
    _spawned.discard(pid)


@contextlib.contextmanager
def reaping_held() -> Iterator[None]:
    """No adopted child is reaped inside the block; those that exited meanwhile are at its end.

    For a child whose pid its owner learns only later: a fork server's host is the agent's
    child as soon as the server's middle process exits, and it may exit before the server's
    answer names it. Its exit status is its owner's (``ChildProcess.adopt``, which notes it
    as spawned inside the block), never the reaper's, and its pid cannot be reused meanwhile.
    """
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _adopting:
            reap_adopted()


def adopting() -> bool:
    """True once :func:`adopt_orphans` succeeded: :func:`find_leftovers` is then cheap."""
    return _adopting


def adopt_orphans(loop: asyncio.AbstractEventLoop) -> bool:
    """Make this process the subreaper of its descendants, reaping them on ``loop``.

    Call it once, at the start of a process that is the agent and nothing else: from then on
    every orphan below it is its child. Returns False (and changes nothing) if the kernel
    refuses; leftovers are then found by the slower scan.
    """
    global _adopting
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: %s", os.strerror(ctypes.get_errno()))
        return False
    loop.add_signal_handler(signal.SIGCHLD, reap_adopted)
    _adopting = True
    reap_adopted()
    return True


def _children(pid: int | str) -> list[int]:
    """The children of ``pid`` (``"self"`` for this process), from each thread's list."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tids:
        path = f"/proc/{pid}/task/{tid}/children"
        with contextlib.suppress(OSError, ValueError), open(path) as f:
            found += [int(child) for child in f.read().split()]
    return found


def _session(pid: int) -> int | None:
    """The session id of ``pid`` (a zombie's too), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # After the name in parentheses (which may hold anything): state ppid pgrp session ...
    return int(stat.rpartition(")")[2].split()[3])


def _adopted_children() -> list[int]:
    own_session = os.getsid(0)
    return [
        pid
        for pid in _children("self")
        if pid not in _spawned and _session(pid) not in (None, own_session)
    ]


def reap_adopted() -> None:
    """Reap every adopted child that has exited (never one spawned through ``ChildProcess``),
    unless :func:`reaping_held`."""
    if _held:
        return
    for pid in _adopted_children():
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)


def _carries(pid: int, name: str, value: str) -> psutil.Process | None:
    try:
        proc = psutil.Process(pid)
        return proc if proc.environ().get(name) == value else None
    except psutil.Error:
        return None


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    seen = {pid}  # a pid reused in the middle of the walk must not make it loop
    stack = [pid]
    while stack:
        children = [child for child in _children(stack.pop()) if child not in seen]
        seen.update(children)
        found += children
        stack += children
    return found


def find_leftovers(name: str, value: str) -> list[psutil.Process]:
    """Live processes carrying ``name=value`` that the agent adopted, and all their descendants.

    Cheap (the agent's children and their subtrees) once :func:`adopt_orphans` succeeded;
    otherwise a scan of every process on the machine, to be run in a thread.
    """
    if not _adopting:
        return processes_carrying(name, value)
    roots = [proc for pid in _adopted_children() if (proc := _carries(pid, name, value))]
    found = list(roots)
    for root in roots:
        for pid in _descendants(root.pid):
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))  # its create time guards the kill
    return found
