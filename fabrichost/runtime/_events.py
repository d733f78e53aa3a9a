"""A replica's inbox of external events, usable from threads and from async code alike.

The host's event loop puts events in (:meth:`EventInbox.deliver`, in the order their
``RaiseEvent`` messages arrived); the service's ``run`` takes them out by name, blocking
(:meth:`EventInbox.get`, from a sync ``run`` on its thread) or awaiting (:meth:`EventInbox.wait`).
Events are kept first in, first out per name; an event nobody waits for yet is buffered.

Each waiter is handed its event under the inbox's lock, before it is woken, so an event is
taken exactly once: a waiter that times out or is cancelled at the same moment either gets it
(the timeout loses) or leaves it for the next (a cancelled async waiter puts back an event it
was handed and never returned). :meth:`EventInbox.close` (the replica is closing or aborted)
wakes every waiter with :class:`EventWaitCancelled`; :meth:`EventInbox.interrupt` (a stateful
replica stops being Primary) does the same but keeps the buffered events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections import deque
from typing import TYPE_CHECKING, Final

from fabrichost.protocol import is_event_name

if TYPE_CHECKING:
    from fabrichost.protocol import JSON

#: At most this many unconsumed events per replica ...
MAX_BUFFERED_EVENTS: Final = 10_000
#: ... holding at most this many bytes of JSON data together.
MAX_BUFFERED_BYTES: Final = 64 * 1024 * 1024


class EventWaitCancelled(Exception):
    """A wait for an event ended because the replica is closing (or stopped being Primary).

    ``run`` should let it propagate or return: the cancellation token is cancelled too.
    """


class EventBufferFull(Exception):
    """The inbox holds too many unconsumed events; the new one is refused."""


class _Waiter:
    __slots__ = ("cancelled", "data", "done", "future", "loop", "thread_event")

    def __init__(
        self,
        *,
        thread_event: threading.Event | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.done = False  # handed an event or cancelled (under the inbox's lock)
        self.cancelled = False
        self.data: JSON = None
        self.thread_event = thread_event
        self.loop = loop
        self.future = future

    def wake(self) -> None:
        if self.thread_event is not None:
            self.thread_event.set()
        elif self.loop is not None and self.future is not None:
            # RuntimeError: that loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _check_name(name: str) -> None:
    if not is_event_name(name):
        raise ValueError(f"{name!r} is not an event name")


class EventInbox:
    """One replica's external events; see the module docstring."""

    __slots__ = ("_buffer", "_bytes", "_closed", "_count", "_lock", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: dict[str, deque[tuple[JSON, int]]] = {}
        self._waiters: dict[str, deque[_Waiter]] = {}
        self._count = 0
        self._bytes = 0
        self._closed = False

    def __len__(self) -> int:
        """How many events are buffered (delivered, not yet taken)."""
        return self._count

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the host's side --------------------------------------------------------------------------

    def deliver(self, name: str, data: JSON) -> None:
        """Hand ``data`` to the oldest waiter for ``name``, or buffer it.

        Raises:
            EventWaitCancelled: the inbox is closed (the replica is going away).
            EventBufferFull: the buffer is at one of its limits.
        """
        size = len(json.dumps(data))
        with self._lock:
            if self._closed:
                raise EventWaitCancelled("the replica is closing")
            waiters = self._waiters.get(name)
            while waiters:
                waiter = waiters.popleft()
                if not waiters:
                    del self._waiters[name]
                if waiter.done:
                    continue
                waiter.done, waiter.data = True, data
                break
            else:
                if self._count >= MAX_BUFFERED_EVENTS or self._bytes + size > MAX_BUFFERED_BYTES:
                    raise EventBufferFull(
                        f"{self._count} events ({self._bytes} bytes) wait to be consumed; at most "
                        f"{MAX_BUFFERED_EVENTS} events or {MAX_BUFFERED_BYTES} bytes are kept"
                    )
                self._buffer.setdefault(name, deque()).append((data, size))
                self._count += 1
                self._bytes += size
                return
        waiter.wake()

    def interrupt(self) -> None:
        """Wake every waiter with :class:`EventWaitCancelled`; buffered events stay."""
        with self._lock:
            waiters = [w for queue in self._waiters.values() for w in queue if not w.done]
            self._waiters.clear()
            for waiter in waiters:
                waiter.done = waiter.cancelled = True
        for waiter in waiters:
            waiter.wake()

    def close(self) -> None:
        """Refuse further events and waits, drop the buffer, wake every waiter (cancelled)."""
        with self._lock:
            self._closed = True
            self._buffer.clear()
            self._count = self._bytes = 0
        self.interrupt()

    # -- the service's side -----------------------------------------------------------------------

    def _take_or_enqueue(self, name: str, waiter: _Waiter) -> tuple[bool, JSON]:
        """Under the lock: a buffered event (True, data), or ``waiter`` queued (False, None)."""
        if self._closed:
            raise EventWaitCancelled("the replica is closing")
        buffered = self._buffer.get(name)
        if buffered:
            data, size = buffered.popleft()
            if not buffered:
                del self._buffer[name]
            self._count -= 1
            self._bytes -= size
            return True, data
        self._waiters.setdefault(name, deque()).append(waiter)
        return False, None

    def _hand_back(self, name: str, data: JSON) -> _Waiter | None:
        """Under the lock: give a taken event to the next waiter (returned, to be woken once
        the lock is released) or put it back at the front of its queue."""
        queue = self._waiters.get(name)
        while queue:
            heir = queue.popleft()
            if not heir.done:
                heir.done, heir.data = True, data
                if not queue:
                    del self._waiters[name]
                return heir
        self._waiters.pop(name, None)
        size = len(json.dumps(data))
        self._buffer.setdefault(name, deque()).appendleft((data, size))
        self._count += 1
        self._bytes += size
        return None

    def _outcome(self, waiter: _Waiter) -> JSON:
        if waiter.cancelled:
            raise EventWaitCancelled("the replica is closing")
        return waiter.data

    def _abandon(self, name: str, waiter: _Waiter) -> bool:
        """Under the lock: withdraw a waiter that was not served; False if it was served."""
        if waiter.done:
            return False
        waiter.done = True
        queue = self._waiters.get(name)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del self._waiters[name]
        return True

    def get(self, name: str, timeout: float | None = None) -> JSON:
        """Block this thread until an event ``name`` is there; return its data.

        Raises:
            TimeoutError: none came within ``timeout`` seconds.
            EventWaitCancelled: the replica is closing.
        """
        _check_name(name)
        waiter = _Waiter(thread_event=threading.Event())
        with self._lock:
            found, data = self._take_or_enqueue(name, waiter)
        if found:
            return data
        assert waiter.thread_event is not None
        if not waiter.thread_event.wait(timeout):
            with self._lock:
                if self._abandon(name, waiter):
                    raise TimeoutError(f"no event {name!r} within {timeout:g} s")
        return self._outcome(waiter)

    async def wait(self, name: str, timeout: float | None = None) -> JSON:  # noqa: ASYNC109
        """Wait, without blocking the event loop, until an event ``name`` is there.

        Raises:
            TimeoutError: none came within ``timeout`` seconds.
            EventWaitCancelled: the replica is closing.
        """
        _check_name(name)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop=loop, future=loop.create_future())
        with self._lock:
            found, data = self._take_or_enqueue(name, waiter)
        if found:
            return data
        assert waiter.future is not None
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            with self._lock:
                if self._abandon(name, waiter):
                    raise TimeoutError(f"no event {name!r} within {timeout:g} s") from None
        except asyncio.CancelledError:
            heir = None
            with self._lock:
                if not self._abandon(name, waiter) and not waiter.cancelled and not self._closed:
                    # Handed an event it will never return: the event goes to the next waiter,
                    # or back to the front of the buffer, as if it had never been taken.
                    heir = self._hand_back(name, waiter.data)
            if heir is not None:
                heir.wake()
            raise
        return self._outcome(waiter)
