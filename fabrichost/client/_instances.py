"""Singleton instances through the agent's HTTP API: the part of :class:`FabricClient` for them.

Usage::

    with FabricClient.for_state_dir(state_dir) as client:
        started = client.start_instance("EchoJob", "nightly", {"day": 3})
        status = client.instance_status(started["id"], wait=True, timeout=30)
        assert status["runtimeStatus"] == "Completed" and status["output"] == {"day": 3}
        client.purge_instance("nightly")

A singleton instance is a stateless service of a created application (its service type is the
"function"), with one instance; at most one process ever runs it (docs/singletons.md). Errors
come back as :class:`~fabrichost.errors.ConflictError` (409: the ID is taken, or purging a
running instance), :class:`~fabrichost.errors.NotFoundError` (404: unknown instance or function)
and :class:`~fabrichost.errors.ApiError` (400: an ambiguous function name, a request id reused
with a different input, a bad policy).
"""

from __future__ import annotations

import json as _json
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from fabrichost.protocol import EVENT_NAME_RULE, is_event_name
from fabrichost.wire import (
    INSTANCE_ID_RULE,
    IfExists,
    InstanceStatus,
    check_instance_input,
    is_valid_instance_id,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

#: What ``start_instance`` does when the ID already names a running instance (``ifExists``).
IF_EXISTS_POLICIES: Final = tuple(policy.value for policy in IfExists)

#: Every ``runtimeStatus``; the last three are final.
RUNTIME_STATUSES: Final = tuple(status.value for status in InstanceStatus)
FINAL_STATUSES: Final = frozenset(s.value for s in InstanceStatus if not s.active)

_INSTANCES: Final = "/runtime/webhooks/durabletask/instances"


def check_new_instance_id(instance_id: str) -> str:
    """``instance_id`` if an instance may be started with it; else :class:`ValueError`."""
    if not is_valid_instance_id(instance_id):
        raise ValueError(f"instance id {instance_id!r} is not valid: {INSTANCE_ID_RULE}")
    return instance_id


def _segment(value: str) -> str:
    # An instance ID is user text: quote every reserved character (``/`` included) so it stays
    # one path segment; the agent's router decodes it back. An empty one, ``.`` and ``..``
    # cannot be a segment (URLs drop or resolve them): another route would be called.
    if value in ("", ".", ".."):
        raise ValueError(f"instance id {value!r} is not valid: {INSTANCE_ID_RULE}")
    return quote(value, safe="")


class InstancesMixin:
    """Singleton-instance calls of :class:`fabrichost.client.FabricClient` (mixed into it)."""

    if TYPE_CHECKING:

        def _call(
            self,
            method: str,
            path: str,
            *,
            json: Any = None,
            content: bytes | None = None,
            params: Mapping[str, str] | None = None,
            headers: Mapping[str, str] | None = None,
            extra_time: float = 0.0,
        ) -> Any: ...

    def start_instance(
        self,
        function: str,
        instance_id: str | None = None,
        input: object = None,
        *,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> dict[str, Any]:
        """Start a singleton instance of service type ``function`` with ``input`` (any JSON).

        Without ``instance_id`` the agent picks a random GUID. ``if_exists`` says what to do
        when the ID names a running (or pending) instance: ``"fail"`` (the default) raises
        :class:`~fabrichost.errors.ConflictError`, ``"use-existing"`` returns that instance,
        ``"replace"`` terminates it and then starts the new one (their lifetimes never overlap).
        A ``request_id`` (sent as ``Idempotency-Key``) makes a retry of the same call return the
        instance the first call started instead of a conflict.

        Returns:
            The check-status payload: ``id``, ``statusQueryGetUri``, ``sendEventPostUri``,
            ``terminatePostUri``, ``purgeHistoryDeleteUri``.

        Raises:
            ValueError: ``if_exists`` is not one of :data:`IF_EXISTS_POLICIES`,
                ``instance_id`` breaks :data:`INSTANCE_ID_RULE`, or ``input`` is not JSON.
            TooLargeError: ``input`` is larger than its process could be given
                (:data:`~fabrichost.wire.MAX_INSTANCE_INPUT_BYTES`); nothing was sent.
        """
        if if_exists not in IF_EXISTS_POLICIES:
            raise ValueError(f"if_exists must be one of {', '.join(IF_EXISTS_POLICIES)}")
        if function in ("", ".", ".."):
            raise ValueError(f"function {function!r} is not a service type name")
        try:
            # The text the agent stores and delivers; a 100 MB input is refused before it is sent.
            check_instance_input(_json.dumps(input, allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the input is not JSON: {exc}") from None
        path = f"/orchestrators/{quote(function, safe='')}"
        if instance_id is not None:
            path += f"/{_segment(check_new_instance_id(instance_id))}"
        result: dict[str, Any] = self._call(
            "POST",
            path,
            json=input,  # None sends no body, which the agent reads as a null input
            params={"ifExists": if_exists},
            headers={"Idempotency-Key": request_id} if request_id is not None else None,
        )
        return result

    def instance_status(
        self, instance_id: str, *, wait: bool = False, timeout: float = 60.0
    ) -> dict[str, Any]:
        """The status of instance ``instance_id``.

        With ``wait`` the agent holds the request until the instance is finished
        (:data:`FINAL_STATUSES`) or ``timeout`` seconds pass, then answers with the status it
        has then: check ``runtimeStatus`` to know which.

        Returns:
            ``name``, ``instanceId``, ``runtimeStatus``, ``input``, ``output``, ``error``,
            ``createdTime``, ``lastUpdatedTime``, ``generation``.
        """
        params = {"waitForCompletion": "true", "timeout": str(timeout)} if wait else None
        result: dict[str, Any] = self._call(
            "GET",
            f"{_INSTANCES}/{_segment(instance_id)}",
            params=params,
            extra_time=timeout if wait else 0.0,
        )
        return result

    def instances(self) -> list[dict[str, Any]]:
        """The status of every instance the agent knows (not purged)."""
        return list(self._call("GET", _INSTANCES)["Items"])

    def terminate_instance(self, instance_id: str) -> dict[str, Any] | None:
        """Stop instance ``instance_id``; returns once its process is gone.

        Idempotent: terminating a finished instance changes nothing and succeeds.

        Returns:
            The instance's status afterwards (``None`` if the agent answered with no body).
        """
        result: dict[str, Any] | None = self._call(
            "POST", f"{_INSTANCES}/{_segment(instance_id)}/terminate"
        )
        return result

    def raise_event(
        self, instance_id: str, name: str, data: object = None, *, timeout: float = 30.0
    ) -> None:
        """Raise external event ``name`` with ``data`` (any JSON, default null) for an instance.

        Returns once the instance's process has the event in its inbox (HTTP 202); its code
        takes it when it waits for ``name`` (events raised earlier are buffered, first in first
        out). A Pending instance is waited for up to ``timeout`` seconds.

        Raises:
            ValueError: ``name`` breaks :data:`~fabrichost.protocol.EVENT_NAME_RULE`, or
                ``data`` is not JSON.
            NotFoundError: no such instance (404).
            ApiError: the instance has finished (410), was not ready within ``timeout`` (503),
                or another refusal (see docs/singletons.md).
        """
        if not is_event_name(name):
            raise ValueError(f"event name {name!r} is not valid: {EVENT_NAME_RULE}")
        try:
            body = _json.dumps(data, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the event data is not JSON: {exc}") from None
        self._call(
            "POST",
            f"{_INSTANCES}/{_segment(instance_id)}/raiseEvent/{name}",
            content=body,
            params={"timeout": str(timeout)},
            headers={"Content-Type": "application/json"},
            extra_time=timeout,
        )

    def purge_instance(self, instance_id: str) -> dict[str, Any]:
        """Forget finished instance ``instance_id``, freeing its ID (``{"instancesDeleted": 1}``).

        A running instance is not purged: :class:`~fabrichost.errors.ConflictError`.
        """
        result: dict[str, Any] = self._call("DELETE", f"{_INSTANCES}/{_segment(instance_id)}")
        return result
