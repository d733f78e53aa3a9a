"""Singleton instance routes, with Durable Functions' paths and payloads.

``POST /orchestrators/{functionName}[/{instanceId}]`` starts an instance (the seed's HTTP start
route); the ``/runtime/webhooks/durabletask/instances/...`` routes query, terminate, purge it
and raise external events for it, as Durable Functions' built-in HTTP API does. Unlike Durable's
own webhook, an instance that exists answers 409, never a silent success or a 500.
"""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from starlette.responses import JSONResponse, Response

from fabrichost.agent import EVENT_TIMEOUT
from fabrichost.api._body import MAX_PAYLOAD_BODY_BYTES, read_json
from fabrichost.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from starlette.requests import Request

    from fabrichost.agent import Cluster, Instance

STATUS_ROOT = "/runtime/webhooks/durabletask/instances"
_REQUEST_IDS = uuid.UUID("6f1c2d4e-8a5b-4c3d-9e2f-0a1b2c3d4e5f")  # namespace of derived IDs


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def instance_status(instance: Instance) -> dict[str, Any]:
    """Durable Functions' instance status fields (plus the generation)."""
    return {
        "name": instance.function_name,
        "instanceId": instance.instance_id,
        "runtimeStatus": instance.status.value,
        "input": json.loads(instance.input_json),
        "output": json.loads(instance.output_json) if instance.output_json is not None else None,
        "error": instance.error,
        "customStatus": None,
        "createdTime": _iso(instance.created_at),
        "lastUpdatedTime": _iso(instance.updated_at),
        "generation": instance.generation,
    }


def check_status_payload(request: Request, instance: Instance) -> dict[str, str]:
    """Durable's ``CreateCheckStatusResponse`` body for ``instance``."""
    status = f"{str(request.base_url).rstrip('/')}{STATUS_ROOT}/{instance.instance_id}"
    return {
        "id": instance.instance_id,
        "statusQueryGetUri": status,
        "sendEventPostUri": f"{status}/raiseEvent/{{eventName}}",
        "terminatePostUri": f"{status}/terminate?reason={{text}}",
        "purgeHistoryDeleteUri": status,
    }


class InstanceRoutes:
    """Handlers; ``if_exists_of`` and ``request_id_of`` parse the create policy headers."""

    def __init__(
        self,
        cluster: Cluster,
        if_exists_of: Callable[[Request], Any],
        request_id_of: Callable[[Request], str | None],
    ) -> None:
        self.cluster = cluster
        self._if_exists_of = if_exists_of
        self._request_id_of = request_id_of

    async def start(self, request: Request) -> Any:
        value = await read_json(
            request, limit=MAX_PAYLOAD_BODY_BYTES, what="the body (the instance's input)"
        )
        request_id = self._request_id_of(request)
        instance_id = request.path_params.get("instance") or (
            # A retry of a start without an ID must name the same instance: derive it.
            str(uuid.uuid5(_REQUEST_IDS, request_id)) if request_id else str(uuid.uuid4())
        )
        outcome = await self.cluster.instances.start(
            request.path_params["function"],
            instance_id,
            json.dumps(value),
            if_exists=self._if_exists_of(request),
            request_id=request_id,
        )
        payload = check_status_payload(request, outcome.value)
        return JSONResponse(
            payload,
            status_code=202 if outcome.created else 200,
            headers={"Location": payload["statusQueryGetUri"]},
        )

    async def status(self, request: Request) -> Any:
        instance_id = request.path_params["instance"]
        if request.query_params.get("waitForCompletion", "").lower() == "true":
            try:
                within = float(request.query_params.get("timeout", "60"))
            except ValueError:
                raise ApiError("timeout must be a number of seconds") from None
            instance = await self.cluster.instances.wait_finished(instance_id, within)
        else:
            instance = self.cluster.instances.get(instance_id)
        code = 202 if instance.status.active else 200
        return JSONResponse(instance_status(instance), status_code=code)

    async def list(self, request: Request) -> Any:
        return {"Items": [instance_status(i) for i in self.cluster.instances.instances.values()]}

    async def terminate(self, request: Request) -> Any:
        instance, stopped = await self.cluster.instances.terminate(request.path_params["instance"])
        return JSONResponse(instance_status(instance), status_code=202 if stopped else 200)

    async def purge(self, request: Request) -> Any:
        await self.cluster.instances.purge(request.path_params["instance"])
        return {"instancesDeleted": 1}

    async def raise_event(self, request: Request) -> Any:
        """``POST .../instances/{id}/raiseEvent/{eventName}``, body = the event's data (JSON).

        202 (no body) once the instance's host has the event; 400 a bad name or a body that is
        not JSON (an empty one included: send ``null`` for no data); 404 no such instance; 410
        it has finished; 413 a body over 1 MiB, or data that does not fit in one frame.
        ``?timeout=S`` bounds the wait for a Pending instance (default 30 s).
        """
        data = await read_json(
            request,
            limit=MAX_PAYLOAD_BODY_BYTES,
            what="the body (the event's data; send null for no data)",
            allow_empty=False,
        )
        try:
            within = float(request.query_params.get("timeout", EVENT_TIMEOUT))
        except ValueError:
            raise ApiError("timeout must be a number of seconds") from None
        if not 0 <= within <= 3600:  # also refuses nan
            raise ApiError("timeout must be 0 to 3600 seconds")
        await self.cluster.events.raise_event(
            request.path_params["instance"], request.path_params["event"], data, within
        )
        return Response(status_code=202)
