"""The agent's end of a real channel, for tests: a blocking driver around ``Connection``.

``spawn_host`` starts a real process with one end of a real ``socketpair`` and returns an
:class:`AgentSide` holding the other end. Every wait has a deadline; ``close`` kills the process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from fabrichost.protocol import (
    CLOSED,
    NEED_DATA,
    SUPPORTED_VERSIONS,
    Connection,
    Error,
    Hello,
    Message,
    RegisterServiceType,
    Reply,
    Request,
    Role,
    Sentinel,
    ServiceTypeRegistered,
    Welcome,
    negotiate_version,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parents[2]
HOSTS = Path(__file__).resolve().parent / "hosts"
DEADLINE = 20.0

_M = TypeVar("_M", bound=Message)


def host_environment(work: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment the agent gives a code package, pointing at this repository's code."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("Fabric_", "FABRICHOST_"))
    }
    # As the agent does (and Service Fabric with its bin folder): our interpreter comes first.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(
        {
            "Fabric_NodeName": "_Node_0",
            "Fabric_ApplicationName": "fabric:/App1",
            "Fabric_ServicePackageActivationId": "",
            "Fabric_CodePackageName": "Code",
            "Fabric_ServicePackageName": "Pkg",
            "Fabric_Folder_App_Work": str(work),
            "Fabric_Endpoint_ServiceEndpoint": "31001",
        }
    )
    env.update(extra or {})
    return env


@dataclass
class AgentSide:
    """The agent's end of one host's channel."""

    sock: socket.socket
    process: subprocess.Popen[bytes]
    stderr_path: Path
    conn: Connection = field(default_factory=lambda: Connection(Role.AGENT))
    backlog: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sock.sendall(self.conn.send(message))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_event(self, deadline: float = DEADLINE) -> Message | Sentinel:
        """The next message from the host (or CLOSED), waiting at most ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while True:
            event = self.conn.next_event()
            if event is not NEED_DATA:
                return event
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no message from the host within {deadline} s; {self.stderr()}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            self.conn.receive_data(data)

    def receive(self, kind: type[_M], deadline: float = DEADLINE) -> _M:
        """The next message of ``kind``; others are kept in :attr:`backlog`."""
        for index, message in enumerate(self.backlog):
            if isinstance(message, kind):
                del self.backlog[index]
                return message
        end = time.monotonic() + deadline
        while True:
            event = self.next_event(max(0.0, end - time.monotonic()))
            if event is CLOSED:
                raise AssertionError(f"channel closed while waiting for {kind.__name__}")
            if isinstance(event, kind):
                return event
            assert isinstance(event, Message)
            self.backlog.append(event)

    def reply_to(self, request_id: int, deadline: float = DEADLINE) -> Reply:
        """The reply to our request ``request_id``; other messages go to the backlog."""
        end = time.monotonic() + deadline
        while True:
            for index, message in enumerate(self.backlog):
                if isinstance(message, Reply) and message.re == request_id:
                    del self.backlog[index]
                    return message
            event = self.next_event(max(0.0, end - time.monotonic()))
            if event is CLOSED:
                raise AssertionError(f"channel closed while waiting for the reply to {request_id}")
            assert isinstance(event, Message)
            self.backlog.append(event)

    def request(self, build: Callable[..., Request], **fields: object) -> Reply:
        """Send a request with a fresh id and wait for its reply."""
        message = build(id=self.conn.new_request_id(), **fields)
        self.send(message)
        return self.reply_to(message.id)

    def handshake(self, count: int, node_name: str = "_Node_0") -> list[str]:
        """Answer Hello and ``count`` RegisterServiceType; return the registered type names."""
        hello = self.receive(Hello)
        version = negotiate_version(hello.versions, SUPPORTED_VERSIONS)
        assert version is not None
        self.send(Welcome(re=hello.id, version=version, node_name=node_name))
        types: list[str] = []
        while len(types) < count:
            register = self.receive(RegisterServiceType)
            types.append(register.service_type)
            self.send(ServiceTypeRegistered(re=register.id))
        return types

    def expect_eof(self, deadline: float = DEADLINE) -> list[Message]:
        """Read until EOF; return whatever arrived before it."""
        seen: list[Message] = []
        while (event := self.next_event(deadline)) is not CLOSED:
            assert isinstance(event, Message)
            seen.append(event)
        return seen

    def wait_exit(self, deadline: float = DEADLINE) -> int:
        return self.process.wait(timeout=deadline)

    def stderr(self) -> str:
        try:
            return "host stderr:\n" + self.stderr_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no stderr)"

    def close(self) -> None:
        """Kill the host if it is still running and close our end."""
        try:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(timeout=DEADLINE)
        finally:
            self.sock.close()


def spawn_host(
    argv: Sequence[str], work: Path, extra_env: Mapping[str, str] | None = None
) -> AgentSide:
    """Start ``argv`` with a channel; the caller must ``close()`` the result (use a fixture)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    env = host_environment(work, extra_env)
    env["FABRICHOST_CHANNEL_FD"] = str(theirs.fileno())
    stderr_path = work / "host.err"
    try:
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                list(argv),
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return AgentSide(sock=ours, process=process, stderr_path=stderr_path)


def error_text(reply: Reply) -> str:
    return f"{reply.code}: {reply.message}" if isinstance(reply, Error) else repr(reply)
