"""Endpoint ports: a port given in the manifest is used as is; otherwise one comes from a range.

A port handed out is never handed out again while in use, not by this agent nor by any other
agent on the machine, and a port some other program on the machine is bound to is skipped
(checked with a real bind), so a service never starts on a port it cannot open.

Strategy: ports are machine-wide, while each cluster has its own state directory, so every
cluster on the machine claims the ports it hands out in one shared directory,
``/tmp/fabrichost-ports`` (a fixed path: whoever runs the agent, with whatever ``TMPDIR``, must
meet there). A claim is an ``flock`` on ``<port>.lock`` held by the agent process (the descriptor
is close-on-exec, so no code package inherits it) for as long as the port is allocated. The
kernel drops it when the agent dies, so a killed agent's claims vanish with it, and nothing is
ever deleted (deleting a lock file races with its next claimer). The directory is sticky and
world-writable, like ``/tmp``, so the agents of all users share it; a lock file is read-only
(``flock`` needs no write access), opened without following symlinks, and created only when
missing (Linux refuses ``O_CREAT`` on another user's file in a sticky directory). If that
directory cannot be used, claims fall back to ``/tmp/fabrichost-ports-<uid>``: the clusters of
this user still never collide.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import stat
from pathlib import Path
from typing import Final

from fabrichost.errors import ActivationError

log = logging.getLogger(__name__)

DEFAULT_RANGE: Final = (30001, 31000)  # like SF's ApplicationEndpoints range, one per dev cluster
CLAIMS_DIR: Final = Path("/tmp/fabrichost-ports")  # shared on purpose: see the module doc


class PortAllocator:
    """Hands out loopback TCP ports from ``[low, high]``; ``release`` returns them.

    ``claims_dir`` is where the machine's agents claim ports (default :data:`CLAIMS_DIR`).
    """

    def __init__(
        self,
        low: int = DEFAULT_RANGE[0],
        high: int = DEFAULT_RANGE[1],
        *,
        claims_dir: Path = CLAIMS_DIR,
    ) -> None:
        if not 0 < low <= high < 65536:
            raise ValueError(f"bad port range {low}-{high}")
        self._low, self._high = low, high
        self._next = low
        self._claims: dict[int, int] = {}  # port -> the descriptor holding its claim
        self._wanted_dir = claims_dir
        self._dir: Path | None = None  # set up at the first allocation

    def allocate(self) -> int:
        """Return a free port of the range, round-robin so a just-released port rests a while.

        Raises:
            ActivationError: every port of the range is in use (here, by another cluster or
                by another program).
        """
        claims_dir = self._claims_dir()
        size = self._high - self._low + 1
        for _ in range(size):
            port = self._next
            self._next = self._low if port == self._high else port + 1
            if port in self._claims:
                continue
            fd = _claim(claims_dir, port)
            if fd is None:
                continue  # another cluster on this machine has it
            if _bindable(port):
                self._claims[port] = fd
                return port
            os.close(fd)
        raise ActivationError(f"no free port left in the range {self._low}-{self._high}")

    def release(self, port: int) -> None:
        fd = self._claims.pop(port, None)
        if fd is not None:
            os.close(fd)  # the claim ends with the descriptor

    def in_use(self) -> frozenset[int]:
        return frozenset(self._claims)

    def _claims_dir(self) -> Path:
        if self._dir is None:
            try:
                self._dir = _shared_dir(self._wanted_dir)
            except OSError as exc:
                fallback = self._wanted_dir.with_name(f"{self._wanted_dir.name}-{os.getuid()}")
                log.warning(
                    "cannot claim ports in %s (%s); using %s, which only this user's "
                    "clusters share",
                    self._wanted_dir,
                    exc,
                    fallback,
                )
                self._dir = _private_dir(fallback)
        return self._dir


def _shared_dir(path: Path) -> Path:
    """``path`` as a directory every user may claim in (made sticky and world-writable if we
    create it)."""
    with contextlib.suppress(FileExistsError):
        path.mkdir()
        os.chmod(path, 0o1777)  # mkdir's mode is cut by the umask
    _check_dir(path)
    return path


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700, exist_ok=True)
    _check_dir(path)
    return path


def _check_dir(path: Path) -> None:
    """Refuse a directory someone else could swap the lock files of under us."""
    st = path.lstat()  # a symlink planted in /tmp is refused, not followed
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, "not a directory", str(path))
    shared = st.st_mode & 0o1003 == 0o1003  # sticky, others may create and open lock files
    if st.st_uid != os.getuid() and not shared:
        raise OSError(errno.EPERM, "another user's directory, not sticky and shared", str(path))


def _claim(claims_dir: Path, port: int) -> int | None:
    """Lock ``<port>.lock``; the locked descriptor, or None if another process holds it."""
    path = claims_dir / f"{port}.lock"
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:  # created by another claimer just now
        return _claim(claims_dir, port)
    except OSError as exc:  # unreadable, a symlink: not ours to use
        log.debug("cannot claim port %d at %s: %s", port, path, exc)
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
