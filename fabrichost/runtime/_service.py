"""The base classes user services derive from: :class:`StatelessService`, :class:`StatefulService`.

Every method may be a plain ``def`` (the runtime runs it on a worker thread, so a blocking
service never stalls the others) or an ``async def`` (it runs on the host's event loop and must
not block). Methods a subclass does not override cost nothing: the runtime skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fabrichost.protocol import HealthState, ReplicaFaulted, ReportHealth, ReportLoad

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from fabrichost.protocol import JSON, ReplicaNotification, ReplicaRole
    from fabrichost.runtime._cancel import CancellationToken
    from fabrichost.runtime._context import ServiceContext
    from fabrichost.runtime._events import EventInbox

Address = str | None


class Service:
    """What stateless instances and stateful replicas share; derive from one of the two below."""

    def __init__(self, context: ServiceContext) -> None:
        """Keep ``context``; subclasses that override ``__init__`` must call this.

        Construction happens on the event loop: keep it quick and do real work in ``open``.
        """
        self.context = context
        self._post: Callable[[ReplicaNotification], None] | None = None
        self._inbox: EventInbox | None = None

    def open(self) -> Address | Awaitable[Address]:
        """Start serving; return the address clients should use (or ``None``)."""
        return None

    def run(self, cancel: CancellationToken) -> object:
        """Optional background work, started once the replica may serve (see the subclasses).

        Return (or raise) when it is done or when ``cancel`` is cancelled. If it ends on its own,
        the agent is told with ``RunCompleted``: status ``Completed`` with the return value
        (which must be JSON) as output, or ``Failed`` with the exception.
        """
        return None

    def close(self) -> Awaitable[None] | None:
        """Stop serving gracefully; ``run`` has already been asked to stop and waited for."""
        return None

    def abort(self) -> Awaitable[None] | None:
        """Stop now: the agent is not waiting. Release what you hold; do not block."""
        return None

    def config_changed(self, package: str) -> Awaitable[None] | None:
        """Config package ``package`` changed; ``self.context`` already shows the new settings."""
        return None

    # -- external events (Durable Functions' raiseEvent) -------------------------------------------

    async def wait_for_event(
        self,
        name: str,
        timeout: float | None = None,  # noqa: ASYNC109  (the same call as the blocking one)
    ) -> JSON:
        """Wait for the external event ``name`` and return its data (any JSON value).

        Events raised for this replica (``POST .../raiseEvent/{name}`` for a singleton instance)
        are kept first in, first out per name; one raised before anyone waits is buffered, so
        this returns at once with the oldest. For a sync ``run`` use
        :meth:`wait_for_event_blocking`.

        Raises:
            TimeoutError: no such event came within ``timeout`` seconds.
            EventWaitCancelled: the replica is closing (terminated, deleted) or, stateful, stops
                being Primary; ``run`` should let it propagate or return.
            ValueError: ``name`` is not an event name.
        """
        return await self._events().wait(name, timeout)

    def wait_for_event_blocking(self, name: str, timeout: float | None = None) -> JSON:
        """:meth:`wait_for_event` for sync code: blocks this thread. Never call it from async
        code (it would block the event loop)."""
        return self._events().get(name, timeout)

    def _events(self) -> EventInbox:
        if self._inbox is None:
            raise RuntimeError(f"{type(self).__name__} is not hosted by run_host(); no events")
        return self._inbox

    # -- reports to the agent (thread-safe, never block) ------------------------------------------

    def report_health(
        self,
        state: HealthState | str,
        property: str,
        description: str = "",
        *,
        time_to_live: float | None = None,
        remove_when_expired: bool = False,
    ) -> None:
        """Report this replica's health (``Ok``, ``Warning`` or ``Error``) about ``property``.

        The agent shows it on the replica (``fabrichost health``, ``GetHealth``) under the
        service type's name as SourceId; a later report of the same property replaces it.
        ``time_to_live`` (seconds, default forever) makes it expire: it then counts as Error,
        or disappears with ``remove_when_expired``. The TTL
        fields are new in ``ReportHealth``: an agent older than them refuses a report with one.
        """
        context = self.context
        ttl_ms = None
        if time_to_live is not None:
            if not time_to_live > 0:
                raise ValueError(f"time_to_live must be positive, not {time_to_live}")
            ttl_ms = max(1, round(time_to_live * 1000))
        self._send(
            ReportHealth(
                partition_id=context.partition_id,
                replica_id=context.replica_id,
                state=HealthState(state),
                property=property,
                description=description,
                time_to_live_ms=ttl_ms,
                remove_when_expired=remove_when_expired if ttl_ms is not None else None,
            )
        )

    def report_load(self, metrics: Mapping[str, int]) -> None:
        """Report load metrics (name → non-negative integer)."""
        context = self.context
        self._send(
            ReportLoad(
                partition_id=context.partition_id, replica_id=context.replica_id, metrics=metrics
            )
        )

    def report_fault(self, reason: str) -> None:
        """Tell the agent this replica is broken; the agent aborts and replaces it."""
        context = self.context
        self._send(
            ReplicaFaulted(
                partition_id=context.partition_id, replica_id=context.replica_id, reason=reason
            )
        )

    def _send(self, message: ReplicaNotification) -> None:
        if self._post is None:
            raise RuntimeError(f"{type(self).__name__} is not hosted by run_host(); cannot report")
        self._post(message)


class StatelessService(Service):
    """A stateless service instance.

    Lifecycle: ``open()`` → ``run(cancel)`` in the background → ``close()`` (or ``abort()``).
    ``self.context.role`` is always ``ReplicaRole.NONE``.

    Example::

        class Echo(StatelessService):
            async def open(self) -> str:
                port = self.context.endpoints["ServiceEndpoint"].port
                ...
                return f"tcp://127.0.0.1:{port}"
    """


class StatefulService(Service):
    """A stateful service replica.

    Lifecycle: ``open()`` → ``change_role(role)`` (the role ``OpenReplica`` asked for) → more
    ``change_role`` calls → ``close()`` (or ``abort()``). As in Service Fabric, ``run(cancel)``
    runs only while the replica is Primary: it starts on promotion and is cancelled (and waited
    for) before any change away from Primary and before close. ``change_role(ReplicaRole.NONE)``
    means the replica is being dropped and should delete its state.
    """

    def change_role(self, role: ReplicaRole) -> Address | Awaitable[Address]:
        """Take on ``role``; return the address to publish (``None`` keeps the previous one)."""
        return None


ServiceClass = type[Service]
