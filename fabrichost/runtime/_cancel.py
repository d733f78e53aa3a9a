"""A cancellation token that works the same from threads and from async code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Final

# One lock for every token's waiter list: waiters are rare (one per async run) and a lock per
# token would cost memory in a host with a thousand replicas.
_WAITERS_LOCK: Final = threading.Lock()


class CancellationToken:
    """Tells a replica's ``run`` that it should stop.

    A sync ``run`` polls :attr:`cancelled` or blocks in :meth:`wait`; an async ``run`` awaits
    :meth:`wait_cancelled` (or polls). The runtime cancels the token when the replica is closed,
    aborted, or (stateful) stops being Primary; ``run`` should then return promptly. An async
    ``run`` that does not return within the runtime's grace period is cancelled with
    :meth:`asyncio.Task.cancel`; a sync one is left behind on its daemon thread.

    Example::

        def run(self, cancel):
            while not cancel.wait(timeout=1.0):
                self.tick()
    """

    __slots__ = ("_event", "_waiters")

    def __init__(self) -> None:
        self._event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"<CancellationToken cancelled={self.cancelled}>"

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    def cancel(self) -> None:
        """Cancel the token: wake every waiter, from any thread. Calling it again does nothing."""
        with _WAITERS_LOCK:
            if self._event.is_set():
                return
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # RuntimeError: that loop is already closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    def wait(self, timeout: float | None = None) -> bool:
        """Block this thread until cancelled or ``timeout`` seconds pass; True if cancelled.

        Do not call it from async code: it would block the event loop.
        """
        return self._event.wait(timeout)

    async def wait_cancelled(self) -> None:
        """Wait, without blocking the event loop, until the token is cancelled."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with _WAITERS_LOCK:
            if self._event.is_set():
                return
            self._waiters.append(entry)
        try:
            await future
        finally:
            with _WAITERS_LOCK:
                if entry in self._waiters:
                    self._waiters.remove(entry)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
