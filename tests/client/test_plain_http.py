"""The client's standard-library HTTP/1.1, against a real socket server that answers in each of
the shapes an HTTP/1.1 server may use (uvicorn's among them)."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TYPE_CHECKING

import pytest

from fabrichost.client._plain_http import HttpError, PlainHttp

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _read_request(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """One request (head and Content-Length body), or None at the end of the connection."""
    while b"\r\n\r\n" not in buffer:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    end = buffer.index(b"\r\n\r\n") + 4
    head = bytes(buffer[:end])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(buffer) < end + length:
        buffer += conn.recv(65536)
    request = bytes(buffer[: end + length])
    del buffer[: end + length]
    return request


@contextlib.contextmanager
def server(
    answer: Callable[[bytes], bytes | None],
    close_after: bool = False,
    closed: threading.Event | None = None,
) -> Iterator[tuple[str, list[bytes]]]:
    """A server on a free port; ``answer`` turns each request into the bytes sent back (None:
    close the connection without answering; ``close_after``: close it after each answer, then
    set ``closed``). Yields its URL and the requests it read."""
    listener = socket.create_server(("127.0.0.1", 0))
    requests: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        buffer = bytearray()
        with conn:
            while (request := _read_request(conn, buffer)) is not None:
                requests.append(request)
                reply = answer(request)
                if reply is None:
                    break
                conn.sendall(reply)
                if close_after:
                    break
        if closed is not None:
            closed.set()

    def serve() -> None:  # a thread per connection, as a real server serves them side by side
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", requests
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept
        listener.close()
        thread.join(timeout=60)


def ok(body: bytes, *extra: str) -> bytes:
    head = ["HTTP/1.1 200 OK", f"content-length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def test_a_json_request_and_a_content_length_answer() -> None:
    with server(lambda _: ok(b'{"a": [1, 2]}', "x-thing: yes")) as (url, requests):
        http = PlainHttp(url, timeout=60, headers={"Authorization": "Bearer t"})
        answer = http.request("POST", "/Apps", json={"é": 1}, params={"api-version": "6.0"})
        http.close()
    assert answer.status_code == 200
    assert answer.json() == {"a": [1, 2]}
    assert answer.headers.get("X-Thing") == "yes"
    head, _, body = requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /Apps?api-version=6.0 HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer t" in head
    assert b"\r\nContent-Type: application/json" in head
    assert body == '{"é":1}'.encode()


def test_a_chunked_answer_is_put_together() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\ntrailer: x\r\n\r\n"
    )
    with server(lambda _: chunked) as (url, _):
        http = PlainHttp(url, timeout=60)
        assert http.request("GET", "/").content == b"hello, world"
        assert http.request("GET", "/").content == b"hello, world"  # the same connection
        http.close()


def test_no_content_has_no_body_and_the_connection_is_kept() -> None:
    replies = iter([b"HTTP/1.1 204 No Content\r\n\r\n", ok(b"{}")])
    with server(lambda _: next(replies)) as (url, requests):
        http = PlainHttp(url, timeout=60)
        first = http.request("DELETE", "/x")
        second = http.request("GET", "/y")
        http.close()
    assert (first.status_code, first.content, first.reason_phrase) == (204, b"", "No Content")
    assert second.json() == {}
    assert len(requests) == 2


def test_an_answer_that_says_close_is_followed_by_a_new_connection() -> None:
    with server(lambda _: ok(b"1", "connection: close")) as (url, requests):
        http = PlainHttp(url, timeout=60)
        assert [http.request("GET", "/").content for _ in range(3)] == [b"1"] * 3
        http.close()
    assert len(requests) == 3


def test_a_kept_connection_the_server_closed_while_idle_is_opened_again() -> None:
    closed = threading.Event()
    with server(lambda _: ok(b"2"), close_after=True, closed=closed) as (url, requests):
        http = PlainHttp(url, timeout=60)
        assert http.request("GET", "/").content == b"2"
        assert closed.wait(60)  # the server closed it, as uvicorn does an idle connection
        assert http.request("GET", "/").content == b"2"
        http.close()
    assert len(requests) == 2


def test_an_answer_that_ends_with_the_connection() -> None:
    with server(lambda _: None) as (url, _):
        http = PlainHttp(url, timeout=60)
        with pytest.raises(HttpError, match="closed the connection"):
            http.request("GET", "/")
        http.close()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            _read_request(conn, bytearray())
            conn.sendall(b"HTTP/1.1 200 OK\r\n\r\nall of it")

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    http = PlainHttp(f"http://127.0.0.1:{port}", timeout=60)
    assert http.request("GET", "/").content == b"all of it"
    http.close()
    thread.join(timeout=60)
    listener.close()


def test_no_server_and_no_http_are_errors() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(HttpError):
        PlainHttp(f"http://127.0.0.1:{port}", timeout=60).request("GET", "/")
    with server(lambda _: b"SSH-2.0-OpenSSH\r\n\r\n") as (url, _):
        http = PlainHttp(url, timeout=60)
        with pytest.raises(HttpError, match="not an HTTP answer"):
            http.request("GET", "/")
    with server(lambda _: b"HTTP/1.1 200 OK\r\ncontent-length: many\r\n\r\n") as (url, _):
        http = PlainHttp(url, timeout=60)
        with pytest.raises(HttpError, match="broken answer"):
            http.request("GET", "/")
    with pytest.raises(ValueError, match="not an http"):
        PlainHttp("https://127.0.0.1:1", timeout=60)


def test_threads_share_one_client_each_getting_its_own_answer() -> None:
    def echo(request: bytes) -> bytes:
        return ok(request.split(b" ", 2)[1])  # the path asked for

    failures: list[str] = []
    with server(echo) as (url, requests):
        http = PlainHttp(url, timeout=60)

        def ask(n: int) -> None:
            for i in range(20):
                got = http.request("GET", f"/t{n}/{i}").content
                if got != f"/t{n}/{i}".encode():
                    failures.append(f"/t{n}/{i} got {got!r}")

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        http.close()
    assert failures == []
    assert len(requests) == 160


def test_a_kept_connection_closed_as_the_request_went_out_is_sent_again_on_a_new_one() -> None:
    # The server closes the kept connection when the second request arrives, unanswered: what
    # a client sees when uvicorn's keep-alive timeout fires just after the idle check.
    count = iter(range(1, 100))
    with server(lambda _: None if next(count) == 2 else ok(b"3")) as (url, requests):
        http = PlainHttp(url, timeout=60)
        assert http.request("GET", "/").content == b"3"
        assert http.request("POST", "/", json={}).content == b"3"
        http.close()
    assert len(requests) == 3  # the second was read and dropped, as the agent drops it


def test_a_new_connection_without_an_answer_is_not_sent_again() -> None:
    with server(lambda _: None) as (url, requests):
        http = PlainHttp(url, timeout=60)
        with pytest.raises(HttpError, match="closed the connection without an answer"):
            http.request("POST", "/", json={})
        http.close()
    assert len(requests) == 1
