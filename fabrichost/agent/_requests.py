"""Create policies and idempotent retries: how a create meets a name that is already taken.

Theory of operation. Every create goes through :meth:`RequestLedger.create` with the name it
claims, a digest of what it asks for, an optional request id (HTTP ``Idempotency-Key``, CLI
``--request-id``) and a policy:

* ``fail`` (default): the name is taken → :class:`ConflictError` naming the existing entity;
* ``use-existing``: the existing entity is returned, nothing is created;
* ``replace``: the existing entity is deleted — and its processes are gone — before the new one
  is created, so two lifetimes never overlap.

Creates of one name are serialised by a per-name ``asyncio.Lock``. An uncontended acquire does
not suspend, so "is the name free? claim it" still runs without interleaving; a ``replace``
holds the lock across its awaits, so no other create slips in between the delete and the create.

A request id is claimed before the work starts: concurrent retries with the same id wait for the
first one and get its answer; a later retry gets the recorded answer, even if the entity has
since been deleted (the answer is about that request). The same id with a different description
is refused: it is a client bug, not a retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fabrichost.errors import ApiError, ConflictError, NotFoundError
from fabrichost.wire import IfExists

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

T = TypeVar("T")


def description_digest(description: Any) -> str:
    """A stable digest of a JSON-able description (key order does not matter)."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a create produced: the entity (as the API renders it) and whether it is new."""

    value: T
    created: bool


@dataclass(slots=True)
class _Request:
    kind: str
    target: str
    digest: str
    answer: asyncio.Future[Outcome[Any]]


@dataclass(slots=True)
class _NameLock:
    lock: asyncio.Lock
    users: int = 0  # holders and waiters; the entry is dropped when the last one leaves


class RequestLedger:
    """Idempotency keys and per-name create serialisation for one agent."""

    def __init__(
        self,
        on_claimed: Callable[[str, str, str, str], None] | None = None,
        on_failed: Callable[[str], None] | None = None,
        find_recorded: Callable[[str], tuple[str, str, str, bool] | None] | None = None,
        on_completed: Callable[[str], None] | None = None,
    ) -> None:
        """Persistence hooks: ``on_claimed(request_id, kind, target, digest)`` records a request
        id before its create runs (so a crash in between still knows it), ``on_failed`` forgets
        it when the create fails, and ``find_recorded`` reads one back after a restart."""
        self._requests: dict[str, _Request] = {}
        self._locks: dict[str, _NameLock] = {}
        self._on_claimed = on_claimed
        self._on_failed = on_failed
        self._find_recorded = find_recorded
        self._on_completed = on_completed

    @contextlib.asynccontextmanager
    async def name_lock(self, name: str) -> AsyncIterator[None]:
        """Hold the lock of ``name`` (async with); creates, deletes and terminates of one name
        take it in turn. Only names in use have an entry: a daemon sees unboundedly many names
        over its life (every instance start without an id is a new one)."""
        entry = self._locks.get(name)
        if entry is None:
            entry = self._locks[name] = _NameLock(asyncio.Lock())
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._locks[name]

    async def create(
        self,
        *,
        kind: str,
        name: str,
        digest: str,
        request_id: str | None,
        if_exists: IfExists,
        existing: Callable[[], T | None],
        create: Callable[[], Awaitable[T]],
        delete: Callable[[], Awaitable[None]],
        conflict_message: Callable[[T], str],
        conflict_code: str,
        lookup: Callable[[], T | None] | None = None,
    ) -> Outcome[T]:
        """Create ``name`` under the policy; see the module docstring.

        ``lookup`` finds what an earlier request created (default: ``existing``), to answer a
        retry whose request id was recorded by an earlier run of the agent.
        """
        if request_id is not None:
            retried = await self._retried(request_id, (kind, name, digest), lookup or existing)
            if retried is not None:
                return retried
            answer: asyncio.Future[Outcome[Any]] = asyncio.get_running_loop().create_future()
            self._requests[request_id] = _Request(kind, name, digest, answer)
            if self._on_claimed is not None:
                self._on_claimed(request_id, kind, name, digest)
        try:
            async with self.name_lock(name):
                outcome = await self._create_locked(
                    existing, create, delete, if_exists, conflict_message, conflict_code
                )
        except BaseException as exc:
            if request_id is not None:
                # A failed request is not recorded: retrying it may well succeed.
                failed = self._requests.pop(request_id)
                if self._on_failed is not None:
                    self._on_failed(request_id)
                if isinstance(exc, Exception):
                    failed.answer.set_exception(exc)
                    failed.answer.exception()  # retrieved here; concurrent waiters re-raise it
                else:
                    failed.answer.cancel()
            raise
        if request_id is not None:
            self._requests[request_id].answer.set_result(outcome)
            if self._on_completed is not None:
                self._on_completed(request_id)
            if self._find_recorded is not None:
                # The store remembers it now; keeping it here too would only grow memory.
                self._forget_later(request_id)
        return outcome

    def _forget_later(self, request_id: str) -> None:
        """Drop a finished request once the retries already waiting on it have their answer."""
        asyncio.get_running_loop().call_soon(self._requests.pop, request_id, None)

    async def _retried(
        self, request_id: str, request: tuple[str, str, str], lookup: Callable[[], T | None]
    ) -> Outcome[T] | None:
        """The answer to a retry of ``request_id``, or None if this is its first attempt.

        A retry gets what its first attempt created, as it is now; if that is gone, a 404. A
        request id recorded by an earlier run whose create never finished (the agent died)
        is a first attempt again.
        """
        seen = self._requests.get(request_id)
        if seen is not None:
            self._check_same(request_id, (seen.kind, seen.target, seen.digest), request)
            await asyncio.shield(seen.answer)  # concurrent retries wait for the first attempt
        else:
            earlier = self._find_recorded(request_id) if self._find_recorded else None
            if earlier is None:
                return None
            self._check_same(request_id, earlier[:3], request)
            if lookup() is None and not earlier[3]:
                return None  # recorded, but the agent died before it finished: create now
        entity = lookup()
        if entity is None:
            raise _gone(request_id, request[1])
        return Outcome(entity, created=False)

    @staticmethod
    def _check_same(
        request_id: str, earlier: tuple[str, str, str], now: tuple[str, str, str]
    ) -> None:
        if earlier != now:
            raise ApiError(
                f"request id {request_id!r} was already used for a different request "
                f"({earlier[0]} {earlier[1].split(':', 1)[-1]}); use a new request id",
                code="FABRIC_E_INVALID_ARGUMENT",
            )

    @staticmethod
    async def _create_locked(
        existing: Callable[[], T | None],
        create: Callable[[], Awaitable[T]],
        delete: Callable[[], Awaitable[None]],
        if_exists: IfExists,
        conflict_message: Callable[[T], str],
        conflict_code: str,
    ) -> Outcome[T]:
        current = existing()
        if current is not None:
            if if_exists is IfExists.FAIL:
                raise ConflictError(conflict_message(current), code=conflict_code)
            if if_exists is IfExists.USE_EXISTING:
                return Outcome(current, created=False)
            await delete()
        return Outcome(await create(), created=True)


def _gone(request_id: str, name: str) -> NotFoundError:
    return NotFoundError(
        f"request id {request_id!r} created {name.split(':', 1)[-1]}, which no longer exists",
        code="FABRIC_E_DOES_NOT_EXIST",
    )
