"""A socket guests report to, so tests wait on what a process did instead of sleeping.

Each report is one line, ``<event> <pid>``; :meth:`Beacon.guest_script` writes a guest that
reports its start and every SIGINT. The ``beacon`` fixture (tests/integration/conftest.py) makes
one per test.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
import uuid

import pytest


class Beacon:
    """An abstract AF_UNIX socket guests report to; each report is one line, ``<event> <pid>``."""

    def __init__(self) -> None:
        self.address = f"\0fabrichost-test-{uuid.uuid4().hex}"
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.address)
        self._server.listen(128)
        self._events: queue.Queue[tuple[str, int]] = queue.Queue()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                data = b""
                with contextlib.suppress(OSError):
                    while not data.endswith(b"\n"):
                        chunk = conn.recv(256)
                        if not chunk:
                            break
                        data += chunk
            event, _, pid = data.decode().strip().partition(" ")
            self._events.put((event, int(pid or 0)))

    def wait(self, event: str, timeout: float = 10.0) -> int:
        """The pid of the next guest that reports ``event``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                got, pid = self._events.get(timeout=max(left, 0.001))
            except queue.Empty:
                pytest.fail(f"no guest reported {event!r} within {timeout} s")
            if got == event:
                return pid

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(5)

    def guest_script(self, *, ignore_sigint: bool) -> str:
        """A guest that reports its start and every SIGINT; it ignores SIGINT if asked."""
        on_sigint = (
            "signal.signal(signal.SIGINT, lambda *_: tell('sigint'))"
            if ignore_sigint
            else "signal.signal(signal.SIGINT, lambda *_: (tell('sigint'), os._exit(0)))"
        )
        return f"""
import os, signal, socket

def tell(event):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect({self.address!r})
        s.sendall(f"{{event}} {{os.getpid()}}\\n".encode())
    except OSError:
        pass
    finally:
        s.close()

{on_sigint}
tell("start")
while True:
    signal.pause()
"""
