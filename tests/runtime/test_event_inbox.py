"""The event inbox on its own: FIFO per name, buffering, timeouts and cancellation, from threads
and from async code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fabrichost.runtime import EventWaitCancelled, StatelessService
from fabrichost.runtime._events import (
    MAX_BUFFERED_EVENTS,
    EventBufferFull,
    EventInbox,
)

DEADLINE = 30.0


def test_an_event_raised_before_the_wait_is_buffered() -> None:
    inbox = EventInbox()
    inbox.deliver("approval", {"ok": True})
    assert len(inbox) == 1
    assert inbox.get("approval", timeout=0) == {"ok": True}
    assert len(inbox) == 0


def test_events_are_first_in_first_out_per_name() -> None:
    inbox = EventInbox()
    for n in range(3):
        inbox.deliver("a", n)
        inbox.deliver("b", f"b{n}")
    assert [inbox.get("b", 0) for _ in range(3)] == ["b0", "b1", "b2"]
    assert [inbox.get("a", 0) for _ in range(3)] == [0, 1, 2]


def test_a_wait_times_out_and_leaves_nothing_behind() -> None:
    inbox = EventInbox()
    with pytest.raises(TimeoutError, match="no event 'x'"):
        inbox.get("x", timeout=0.01)
    inbox.deliver("x", 1)  # the timed-out waiter must not swallow it
    assert inbox.get("x", 0) == 1


def test_a_blocked_thread_gets_the_event_delivered_later() -> None:
    inbox = EventInbox()
    got: list[object] = []
    waiting = threading.Thread(target=lambda: got.append(inbox.get("go", DEADLINE)))
    waiting.start()
    while not inbox._waiters:  # the thread is queued (a few microseconds on any machine)
        threading.Event().wait(0.001)
    inbox.deliver("go", [1, 2])
    waiting.join(DEADLINE)
    assert got == [[1, 2]]


def test_close_wakes_a_blocked_thread_and_refuses_what_comes_after() -> None:
    inbox = EventInbox()
    inbox.deliver("other", 1)
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            inbox.get("go", DEADLINE)
        except EventWaitCancelled as exc:
            outcome.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    while not inbox._waiters:
        threading.Event().wait(0.001)
    inbox.close()
    thread.join(DEADLINE)
    assert len(outcome) == 1
    assert len(inbox) == 0  # buffered events are dropped with the replica
    with pytest.raises(EventWaitCancelled):
        inbox.deliver("go", 1)
    with pytest.raises(EventWaitCancelled):
        inbox.get("go", 0)


def test_interrupt_wakes_waiters_but_keeps_buffered_events() -> None:
    inbox = EventInbox()
    inbox.deliver("kept", 1)

    async def main() -> None:
        waiter = asyncio.create_task(inbox.wait("go"))
        await asyncio.sleep(0)
        inbox.interrupt()
        with pytest.raises(EventWaitCancelled):
            await asyncio.wait_for(waiter, DEADLINE)
        assert await inbox.wait("kept", 0) == 1

    asyncio.run(main())


def test_async_waiters_are_served_in_the_order_they_waited() -> None:
    inbox = EventInbox()

    async def main() -> list[object]:
        waiters = [asyncio.create_task(inbox.wait("a")) for _ in range(3)]
        await asyncio.sleep(0)
        for n in range(3):
            inbox.deliver("a", n)
        return list(await asyncio.wait_for(asyncio.gather(*waiters), DEADLINE))

    assert asyncio.run(main()) == [0, 1, 2]


def test_an_async_wait_times_out() -> None:
    inbox = EventInbox()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await inbox.wait("x", timeout=0.01)
        assert not inbox._waiters

    asyncio.run(main())


def test_a_cancelled_async_waiter_hands_its_event_on() -> None:
    inbox = EventInbox()

    async def main() -> None:
        first = asyncio.create_task(inbox.wait("a"))
        second = asyncio.create_task(inbox.wait("a"))
        await asyncio.sleep(0)
        inbox.deliver("a", "only")  # handed to `first` ...
        first.cancel()  # ... which is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await first
        assert await asyncio.wait_for(second, DEADLINE) == "only"

    asyncio.run(main())


def test_a_cancelled_async_waiter_puts_its_event_back() -> None:
    inbox = EventInbox()

    async def main() -> None:
        first = asyncio.create_task(inbox.wait("a"))
        await asyncio.sleep(0)
        inbox.deliver("a", 1)
        inbox.deliver("a", 2)  # buffered behind the one handed to `first`
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert [await inbox.wait("a", 0), await inbox.wait("a", 0)] == [1, 2]

    asyncio.run(main())


def test_the_buffer_is_bounded() -> None:
    inbox = EventInbox()
    for n in range(MAX_BUFFERED_EVENTS):
        inbox.deliver("a", n)
    with pytest.raises(EventBufferFull, match="wait to be consumed"):
        inbox.deliver("a", "one too many")
    assert inbox.get("a", 0) == 0
    inbox.deliver("a", "room again")


def test_event_names_are_checked() -> None:
    with pytest.raises(ValueError, match="not an event name"):
        EventInbox().get("no spaces", 0)


def test_many_threads_get_every_event_exactly_once() -> None:
    inbox = EventInbox()
    got: list[object] = []
    lock = threading.Lock()

    def consume() -> None:
        for _ in range(100):
            value = inbox.get("n", DEADLINE)
            with lock:
                got.append(value)

    threads = [threading.Thread(target=consume) for _ in range(4)]
    for thread in threads:
        thread.start()
    for n in range(400):
        inbox.deliver("n", n)
    for thread in threads:
        thread.join(DEADLINE)
    assert sorted(got) == list(range(400))  # type: ignore[type-var]


def test_a_service_outside_a_host_has_no_events() -> None:
    service = StatelessService.__new__(StatelessService)
    service._inbox = None
    with pytest.raises(RuntimeError, match="not hosted"):
        service.wait_for_event_blocking("a")
