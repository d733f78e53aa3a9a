"""HTTP/1.1 to the agent over one kept-alive socket, with the standard library only.

Why not httpx here: importing httpx (and ``http.client``, which brings the email parser) costs
more than the CLI's whole query (docs/PERFORMANCE.md). The agent is on loopback and speaks
plain HTTP/1.1 (uvicorn): a request line, headers, a body with ``Content-Length``; the answer
has ``Content-Length`` or ``Transfer-Encoding: chunked``. That is all this speaks.

``PlainHttp.request`` has the shape of ``httpx.Client.request`` that ``FabricClient`` uses and
answers a :class:`PlainResponse` with the attributes it reads; a failure to reach the agent or
a broken answer raises :class:`HttpError` (an ``OSError``).
"""

from __future__ import annotations

import json as jsonlib
import socket
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

if TYPE_CHECKING:
    from collections.abc import Mapping

# Bounds on what is read before a body: a status line and headers longer than this are not an
# agent's answer.
MAX_HEAD_BYTES = 64 * 1024
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content"}


class HttpError(OSError):
    """The agent could not be reached, or its answer was not HTTP/1.1 as this reads it."""


class _Unanswered(HttpError):
    """The connection ended (closed or reset) before the first byte of the answer."""


class Headers(dict[str, str]):
    """An answer's headers, looked up without regard to case (keys are stored lower case)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class PlainResponse:
    """One answer: ``status_code``, ``reason_phrase``, ``headers``, ``content``."""

    def __init__(self, status: int, reason: str, headers: Headers, content: bytes) -> None:
        self.status_code = status
        self.reason_phrase = reason or REASONS.get(status, "")
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class PlainHttp:
    """Requests to ``base_url`` (``http://host:port``). Like httpx's client it may be used by
    several threads at once: each request takes an idle kept-alive connection (one the agent
    has closed meanwhile is dropped) or opens one, and gives it back after a whole answer."""

    def __init__(
        self, base_url: str, *, timeout: float, headers: Mapping[str, str] | None = None
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"not an http:// endpoint: {base_url!r}")
        # An ASCII host as bytes: a str would load the IDNA codec in getaddrinfo (a CLI query
        # then pays for it in its start-up time).
        host = url.hostname
        self._address: tuple[str | bytes, int] = (
            host.encode("ascii") if host.isascii() else host,
            url.port or 80,
        )
        self._prefix = url.path.rstrip("/")
        self._host = url.netloc
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> PlainResponse:
        body = content
        all_headers = {**self._headers, **(headers or {})}
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode()
            all_headers.setdefault("Content-Type", "application/json")
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        head = [f"{method} {target} HTTP/1.1", f"Host: {self._host}", "Accept: */*"]
        head += [f"{name}: {value}" for name, value in all_headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head.append(f"Content-Length: {len(body or b'')}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        while True:
            connection, reused = self._take(timeout or self._timeout)
            try:
                response = connection.exchange(data, timeout or self._timeout)
            except _Unanswered:
                connection.close()
                if reused:
                    # The agent closed the idle connection as the request went out (uvicorn's
                    # keep-alive timeout; it drops what it had not read): send it again, on a
                    # new connection, as HTTP clients do for a reused one that got no answer.
                    continue
                raise
            except ValueError as exc:  # a length or a chunk size that is not a number
                connection.close()
                raise HttpError(f"a broken answer from the agent: {exc}") from exc
            except BaseException:
                connection.close()  # its state is unknown: the next request opens another
                raise
            break
        if connection.sock is not None:
            with self._lock:
                self._idle.append(connection)
        return response

    def _take(self, timeout: float) -> tuple[_Connection, bool]:
        """An idle connection that is still open (True) or a new one (False)."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                return _Connection(self._address, timeout), False
            if not connection.closed_by_peer():
                return connection, True
            connection.close()


class _Connection:
    """One socket to the agent and the bytes read from it but not yet used."""

    def __init__(self, address: tuple[str | bytes, int], timeout: float) -> None:
        try:
            # getaddrinfo takes a bytes host too; typeshed says str only.
            connect: Any = socket.create_connection
            self.sock: socket.socket | None = connect(address, timeout)
        except OSError as exc:
            raise HttpError(f"{exc}") from exc
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def closed_by_peer(self) -> bool:
        """True when the idle connection has been closed (it reads as ready, with nothing)."""
        assert self.sock is not None
        self.sock.setblocking(False)
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False  # nothing to read: still open
        except OSError:
            return True
        finally:
            self.sock.setblocking(True)

    def exchange(self, data: bytes, timeout: float) -> PlainResponse:
        assert self.sock is not None
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            first = b"" if self._buffer else self.sock.recv(256 * 1024)
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise _Unanswered(f"the agent reset the connection without an answer: {exc}") from exc
        if not self._buffer and not first:
            raise _Unanswered("the agent closed the connection without an answer")
        self._buffer += first
        while True:  # 1xx answers are skipped
            status, reason, headers = self._read_head()
            if status >= 200:
                break
        # 204 and 304 have no body, whatever the headers say.
        content = b"" if status in (204, 304) else self._read_body(headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return PlainResponse(status, reason, headers, content)

    def _read_head(self) -> tuple[int, str, Headers]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                raise HttpError("the agent's answer has an over-long head")
            self._fill()
        head = self._buffer[:end].decode("latin-1")
        del self._buffer[: end + 4]
        status_line, *lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError(f"not an HTTP answer: {status_line[:80]!r}")
        headers = Headers()
        for line in lines:
            name, sep, value = line.partition(":")
            if sep:
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return int(parts[1]), parts[2] if len(parts) > 2 else "", headers

    def _read_body(self, headers: Headers) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size_line = self._read_line()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self._read_line():  # trailers, up to the empty line
                        pass
                    return b"".join(chunks)
                chunks.append(self._read_exactly(size))
                self._read_line()
        length = headers.get("content-length")
        if length is not None:
            return self._read_exactly(int(length))
        # Neither: the body runs to the end of the connection.
        while self._fill(allow_eof=True):
            pass
        body = bytes(self._buffer)
        self.close()
        return body

    def _read_line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    def _read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self, *, allow_eof: bool = False) -> bool:
        assert self.sock is not None
        chunk = self.sock.recv(256 * 1024)
        if not chunk:
            if allow_eof:
                return False
            raise HttpError("the agent closed the connection before its answer ended")
        self._buffer += chunk
        return True
