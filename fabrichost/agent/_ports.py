"""Endpoint ports: a port given in the manifest is used as is; otherwise one comes from a range.

A port handed out is never handed out again while in use, and a port some other program on the
machine is bound to is skipped (checked with a real bind), so a service never starts on a port it
cannot open.
"""

from __future__ import annotations

import socket
from typing import Final

from fabrichost.errors import ActivationError

DEFAULT_RANGE: Final = (30001, 31000)  # like SF's ApplicationEndpoints range, one per dev cluster


class PortAllocator:
    """Hands out loopback TCP ports from ``[low, high]``; ``release`` returns them."""

    def __init__(self, low: int = DEFAULT_RANGE[0], high: int = DEFAULT_RANGE[1]) -> None:
        if not 0 < low <= high < 65536:
            raise ValueError(f"bad port range {low}-{high}")
        self._low, self._high = low, high
        self._next = low
        self._in_use: set[int] = set()

    def allocate(self) -> int:
        """Return a free port of the range, round-robin so a just-released port rests a while."""
        size = self._high - self._low + 1
        for _ in range(size):
            port = self._next
            self._next = self._low if port == self._high else port + 1
            if port not in self._in_use and _bindable(port):
                self._in_use.add(port)
                return port
        raise ActivationError(f"no free port left in the range {self._low}-{self._high}")

    def release(self, port: int) -> None:
        self._in_use.discard(port)

    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
