"""Fork servers: pre-warmed interpreters that start runtime hosts in a millisecond or two.

Theory of operation (``docs/fork-server.md``). A :class:`ForkServer` is a child of the agent, in
a session of its own, running ``fabrichost.runtime.serve_forks``: it has imported the runtime
and waits on a ``SOCK_SEQPACKET`` control socket. :meth:`ForkServer.fork` sends one
``ForkRequest`` with the host's descriptors (``SCM_RIGHTS``) and awaits the answer, so a
server that hangs (stopped, swapped out) delays only the starts that need it, never the agent:
the server forks a child that forks the host and exits, so by the time the answer arrives the
host has been reparented to the agent (a child subreaper, ``_orphans``) and has made itself a
fresh ``python -m``. The agent then supervises it as any spawned child
(``ChildProcess.adopt``): its pidfd, its exact exit status from ``waitpid``, the group and tree
kills, the leftovers of its incarnation. The orphan reaper is held from the request until the
pid is noted as spawned (``reaping_held``): a host that exits at once stays a zombie, its exit
status and its pid kept for its owner.

Why a double fork rather than the server reporting exit statuses: the host is then the agent's
child like a spawned one, so every exit status (a signal too) comes from the kernel, the zombie
keeps its pid (and group) from being reused until the agent reaps it, and a fork server that
dies (killed, crashed) costs no host and no exit status.

:class:`ForkServers` keeps one server per interpreter and start-up environment
(``ForkPlan.key``), started on first need; a server that died is started again on the next need,
one that cannot start is not tried again (hosts are spawned). Forking needs the agent to adopt
orphans (the daemon does; a cluster embedded in another process spawns).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import os
import socket
import subprocess
from typing import TYPE_CHECKING, Final

import psutil

from fabrichost.agent._console import open_console
from fabrichost.agent._orphans import adopting, find_leftovers, reaping_held
from fabrichost.agent._proctree import ChildProcess
from fabrichost.errors import ProcessError, ProtocolError
from fabrichost.protocol import (
    MAX_FORK_MESSAGE,
    ForkFailed,
    ForkRequest,
    ForkServerReady,
    decode_fork_message,
    encode_fork_message,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence
    from pathlib import Path

    from fabrichost.agent._console import ConsoleRedirector
    from fabrichost.agent._forkable import ForkPlan

__all__ = ("ForkServer", "ForkServerGone", "ForkServers")

log = logging.getLogger(__name__)

SERVER_CODE: Final = "import sys; del sys.path[0]; import fabrichost.runtime as r; r.serve_forks()"
START_TIMEOUT: Final = 30.0  # importing the runtime on a busy machine
# A fork answers in milliseconds; a start waits this long only for a server that hangs.
FORK_TIMEOUT: Final = 10.0
STOP_TIMEOUT: Final = 5.0
MAX_SERVERS: Final = 4  # distinct interpreters or start-up environments; more are spawned
_SPACE_VAR: Final = "FABRICHOST_FORK_SPACE"  # room for a host's environment (see the server)
_ARGV_SPACE: Final = 1024


class ForkServerGone(Exception):
    """The fork server is dead or does not answer: spawn instead, and start another."""


class ForkServer:
    """One fork server process and its control socket. Make it with :meth:`start`."""

    def __init__(
        self,
        child: ChildProcess,
        sock: socket.socket,
        ready: ForkServerReady,
        redirectors: list[ConsoleRedirector],
    ) -> None:
        self.child = child
        self.ready = ready
        self._sock = sock
        self._redirectors = redirectors
        self._broken = False
        self._turn = asyncio.Lock()  # one request and its answer at a time on the socket

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def alive(self) -> bool:
        return not self._broken and self.child.returncode is None

    @classmethod
    async def start(
        cls, interpreter: str, startup_env: Mapping[str, str], state_dir: Path
    ) -> ForkServer:
        """Start a server for ``interpreter``; return once it has imported the runtime.

        It writes its own output to ``state_dir/forkserver_<n>.out|.err``. It does not carry
        the state directory's marker (``ENV_MARKER`` names the code packages' processes; the
        hosts it forks carry it): it dies with the agent (``PR_SET_PDEATHSIG``, and the end of
        its control socket), and the agent stops it at shutdown.

        Raises:
            ForkServerGone: it did not start (exited, or said nothing in time).
        """
        agent_end, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        own = "".join(f"{k}={v}\0" for k, v in os.environ.items())
        env = {
            # First, so it is where a host's environment is written (the server's own is small).
            _SPACE_VAR: "." * max(16384, 2 * len(own)),
            **startup_env,
            "PATH": os.environ.get("PATH", ""),
        }
        argv = [interpreter, "-c", SERVER_CODE, str(server_end.fileno()), str(os.getpid())]
        argv.append("fork-server" + " " * _ARGV_SPACE)  # room for a host's command line
        out_w, err_w, redirectors = open_console(
            state_dir, "forkserver", max_bytes=1024 * 1024, retention=2
        )
        try:
            child = ChildProcess.spawn(
                argv, cwd="/", env=env, pass_fds=(server_end.fileno(),), stdout=out_w, stderr=err_w
            )
        except ProcessError as exc:
            agent_end.close()
            for redirector in redirectors:
                redirector.close()
            raise ForkServerGone(str(exc)) from exc
        finally:
            server_end.close()
            os.close(out_w)
            os.close(err_w)
        server = cls(child, agent_end, ForkServerReady(child.pid, 0, 0), redirectors)
        try:
            agent_end.setblocking(False)
            async with asyncio.timeout(START_TIMEOUT):
                data = await asyncio.get_running_loop().sock_recv(agent_end, MAX_FORK_MESSAGE)
            message = decode_fork_message(data) if data else None
            if not isinstance(message, ForkServerReady):
                raise ForkServerGone(f"the fork server said {data[:200]!r} instead of ready")
        except (TimeoutError, OSError, ProtocolError) as exc:
            await server.stop()
            raise ForkServerGone(f"the fork server did not start: {exc!r}") from exc
        except ForkServerGone:
            await server.stop()
            raise
        server.ready = message
        return server

    async def fork(
        self,
        request: ForkRequest,
        fds: Sequence[int],
        timeout: float = FORK_TIMEOUT,  # noqa: ASYNC109  (a server that hangs is given up)
    ) -> int:
        """Fork a host; return its pid (a child of this process by now).

        Call it inside ``reaping_held()`` up to ``ChildProcess.adopt``: the host may have
        exited by the time the answer comes. Requests to one server take turns. Cancelled, the
        server is killed (its conversation is lost); a host it made sees its channel end.

        Raises:
            ForkServerGone: the server is dead, does not answer within ``timeout`` seconds, or
                broke the protocol (it is killed).
            ProcessError: the host could not become what was asked (e.g. no such working
                folder), as a spawn that fails; nothing runs.
        """
        async with self._turn:
            if not self.alive:
                raise ForkServerGone(f"fork server {self.pid} has exited")
            try:
                payload = encode_fork_message(request)
                async with asyncio.timeout(timeout):
                    await self._send(payload, fds)
                    loop = asyncio.get_running_loop()
                    data = await loop.sock_recv(self._sock, MAX_FORK_MESSAGE)
                if not data:
                    raise ForkServerGone(f"fork server {self.pid} has exited")
                answer = decode_fork_message(data)
            except TimeoutError as exc:
                self._abandon()
                raise ForkServerGone(
                    f"fork server {self.pid} did not answer in {timeout:g} s (killed)"
                ) from exc
            except (OSError, ProtocolError, ForkServerGone) as exc:
                self._abandon()
                if isinstance(exc, ForkServerGone):
                    raise
                raise ForkServerGone(f"fork server {self.pid} failed: {exc!r}") from exc
            except asyncio.CancelledError:
                self._abandon()
                raise
        if isinstance(answer, ForkFailed):
            if answer.pid is not None:  # it exited; it is our child: reap it
                with contextlib.suppress(ProcessError):
                    await ChildProcess.adopt(answer.pid, env={}).exited
            raise ProcessError(f"cannot start {request.module} in {request.cwd}: {answer.error}")
        if isinstance(answer, ForkServerReady | ForkRequest):
            self._abandon()
            raise ForkServerGone(f"fork server {self.pid} answered {answer!r}")
        return answer.pid

    async def _send(self, payload: bytes, fds: Sequence[int]) -> None:
        """One message with ``fds``; waits for room if the socket's buffer is full."""
        rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        loop = asyncio.get_running_loop()
        while True:
            try:
                self._sock.sendmsg([payload], rights)
                return
            except BlockingIOError:
                room: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self._sock, _resolve, room)
                try:
                    await room
                finally:
                    loop.remove_writer(self._sock)

    def _abandon(self) -> None:
        self._broken = True
        self.child.kill_tree()  # its exit is reaped by the child's pidfd reader

    async def stop(self) -> None:
        """Stop the server (end of its control socket, then SIGKILL); hosts keep running."""
        self._broken = True
        self._sock.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT):
                await asyncio.shield(self.child.exited)
        if self.child.returncode is None:
            await self.child.kill()
        for redirector in self._redirectors:
            redirector.close()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _kill_unanswered_host(env: Mapping[str, str], leftover_marker: str | None) -> None:
    """SIGKILL a host the server made but never named (it hung or died after the fork).

    Its channel and lock are the ones the spawn that replaces it gets: it must not run beside
    it. A host still below the server died with it (``_abandon``) or, its status pipe broken,
    exits before its module runs; one already reparented carries the incarnation's marker.
    """
    if leftover_marker is None or leftover_marker not in env:
        return
    for proc in find_leftovers(leftover_marker, env[leftover_marker]):
        with contextlib.suppress(psutil.Error):
            proc.kill()


