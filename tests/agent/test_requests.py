"""The request ledger: create policies and idempotent retries, without processes."""

from __future__ import annotations

import asyncio

import pytest

from fabrichost.agent._requests import RequestLedger, description_digest
from fabrichost.errors import ApiError, ConflictError, NotFoundError
from fabrichost.wire import IfExists

pytestmark = pytest.mark.anyio


class Names:
    """A toy registry: create takes a moment, like a real create with awaits in it."""

    def __init__(self) -> None:
        self.live: dict[str, int] = {}
        self.created = 0
        self.deleted = 0

    async def create(self, name: str) -> int:
        self.created += 1
        value = self.created
        self.live[name] = value  # claimed before the await
        await asyncio.sleep(0)
        return value

    async def delete(self, name: str) -> None:
        await asyncio.sleep(0)
        self.live.pop(name, None)
        self.deleted += 1


async def _create(
    ledger: RequestLedger,
    names: Names,
    name: str,
    *,
    policy: IfExists = IfExists.FAIL,
    request_id: str | None = None,
    digest: str = "d",
) -> tuple[int, bool]:
    outcome = await ledger.create(
        kind="thing",
        name=name,
        digest=digest,
        request_id=request_id,
        if_exists=policy,
        existing=lambda: names.live.get(name),
        create=lambda: names.create(name),
        delete=lambda: names.delete(name),
        conflict_message=lambda v: f"{name} exists as {v}",
        conflict_code="FABRIC_E_NAME_ALREADY_EXISTS",
    )
    return outcome.value, outcome.created


async def test_of_many_concurrent_creates_exactly_one_wins() -> None:
    ledger, names = RequestLedger(), Names()
    results = await asyncio.gather(
        *(_create(ledger, names, "a") for _ in range(50)), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, tuple)) == 1
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    assert len(conflicts) == 49
    assert conflicts[0].message == "a exists as 1"
    assert names.created == 1


async def test_use_existing_returns_the_existing_one_without_creating() -> None:
    ledger, names = RequestLedger(), Names()
    assert await _create(ledger, names, "a") == (1, True)
    assert await _create(ledger, names, "a", policy=IfExists.USE_EXISTING) == (1, False)
    assert names.created == 1


async def test_replace_deletes_before_it_creates_and_replaces_serialise() -> None:
    ledger, names = RequestLedger(), Names()
    await _create(ledger, names, "a")
    results = await asyncio.gather(
        *(_create(ledger, names, "a", policy=IfExists.REPLACE) for _ in range(10))
    )
    assert all(created for _, created in results)
    assert names.created == 11
    assert names.deleted == 10
    assert list(names.live.values()) == [11]


async def test_name_locks_are_kept_only_while_in_use() -> None:
    # A daemon sees unboundedly many names (each instance start without an id is a new one).
    ledger, names = RequestLedger(), Names()
    for i in range(100):
        await _create(ledger, names, f"n{i}")
    await asyncio.gather(*(_create(ledger, names, "a", policy=IfExists.REPLACE) for _ in range(5)))
    assert ledger._locks == {}
    async with ledger.name_lock("held"):
        waiter = asyncio.create_task(_create(ledger, names, "held"))
        await asyncio.sleep(0)
        assert ledger._locks["held"].users == 2  # the waiter shares the holder's lock
    await waiter
    assert ledger._locks == {}


async def test_a_retry_after_the_thing_was_deleted_is_a_404() -> None:
    ledger, names = RequestLedger(), Names()
    await _create(ledger, names, "a", request_id="r")
    await names.delete("a")
    with pytest.raises(NotFoundError, match="created a, which no longer exists"):
        await _create(ledger, names, "a", request_id="r")


async def test_concurrent_retries_with_one_request_id_get_one_answer() -> None:
    ledger, names = RequestLedger(), Names()
    results = await asyncio.gather(
        *(_create(ledger, names, "a", request_id="r") for _ in range(20))
    )
    assert sorted(results) == [(1, False)] * 19 + [(1, True)]
    assert names.created == 1


async def test_a_request_id_reused_for_something_else_is_refused() -> None:
    ledger, names = RequestLedger(), Names()
    await _create(ledger, names, "a", request_id="r", digest="one")
    with pytest.raises(ApiError, match="already used for a different request"):
        await _create(ledger, names, "a", request_id="r", digest="two")
    with pytest.raises(ApiError, match="already used for a different request"):
        await _create(ledger, names, "b", request_id="r", digest="one")


async def test_a_failed_request_is_forgotten_so_its_retry_can_succeed() -> None:
    claimed: list[str] = []
    failed: list[str] = []
    ledger = RequestLedger(on_claimed=lambda rid, *_: claimed.append(rid), on_failed=failed.append)
    names = Names()
    names.live["a"] = 99
    with pytest.raises(ConflictError):
        await _create(ledger, names, "a", request_id="r")
    assert (claimed, failed) == (["r"], ["r"])
    del names.live["a"]
    assert await _create(ledger, names, "a", request_id="r") == (1, True)


async def test_a_request_recorded_by_an_earlier_run_answers_with_what_exists_now() -> None:
    recorded = {
        "r": ("thing", "a", "d", True),
        "q": ("thing", "b", "d", False),
        "gone": ("thing", "c", "d", True),
    }
    ledger, names = RequestLedger(find_recorded=recorded.get), Names()
    names.live["a"] = 7  # what the earlier run created
    assert await _create(ledger, names, "a", request_id="r") == (7, False)
    # Recorded, but the earlier run died before creating anything: this retry creates it.
    assert await _create(ledger, names, "b", request_id="q") == (1, True)
    # Recorded as done, but what it created was deleted since: a 404, not a second creation.
    with pytest.raises(NotFoundError, match="which no longer exists"):
        await _create(ledger, names, "c", request_id="gone")


def test_description_digests_ignore_key_order() -> None:
    assert description_digest({"a": 1, "b": [1, 2]}) == description_digest({"b": [1, 2], "a": 1})
    assert description_digest({"a": 1}) != description_digest({"a": 2})
