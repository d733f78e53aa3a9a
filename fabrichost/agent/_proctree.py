"""One spawned child process, its exit as the kernel reports it, and killing its whole tree.

Theory of operation. A child is spawned with ``start_new_session=True``, so it leads its own
session and process group (pgid == pid). Its exit is noticed through a pidfd registered with the
event loop (no polling, no SIGCHLD handler, no waiter thread). When the pidfd turns readable the
leader is a zombie: dead but not reaped, so its pid, which is also the group id, cannot name any
other process yet. That is the one safe moment to SIGKILL stray members of the group, and it is
done right before reaping. After reaping, the pid is never signalled again (PID reuse).

Stopping is SIGINT to the group (Service Fabric's Linux activator sends SIGINT, "Ctrl+C"), a grace
period, then :meth:`ChildProcess.kill_tree`: SIGKILL to the leader through its pidfd, to the group,
and to every psutil descendant (which catches grandchildren that moved to a session of their own).
:func:`wait_gone` then waits, again on pidfds, until those processes are dead.

Leftovers: a descendant that left the group (``setsid``, a daemon) and whose parent exited is out of
reach of the group's SIGKILL and of the leader's psutil tree. A child spawned with a
``leftover_marker`` (the name of a variable whose value is unique to this process, inherited by
everything it starts) has them killed when it exits, however it exits: ``exited`` resolves only
once every process carrying that value, and everything below it, is dead (found cheaply among the
agent's adopted orphans, see ``_orphans``), so a restart never runs beside the old one's leftovers.

Orphaned zombies: when a stray is killed after its parent died, it is reparented to PID 1 (or a
subreaper, such as the agent itself: ``_orphans`` reaps those). If that process never reaps, the
stray stays a zombie: dead, holding no memory, fds or pipes, but with a pid. Here a zombie counts
as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import subprocess
from typing import TYPE_CHECKING

import psutil

from fabrichost.agent._orphans import adopting, find_leftovers, note_reaped, note_spawned
from fabrichost.errors import ProcessError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

__all__ = ("ChildProcess", "wait_gone")

log = logging.getLogger(__name__)

_KILL_TIMEOUT = 5.0  # a SIGKILLed process is gone in milliseconds; this only bounds a bug
# Rounds of looking for leftovers again: one may have forked while its parent was being killed.
_LEFTOVER_ROUNDS = 5


class ChildProcess:
    """A running child: its pid, a future for its exit status, and ways to signal it.

    Create with :meth:`spawn` on the event loop. ``exited`` resolves with the return code
    (negative = killed by that signal, as :mod:`subprocess` reports it) once the child is
    reaped; stray members of its process group are SIGKILLed just before that, and its
    leftovers (see the module doc) are dead by then.
    """

    def __init__(
        self,
        pid: int,
        pidfd: int,
        wait: Callable[[], int],
        mark: tuple[str, str] | None = None,
    ) -> None:
        self._wait = wait  # reaps the child (it has exited: its pidfd is readable)
        self._returncode: int | None = None
        self._pidfd = pidfd
        self._mark = mark
        self._loop = asyncio.get_running_loop()
        self.pid: int = pid
        note_spawned(self.pid)  # reaped here, never by the orphan reaper
        self._finisher: asyncio.Task[None] | None = None  # held: the loop keeps tasks weakly
        self.exited: asyncio.Future[int] = self._loop.create_future()
        self.deactivating = False  # set when we asked it to go: its exit is not a failure
        self._loop.add_reader(pidfd, self._reap)

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        stdout: int = subprocess.DEVNULL,
        stderr: int = subprocess.DEVNULL,
        leftover_marker: str | None = None,
    ) -> ChildProcess:
        """Start ``argv`` in its own session; raise :class:`ProcessError` if it cannot start.

        ``leftover_marker`` names a variable of ``env`` whose value only this process and its
        descendants carry: whatever carries it when the child exits is killed (module doc).
        No ``preexec_fn``: that would disable the vfork fast path of :mod:`subprocess`.
        """
        try:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                pass_fds=tuple(pass_fds),
                close_fds=True,
                start_new_session=True,
            )
        except OSError as exc:
            raise ProcessError(
                f"cannot start {argv[0]} (working folder {cwd}): {exc.strerror or exc}"
            ) from exc
        except (ValueError, subprocess.SubprocessError) as exc:  # e.g. a NUL in an env value
            raise ProcessError(f"cannot start {argv[0]}: {exc}") from exc
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError as exc:  # pragma: no cover - kernels before 5.3
            popen.kill()
            popen.wait()
            raise ProcessError(f"cannot watch process {popen.pid}: {exc}") from exc
        return cls(popen.pid, pidfd, popen.wait, _mark(env, leftover_marker))

    @classmethod
    def adopt(
        cls, pid: int, *, env: Mapping[str, str], leftover_marker: str | None = None
    ) -> ChildProcess:
        """Supervise ``pid``, a child of this process it did not spawn itself: a fork server's
        host, reparented to the agent (``_forkserver``). Same contract as :meth:`spawn`; call
        it in the same event-loop step that learned the pid, so no other reaper runs first.
        """
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as exc:
            raise ProcessError(f"cannot watch process {pid}: {exc}") from exc
        return cls(pid, pidfd, functools.partial(_wait_child, pid), _mark(env, leftover_marker))

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped, else None."""
        return self._returncode

    def _killpg(self, sig: int) -> None:
        """Signal the whole process group; only while the leader is unreaped (pgid still ours)."""
        if self._returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (no-op once reaped)."""
        self._killpg(sig)

    def kill_tree(self) -> list[psutil.Process]:
        """SIGKILL the leader, its group and all its descendants; return the descendants.

        Does a psutil scan (about 1 ms per 100 processes on the machine). No-op once reaped.
        """
        if self._returncode is not None:
            return []
        try:
            descendants = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        self._killpg(signal.SIGKILL)
        for proc in descendants:
            with contextlib.suppress(psutil.Error):
                proc.kill()  # psutil checks the create time, so a reused pid is left alone
        return descendants

    async def terminate(self, grace: float) -> None:
        """SIGINT to the group, up to ``grace`` seconds, then :meth:`kill`.

        Returns when the child is reaped and its group (and, after a SIGKILL, its descendants)
        are dead. Cancellation leaves the child as it is; :meth:`kill_now` is the last resort.
        """
        self.signal_group(signal.SIGINT)
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(self.exited)
        except TimeoutError:
            log.info("pid %d ignored SIGINT for %.1f s; killing its tree", self.pid, grace)
            await self.kill()
        else:
            await self._wait_tree_gone([])

    async def kill(self) -> None:
        """SIGKILL the whole tree now; returns when it is reaped and every member is dead."""
        descendants = self.kill_tree()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_KILL_TIMEOUT):
                await asyncio.shield(self.exited)
        await self._wait_tree_gone(descendants)

    async def _wait_tree_gone(self, descendants: list[psutil.Process]) -> None:
        # The group was SIGKILLed before the leader was reaped; wait until it is really gone.
        try:
            async with asyncio.timeout(_KILL_TIMEOUT):
                await wait_gone(self.pid, descendants)
        except TimeoutError:
            log.error("processes of group %d survived SIGKILL for %.0f s", self.pid, _KILL_TIMEOUT)

    def _reap(self, *, wait: bool = True) -> None:
        if self._returncode is not None:
            return
        self._killpg(signal.SIGKILL)  # strays of the group; the leader is a zombie (see module doc)
        self._returncode = returncode = self._wait()
        note_reaped(self.pid)
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        if self._mark is not None and wait:
            self._finisher = self._loop.create_task(self._kill_leftovers(self._mark, returncode))
        else:
            if self._mark is not None and adopting():  # the cheap look only: we cannot wait
                for proc in find_leftovers(*self._mark):
                    with contextlib.suppress(psutil.Error):
                        proc.kill()
            self._set_exited(returncode)

    def _set_exited(self, returncode: int) -> None:
        if not self.exited.done():
            self.exited.set_result(returncode)

    async def _kill_leftovers(self, mark: tuple[str, str], returncode: int) -> None:
        """SIGKILL what carries ``mark`` until nothing does, then resolve ``exited``."""
        try:
            async with asyncio.timeout(_KILL_TIMEOUT):
                for _ in range(_LEFTOVER_ROUNDS):
                    if adopting():  # the agent's own children: a few /proc reads
                        leftovers = find_leftovers(*mark)
                    else:  # every process on the machine: off the loop
                        leftovers = await asyncio.to_thread(find_leftovers, *mark)
                    if not leftovers:
                        break
                    log.warning(
                        "killing %d process(es) left behind by pid %d: %s",
                        len(leftovers),
                        self.pid,
                        [p.pid for p in leftovers],
                    )
                    for proc in leftovers:
                        with contextlib.suppress(psutil.Error):
                            proc.kill()  # psutil checks the create time: a reused pid is spared
                    await wait_gone(None, leftovers)
        except TimeoutError:
            log.error("leftovers of pid %d survived SIGKILL for %.0f s", self.pid, _KILL_TIMEOUT)
        except Exception:
            log.exception("looking for the leftovers of pid %d failed", self.pid)
        finally:
            self._set_exited(returncode)

    def kill_now(self) -> None:
        """Kill the tree and reap synchronously: the last resort when we cannot await.

        Blocks for the moment the kernel needs to finish off a SIGKILLed process.
        """
        if self._returncode is None:
            self.kill_tree()
            self._reap(wait=False)


def _mark(env: Mapping[str, str], leftover_marker: str | None) -> tuple[str, str] | None:
    if leftover_marker is None or leftover_marker not in env:
        return None
    return (leftover_marker, env[leftover_marker])


def _wait_child(pid: int) -> int:
    """Reap child ``pid``; its status as :mod:`subprocess` reports it (-N: killed by N)."""
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _group_members(pgid: int) -> list[int]:
    """Pids whose process group is ``pgid`` (live or zombie); cheap when the group is empty."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    except PermissionError:
        pass
    members = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                if os.getpgid(int(name)) == pgid:
                    members.append(int(name))
    return members


