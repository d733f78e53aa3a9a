"""Incarnation locks: the kernel's proof that a process is dead.

Strategy: before the agent starts a code package's main entry point it takes an ``flock`` on
that process slot's lock file and passes the locked descriptor to the child (``pass_fds``); then
it closes its own copy. An ``flock`` belongs to the open file description, so from then on the
lock is held exactly as long as the child — or any descendant that inherited the descriptor —
lives, and the kernel releases it at the last one's death, even when the agent itself was killed.
A new incarnation takes the lock with ``LOCK_NB`` first: if it is busy, an earlier incarnation
may still run, so nothing is started (the supervisor retries with backoff). No timeout, no PID
guessing: this is what makes "at most one" hold across crashes and restarts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import TYPE_CHECKING

from fabrichost.errors import ActivationError

if TYPE_CHECKING:
    from pathlib import Path


def acquire_nowait(path: Path) -> int:
    """Lock ``path`` (created if missing) and return the descriptor, inheritable by a child.

    Raises:
        ActivationError: the lock is held: a process of an earlier incarnation may still run.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ActivationError(
            f"{path.name} is still locked by a live process of an earlier incarnation; "
            "not starting another until it is gone"
        ) from None
    return fd


def is_held(path: Path) -> bool:
    """True while some live process holds the lock (probed without keeping it)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return False
