"""The state directory's locks and files that belong to running the agent.

One agent serves one state directory at a time, enforced by an ``flock`` on ``agent.lock`` that
the kernel releases when the agent dies, so a crashed agent never blocks the next one and two
agents never share a directory. ``agent.json`` (``fabrichost.wire.AgentRecord``) tells clients
where the agent listens; ``up.lock`` makes concurrent ``up``s take turns; ``cluster.json`` keeps
the node count.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import secrets
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import psutil

from fabrichost.errors import FabricHostError
from fabrichost.wire import TOKEN_FILE, AgentRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

LOCK_FILE: Final = "agent.lock"
# Held by `fabrichost up` while it starts an agent, so concurrent `up`s of one directory take
# turns: the first starts the agent, the others find it serving.
START_LOCK_FILE: Final = "up.lock"
# The cluster's node count, written by the agent on every start: `up` without `--nodes` keeps it.
CLUSTER_FILE: Final = "cluster.json"
LOG_FILE: Final = "agent.log"
# Seconds an agent keeps trying to take a busy agent.lock before it concludes that another
# agent holds it (a probe holds it for microseconds).
PROBE_PATIENCE: Final = 1.0


def make_private_dir(state_dir: Path) -> None:
    """Create ``state_dir`` readable by its user only (0700), or make an existing one of this
    user so: it holds the agent's token, its logs, the image store and the services' work
    folders, which are nobody else's business (docs/security.md).

    A directory of another user is refused: its owner could read the token and the logs, or
    point this user's clients at a server of theirs by rewriting ``agent.json``.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = state_dir.stat()
    if info.st_uid != os.geteuid():
        raise FabricHostError(
            f"the state directory {state_dir} belongs to {_user(info.st_uid)}, not to "
            f"{_user(os.geteuid())} who runs the agent: its owner could read the agent's token "
            "and logs. Use a directory of your own (--state-dir)."
        )
    if info.st_mode & 0o077:
        state_dir.chmod(0o700)


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def write_token(state_dir: Path) -> str:
    """Write a new random token to ``state_dir/token`` (0600, replaced atomically) and return
    it. The client of the agent's user reads it (``fabrichost.wire.read_token``)."""
    token = secrets.token_urlsafe(32)
    tmp = state_dir / (TOKEN_FILE + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    tmp.replace(state_dir / TOKEN_FILE)
    return token


class StateDirLock:
    """The exclusive lock of one state directory, held for the agent's lifetime."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        make_private_dir(self.path.parent)
        f = self.path.open("a+")
        # A probe (`is_held_elsewhere`, run by `up`, `down` and `status` while an agent
        # starts) holds the lock for an instant: only a lock still held after a short while
        # belongs to another agent.
        deadline = time.monotonic() + PROBE_PATIENCE
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
            f.close()
            holder = AgentRecord.read(self.path.parent)
            who = f" (pid {holder.AgentProcessId}, {holder.Endpoint})" if holder else ""
            raise FabricHostError(
                f"another agent{who} already serves the state directory {self.path.parent}"
            ) from None
        os.set_inheritable(f.fileno(), False)
        # Who holds it, for `down` to find an agent that never starts serving.
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def holder(self) -> psutil.Process | None:
        """The process holding the lock, if it is held: the pid it wrote, checked to be a
        live process that has the lock file open (a pid alone may have been reused)."""
        if not self.is_held_elsewhere():
            return None
        try:
            proc = psutil.Process(int(self.path.read_text().strip()))
            if any(Path(f.path) == self.path for f in proc.open_files()):
                return proc
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def is_held_elsewhere(self) -> bool:
        """True while some live process holds the lock (probe without keeping it)."""
        try:
            f = self.path.open("rb")  # read-only: a directory we cannot write is probed too
        except FileNotFoundError:
            return False
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            with contextlib.suppress(OSError):
                fcntl.flock(f, fcntl.LOCK_UN)
        return False


def read_node_count(state_dir: Path) -> int | None:
    """The node count the last agent of ``state_dir`` ran with (None: never recorded)."""
    try:
        count = json.loads((state_dir / CLUSTER_FILE).read_text())["NodeCount"]
    except (OSError, ValueError, TypeError, KeyError):
        return None
    return count if isinstance(count, int) and count >= 1 else None


def write_node_count(state_dir: Path, count: int) -> None:
    """Record the node count durably (atomic replace, fsynced: it outlives a kill -9)."""
    tmp = state_dir / (CLUSTER_FILE + ".tmp")
    with tmp.open("w") as f:
        f.write(json.dumps({"NodeCount": count}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(state_dir / CLUSTER_FILE)
    fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def start_turn(
    state_dir: Path, deadline: float, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """Hold ``up.lock`` (waiting until ``deadline``, a ``time.monotonic()`` value): one ``up``
    at a time starts an agent for ``state_dir``, and ``down`` waits for a start to finish.
    ``on_wait`` is called once if the lock is busy."""
    make_private_dir(state_dir)
    with (state_dir / START_LOCK_FILE).open("a+") as f:
        waited = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise FabricHostError(
                        f"another `fabrichost up` has been starting the agent of {state_dir} "
                        "for too long"
                    ) from None
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                # flock has no timeout and the holder is another process: a short poll,
                # bounded by the deadline.
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
