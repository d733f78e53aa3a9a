"""External events for singleton instances (Durable Functions' ``raiseEvent``).

An event goes to the incarnation that is current when it is raised: over its replica's host
channel, once that replica is open (a Pending instance, or one whose process is being restarted,
is waited for, within a bound), one at a time per instance so that events arrive in the order
they were accepted. They are not persisted: the inbox lives in the hosting process, and a new
process of the instance (after a crash or an agent restart) starts with an empty one.

Each refusal says what happened (too large, finished, not ready in time, unsupported by the
host, inbox full, unconfirmed); the HTTP API chooses the status that answers it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

from fabrichost.agent._channel import HostError
from fabrichost.agent._model import ReplicaStatus
from fabrichost.errors import (
    ApiError,
    BacklogFullError,
    GoneError,
    NotSupportedError,
    ProtocolError,
    TooLargeError,
    UnavailableError,
    UnconfirmedError,
)
from fabrichost.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    EVENT_NAME_RULE,
    ErrorCode,
    encode_payload,
    is_event_name,
)

if TYPE_CHECKING:
    from fabrichost.agent._channel import HostChannel
    from fabrichost.agent._instances import InstanceManager
    from fabrichost.agent._model import Instance
    from fabrichost.agent._state import ClusterState
    from fabrichost.protocol import JSON

log = logging.getLogger(__name__)

#: How long an event waits, by default, for its instance's replica to be open (a Pending
#: instance, a process being restarted) before the request gives up.
EVENT_TIMEOUT: Final = 30.0
#: The largest event data (compact JSON) that fits in one RaiseEvent frame with its envelope.
MAX_EVENT_BYTES: Final = DEFAULT_MAX_FRAME_SIZE - 4096

_Target = tuple["HostChannel", str, int]  # the channel, partition id and replica id


class InstanceEvents:
    """Delivers external events to the running incarnation of singleton instances."""

    def __init__(self, state: ClusterState, instances: InstanceManager) -> None:
        self._state = state
        self._instances = instances

    async def raise_event(
        self, instance_id: str, name: str, data: JSON, within: float = EVENT_TIMEOUT
    ) -> Instance:
        """Deliver external event ``name`` with ``data`` to the instance's running incarnation.

        Returns once the instance's host has put it in the replica's inbox. A Pending instance
        (or one whose process is being restarted) is waited for, up to ``within`` seconds.

        Raises:
            ApiError: a bad event name.
            TooLargeError: the data does not fit in one frame.
            NotFoundError: no such instance.
            GoneError: the instance has finished, also while its event waited.
            UnavailableError: the replica was not open within ``within``, or the agent stops.
            NotSupportedError: the host speaks no events (protocol version 1).
            BacklogFullError: the replica's inbox is full.
            UnconfirmedError: the host did not confirm in time (it may have the event).
        """
        if not is_event_name(name):
            raise ApiError(f"event name {name!r} is not valid: {EVENT_NAME_RULE}")
        size = len(encode_payload({"data": data}))
        if size > MAX_EVENT_BYTES:
            raise TooLargeError(
                f"the event data is {size} bytes of JSON; at most {MAX_EVENT_BYTES} fit"
            )
        instance = self._instances.get(instance_id)
        _check_accepts_events(instance)
        deadline = asyncio.get_running_loop().time() + within
        try:
            async with asyncio.timeout_at(deadline):
                await instance.event_lock.acquire()
        except TimeoutError:
            raise _not_ready(instance, within) from None
        try:
            await self._deliver_when_open(instance, name, data, deadline, within)
        finally:
            instance.event_lock.release()
        return instance

    async def _deliver_when_open(
        self, instance: Instance, name: str, data: JSON, deadline: float, within: float
    ) -> None:
        state = self._state
        while True:
            changed = state.changes.next()  # taken before the check: no wake-up is missed
            if state.closing:
                raise UnavailableError(
                    "the agent is shutting down; the event was not delivered",
                    code="FABRIC_E_SERVICE_OFFLINE",
                )
            _check_accepts_events(instance)
            target = self._target(instance)
            if target is not None and await _deliver(instance, target, name, data):
                return
            try:
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
            except TimeoutError:
                _check_accepts_events(instance)
                raise _not_ready(instance, within) from None

    def _target(self, instance: Instance) -> _Target | None:
        """The channel and replica of the instance's open replica, if it has one now."""
        if not self._instances.is_current(instance):
            return None
        service = self._state.find_service(instance.service_name)
        if service is None:
            return None
        for replica in service.replicas():
            if replica.status is not ReplicaStatus.READY:
                continue
            activation = self._state.activation_of(replica)
            host = activation.hosts.get(replica.code_package_name) if activation else None
            channel = host.channel if host is not None else None
            if channel is not None and channel.pid == replica.host_pid:
                return channel, replica.partition.id, replica.id
        return None


def _check_accepts_events(instance: Instance) -> None:
    if not instance.status.active:
        raise GoneError(
            f"Instance '{instance.instance_id}' is {instance.status.value} and cannot "
            "process any raised events.",
            code="FABRIC_E_INSTANCE_NOT_RUNNING",
        )


def _not_ready(instance: Instance, within: float) -> UnavailableError:
    return UnavailableError(
        f"instance '{instance.instance_id}' ({instance.status.value}) was not ready to "
        f"receive events within {within:g} s; the event was not delivered",
        code="FABRIC_E_TIMEOUT",
    )


async def _deliver(instance: Instance, target: _Target, name: str, data: JSON) -> bool:
    """One attempt; False when it certainly did not arrive and may be tried again."""
    channel, partition_id, replica_id = target
    if not channel.supports_events:
        raise NotSupportedError(
            f"instance '{instance.instance_id}' runs in a host that speaks protocol version "
            "1, which has no external events",
            code="FABRIC_E_NOT_SUPPORTED",
        )
    try:
        await channel.raise_event(partition_id, replica_id, name, data)
    except HostError as exc:
        if exc.code == ErrorCode.EVENT_BUFFER_FULL:
            raise BacklogFullError(
                f"instance '{instance.instance_id}' has too many unconsumed events: {exc}",
                code="FABRIC_E_EVENT_BUFFER_FULL",
            ) from None
        log.info("event %s for instance %s not taken: %s", name, instance.instance_id, exc)
        return False  # the replica is closing or gone from that host: look again
    except ProtocolError as exc:  # not sent, or the channel closed: its inbox is gone too
        log.info("event %s for instance %s not sent: %s", name, instance.instance_id, exc)
        return False
    except TimeoutError:
        raise UnconfirmedError(
            f"the host of instance '{instance.instance_id}' did not confirm event {name!r} "
            "in time; it may or may not have it",
            code="FABRIC_E_TIMEOUT",
        ) from None
    return True
