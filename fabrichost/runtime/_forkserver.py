"""The fork server: a pre-warmed interpreter that forks runtime hosts when the agent asks.

The agent starts it (``docs/fork-server.md``) as::

    <python> -c "<FORK_SERVER_CODE>" <control fd> <agent pid> <padding>

in its own session, with the interpreter's environment and nothing of any host. It has
imported ``fabrichost.runtime`` and what a host's event loop needs, and nothing of the user's.
For each :class:`ForkRequest` it forks twice: the first child forks the host and exits at once,
so the host is reparented to the agent (the agent is a child subreaper) and is the agent's own
child from then on, exactly as a spawned host is: the agent waits for its exit status itself,
and a fork server that dies costs no running host. Before the answer, the host has become what
a fresh ``python -m <module>`` would be (:func:`_become_host`): its own session, working
folder, descriptors (only the ones sent, at the numbers asked for, everything inherited from
the server closed), environment (also in ``/proc/PID/environ``, which the agent's fencing
reads), ``sys.argv``, ``sys.path`` and a fresh ``__main__``. It then leaves the server's code
and :func:`serve_forks` runs the module with :mod:`runpy`, as ``-m`` does: the user's imports
happen in the host, after the fork.

The server dies with the agent: ``PR_SET_PDEATHSIG`` (SIGKILL), and the end of its control
socket. It never configures logging, starts a thread or touches ``tempfile``: a host inherits
the interpreter as the server left it.
"""

from __future__ import annotations

import array
import builtins
import contextlib
import ctypes
import fcntl
import gc
import importlib
import os
import signal
import socket
import sys
import types
from dataclasses import dataclass
from typing import Final

from fabrichost.errors import ProtocolError
from fabrichost.protocol import (
    MAX_FORK_MESSAGE,
    Forked,
    ForkFailed,
    ForkRequest,
    ForkServerReady,
    decode_fork_message,
    encode_fork_message,
)

__all__ = ("serve_forks",)

_PR_SET_PDEATHSIG: Final = 1  # <linux/prctl.h>
_MAX_FDS: Final = 16  # descriptors one request may carry
_READY: Final = "ready"  # what a host says once it is prepared (anything else: why it is not)
# What a host's event loop and channel import when they start: loaded here once, shared by
# every host (copy-on-write), instead of read again by each.
_PRELOAD: Final = (
    "asyncio",
    "asyncio.unix_events",
    "concurrent.futures.thread",
    "runpy",
    "selectors",
    "importlib.util",
)


@dataclass(frozen=True, slots=True)
class _Areas:
    """Where the kernel reads this process's ``/proc/PID/cmdline`` and ``environ`` from."""

    arg_start: int
    arg_end: int
    env_start: int
    env_end: int

    @classmethod
    def of_this_process(cls) -> _Areas:
        with open("/proc/self/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # After the name: state is field 3; arg_start..env_end are fields 48..51 (Linux 3.5+).
        try:
            values = [int(fields[i - 3]) for i in (48, 49, 50, 51)]
        except (IndexError, ValueError):
            values = [0, 0, 0, 0]
        return cls(*values)


@dataclass(frozen=True, slots=True)
class _Job:
    """What a forked host runs once it has left the server's code."""

    module: str


def serve_forks() -> None:
    """Run the fork server (``sys.argv``: control fd, agent pid); in a host, run its module.

    Returns only in a forked host, once its module has run; exceptions from the module
    propagate to the interpreter, which reports them and sets the exit status exactly as for
    ``python -m``.
    """
    job = _serve(int(sys.argv[1]), int(sys.argv[2]))
    import runpy

    # What `python -m` calls; alter_argv puts the module's path in sys.argv[0].
    runpy._run_module_as_main(job.module, alter_argv=True)  # type: ignore[attr-defined]


def _serve(control_fd: int, agent_pid: int) -> _Job:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != agent_pid:  # the agent died before the line above: go with it
        os._exit(0)
    control = socket.socket(fileno=control_fd)
    for name in _PRELOAD:
        importlib.import_module(name)
    gc.collect()
    gc.freeze()  # the collector leaves the preloaded objects alone: their pages stay shared
    areas = _Areas.of_this_process()
    ready = ForkServerReady(
        os.getpid(), areas.env_end - areas.env_start, areas.arg_end - areas.arg_start
    )
    control.sendall(encode_fork_message(ready))
    while True:
        fds: list[int] = []
        try:
            data, ancdata, _, _ = control.recvmsg(
                MAX_FORK_MESSAGE, socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)
            )
        except ConnectionResetError:
            data, ancdata = b"", []
        for level, kind, cdata in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += array.array("i", cdata[: len(cdata) - len(cdata) % 4]).tolist()
        if not data:  # the agent closed its end, or died
            os._exit(0)
        try:
            request = decode_fork_message(data)
            if not isinstance(request, ForkRequest) or len(request.fds) != len(fds):
                raise ProtocolError("expected a ForkRequest with one number per descriptor")
        except ProtocolError as exc:
            _close(fds)
            control.sendall(encode_fork_message(ForkFailed(str(exc))))
            continue
        job = _fork(control, request, fds, libc, areas)
        if job is not None:
            return job  # in the host: leave the server's code