def _open_pidfds(pgid: int | None, procs: Iterable[psutil.Process]) -> list[int]:
    """pidfds of the members of ``pgid`` and of ``procs``, each checked to be the same process."""
    fds: list[int] = []
    candidates: list[tuple[int, psutil.Process | None]] = [(p.pid, p) for p in procs]
    if pgid is not None:
        candidates += [(pid, None) for pid in _group_members(pgid)]
    for pid, proc in candidates:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        # Strategy: the pidfd was opened first, so if the pid still names the process we meant
        # (same group, or same psutil create time) the pidfd refers to that process.
        try:
            same = os.getpgid(pid) == pgid if proc is None else proc.is_running()
        except OSError:
            same = False
        if same:
            fds.append(fd)
        else:
            os.close(fd)
    return fds


async def wait_gone(pgid: int | None, procs: Iterable[psutil.Process] = ()) -> None:
    """Wait until every member of process group ``pgid`` and every process in ``procs`` is dead.

    Call it only after the group was SIGKILLed while its leader was unreaped (``ChildProcess``
    does that); it does not signal anyone. Zombies count as dead.

    Args:
        pgid: the group to watch, or None for only ``procs``.
        procs: more processes to watch, e.g. what :meth:`ChildProcess.kill_tree` returned.

    No time limit of its own: wrap it in ``asyncio.timeout``. On cancellation or timeout the
    pidfds are closed.
    """
    fds = _open_pidfds(pgid, procs)
    if not fds:
        return
    loop = asyncio.get_running_loop()
    waiters: list[asyncio.Future[None]] = []

    def _done(fut: asyncio.Future[None]) -> None:
        if not fut.done():
            fut.set_result(None)

    try:
        for fd in fds:
            fut: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _done, fut)
            waiters.append(fut)
        await asyncio.gather(*waiters)
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)