class ForkServers:
    """The agent's fork servers, one per ``ForkPlan.key``, started on first need.

    ``start_server`` starts one (``ForkServer.start``; tests give servers that misbehave on
    purpose); ``fork_timeout`` bounds the wait for a server's answer.
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        enabled: bool = True,
        start_server: Callable[[str, Mapping[str, str], Path], Awaitable[ForkServer]] | None = None,
        fork_timeout: float = FORK_TIMEOUT,
    ) -> None:
        self.state_dir = state_dir
        self.enabled = enabled
        self._start_server = ForkServer.start if start_server is None else start_server
        self._fork_timeout = fork_timeout
        self._servers: dict[object, ForkServer] = {}
        self._starting: dict[object, asyncio.Task[None]] = {}
        self._failed: set[object] = set()
        self._closed = False

    def usable(self) -> bool:
        """Whether hosts may be forked at all (enabled, and the agent adopts orphans)."""
        return self.enabled and not self._closed and adopting()

    def server(self, plan: ForkPlan) -> ForkServer | None:
        """The running server for ``plan``, if there is one."""
        server = self._servers.get(plan.key)
        return server if server is not None and server.alive else None

    async def prepare(self, plan: ForkPlan) -> None:
        """Make sure a server for ``plan`` runs (start it and wait, once); never raises."""
        key = plan.key
        if not self.usable() or self.server(plan) is not None or key in self._failed:
            return
        if key not in self._starting and len(self._servers) >= MAX_SERVERS:
            self._forget_dead()
            if len(self._servers) >= MAX_SERVERS:
                return
        task = self._starting.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._start(plan))
            self._starting[key] = task
        await asyncio.shield(task)

    async def _start(self, plan: ForkPlan) -> None:
        key = plan.key
        try:
            env = dict(plan.startup_env)
            server = await self._start_server(plan.interpreter, env, self.state_dir)
        except ForkServerGone as exc:
            log.warning("no fork server for %s; its hosts are spawned: %s", plan.interpreter, exc)
            self._failed.add(key)
        else:
            if self._closed:
                await server.stop()
            else:
                self._servers[key] = server
                log.info("fork server %d ready for %s", server.pid, plan.interpreter)
        finally:
            self._starting.pop(key, None)

    def _forget_dead(self) -> None:
        for key, server in list(self._servers.items()):
            if not server.alive:
                del self._servers[key]

    async def launch(
        self,
        plan: ForkPlan,
        *,
        cwd: str,
        env: Mapping[str, str],
        pass_fds: Sequence[int],
        stdout: int,
        stderr: int,
        leftover_marker: str | None,
    ) -> ChildProcess | None:
        """Fork ``plan``'s host from its server; None when it must be spawned instead.

        ``pass_fds`` keep their numbers in the host, as a spawn keeps them; ``stdout`` and
        ``stderr`` (descriptors, or ``subprocess.DEVNULL``) become 1 and 2.

        Raises:
            ProcessError: the host could not start (as a spawn would have failed).
        """
        server = self.server(plan) if self.usable() else None
        if server is None:
            return None
        size = sum(len(os.fsencode(k)) + len(os.fsencode(v)) + 2 for k, v in env.items())
        if plan.shell_pwd:  # the host may set PWD to its folder's physical path
            size += len(os.fsencode(cwd)) + len("PWD=") + 2
        if size + 1 > server.ready.env_space:
            log.info("environment too large for the fork server (%d bytes): spawning", size)
            return None
        sources: list[int] = []
        targets: list[int] = []
        for target, fd in ((1, stdout), (2, stderr)):
            if fd != subprocess.DEVNULL:
                sources.append(fd)
                targets.append(target)
        sources += pass_fds
        targets += pass_fds
        request = ForkRequest(
            module=plan.module,
            args=plan.args,
            cwd=cwd,
            env=dict(env),
            fds=tuple(targets),
            argv0=plan.argv0,
            shell_pwd=plan.shell_pwd,
        )
        with reaping_held():  # the host is our child from the fork on: its exit is its owner's
            try:
                pid = await server.fork(request, sources, self._fork_timeout)
            except (ForkServerGone, asyncio.CancelledError) as exc:
                if self._servers.get(plan.key) is server:
                    del self._servers[plan.key]
                _kill_unanswered_host(env, leftover_marker)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                log.warning("%s; spawning instead (a new one starts on the next need)", exc)
                return None
            return ChildProcess.adopt(pid, env=env, leftover_marker=leftover_marker)

    async def close(self) -> None:
        """Stop every server (their hosts are stopped by their own supervisors)."""
        self._closed = True
        for task in list(self._starting.values()):
            await asyncio.wait([task])
        servers = list(self._servers.values())
        self._servers.clear()
        await asyncio.gather(*(server.stop() for server in servers))