def _close(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _fork(
    control: socket.socket, request: ForkRequest, fds: list[int], libc: ctypes.CDLL, areas: _Areas
) -> _Job | None:
    """Fork the host (through a child that exits at once); None in the server, the job in it."""
    status_r, status_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        middle = os.fork()
    except OSError as exc:
        _close([*fds, status_r, status_w])
        control.sendall(encode_fork_message(ForkFailed(f"cannot fork: {exc}")))
        return None
    if middle == 0:
        try:
            if os.fork() != 0:
                os._exit(0)  # the host is an orphan now: reparented to the agent
        except BaseException:
            os._exit(1)
        os.close(status_r)
        control.detach()  # its descriptor is closed with the others below; never by this object
        return _become_host(request, fds, status_w, libc, areas)
    os.close(status_w)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(middle, 0)  # from here on, the host's parent is the agent
    _close(fds)  # the host holds them now (the incarnation lock, the channel, the console)
    report = b""
    with os.fdopen(status_r, "rb") as status:
        report = status.read()  # the host's pid, then "ready" or why not, then EOF
    pid_line, _, outcome = report.decode(errors="replace").partition("\n")
    pid = int(pid_line) if pid_line.isdigit() else None
    if pid is None or outcome != _READY:
        answer: ForkFailed | Forked = ForkFailed(outcome or "the host did not start", pid)
    else:
        answer = Forked(pid)
    control.sendall(encode_fork_message(answer))
    return None


def _become_host(
    request: ForkRequest, fds: list[int], status_w: int, libc: ctypes.CDLL, areas: _Areas
) -> _Job:
    """In the forked host: become a fresh ``python -m`` of the request, or exit saying why."""
    try:
        os.write(status_w, f"{os.getpid()}\n".encode())
        os.setsid()
        os.chdir(request.cwd)
        status_w = _install_descriptors(request.fds, fds, status_w)
        env = dict(request.env)
        if request.shell_pwd:
            env["PWD"] = _shell_pwd(env.get("PWD"))
        _replace_environment(env, libc, areas)
        _set_title(" ".join([request.argv0, "-m", request.module, *request.args]), areas)
        _reset_interpreter(request)
    except BaseException as exc:  # nothing of the user's ran yet: say why, and go
        with contextlib.suppress(OSError):
            os.write(status_w, f"{type(exc).__name__}: {exc}".encode(errors="replace"))
        os._exit(127)
    os.write(status_w, _READY.encode())
    os.close(status_w)  # EOF: the server answers Forked
    return _Job(request.module)


def _install_descriptors(targets: tuple[int, ...], fds: list[int], status_w: int) -> int:
    """Only the sent descriptors, at ``targets``, plus ``/dev/null`` at 0 (and 1, 2 if not
    sent), all inheritable; every other descriptor is closed. Returns ``status_w``'s new
    number (kept, close-on-exec, until the host is ready)."""
    wanted = dict(zip(targets, fds, strict=True))
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    for std in (0, 1, 2):
        wanted.setdefault(std, devnull)
    # Copies above every target first, so no dup2 below overwrites a source it still needs.
    floor = max(wanted) + 1
    moved = {target: _dup_above(fd, floor) for target, fd in wanted.items()}
    status = _dup_above(status_w, floor)
    keep = sorted({*moved.values(), status})
    low = 0
    for fd in keep:
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))
    for target, fd in moved.items():
        os.dup2(fd, target, inheritable=True)
    for fd in set(moved.values()):
        os.close(fd)
    return status


def _dup_above(fd: int, floor: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)


def _shell_pwd(inherited: str | None) -> str:
    """``PWD`` as dash (``/bin/sh``) exports it: the inherited value if it names the working
    folder, else the physical path."""
    if inherited and inherited.startswith("/"):
        with contextlib.suppress(OSError):
            if os.path.samestat(os.stat(inherited), os.stat(".")):
                return inherited
    return os.getcwd()


def _replace_environment(env: dict[str, str], libc: ctypes.CDLL, areas: _Areas) -> None:
    """The host's environment, in ``os.environ``, the C library's and ``/proc/PID/environ``.

    The agent finds its processes by the variables it gave them (fencing, leftovers), and the
    kernel shows the environment area the process was started with: the new one is written
    there, in place, after the C library's copy no longer points into it.
    """
    block = b"".join(os.fsencode(k) + b"=" + os.fsencode(v) + b"\0" for k, v in env.items())
    space = areas.env_end - areas.env_start
    if areas.env_start == 0 or len(block) + 1 > space:
        raise OSError(f"the environment ({len(block)} bytes) does not fit in {space} bytes")
    os.environ.clear()
    libc.clearenv()  # and whatever os.environ did not know of
    os.environ.update(env)  # setenv copies: nothing points into the area any more
    ctypes.memmove(areas.env_start, block, len(block))
    ctypes.memset(areas.env_start + len(block), 0, space - len(block))


def _set_title(title: str, areas: _Areas) -> None:
    """``/proc/PID/cmdline`` shows ``title`` (setproctitle's way: the area's last byte is not
    NUL, so the kernel reads up to the first NUL)."""
    space = areas.arg_end - areas.arg_start
    if areas.arg_start == 0 or space < 2:
        return
    data = os.fsencode(title)[: space - 2] + b"\0"
    ctypes.memmove(areas.arg_start, data, len(data))
    ctypes.memset(areas.arg_end - 1, ord(" "), 1)


def _reset_interpreter(request: ForkRequest) -> None:
    """What ``python -m <module> <args>`` started in this folder would have: its argv, the
    working folder first on ``sys.path``, a fresh ``__main__``, no stale import caches."""
    sys.argv = ["-m", *request.args]
    sys.orig_argv = [request.argv0, "-m", request.module, *request.args]
    sys.path.insert(0, os.getcwd())
    main = types.ModuleType("__main__")
    main.__dict__.update(__annotations__={}, __builtins__=builtins)  # as the interpreter's
    sys.modules["__main__"] = main
    importlib.invalidate_caches()  # folders made since the server looked (a package's own)
