"""Service Fabric's fault routes on nodes and replicas: the node transition API
(``/Faults/Nodes/{n}/$/StartTransition``, ``GetTransitionProgress``) and a deployed replica's
restart (``/Nodes/{n}/$/GetPartitions/{p}/$/GetReplicas/{r}/$/Restart``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from starlette.responses import Response

from fabrichost.agent import TransitionKind
from fabrichost.api import _paging as P
from fabrichost.api._queries import deployed_replica
from fabrichost.errors import ApiError

if TYPE_CHECKING:
    from starlette.requests import Request

    from fabrichost.agent import Cluster, Transition

E_FAIL: Final = -2147467259  # 0x80004005 as SF's signed ErrorCode of a faulted transition


def _required(request: Request, name: str) -> str:
    value = request.query_params.get(name)
    if not value:
        raise ApiError(f"query parameter {name} is required")
    return value


def transition_progress_json(transition: Transition) -> dict[str, Any]:
    """SF's NodeTransitionProgress; the result once the transition is over."""
    progress: dict[str, Any] = {"State": transition.state.value}
    if transition.state.value != "Running":
        progress["NodeTransitionResult"] = {
            "ErrorCode": E_FAIL if transition.error else 0,
            "NodeResult": {
                "NodeName": transition.node_name,
                "NodeInstanceId": str(transition.node_instance_id),
            },
        }
    return progress


class NodeFaultRoutes:
    """The handlers; ``build_app`` routes them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def start_transition(self, request: Request) -> Any:
        kind_text = _required(request, "NodeTransitionType")
        try:
            kind = TransitionKind(kind_text)
        except ValueError:
            raise ApiError(f"NodeTransitionType must be Start or Stop, not {kind_text!r}") from None
        # SF starts a stopped node again after this many seconds (it asks 600 at least);
        # fabrichost takes any, and 0 or none keeps the node stopped until it is started.
        duration = P.int_param(request.query_params, "StopDurationInSeconds", 0)
        self.cluster.transitions.start(
            request.path_params["node"],
            _required(request, "OperationId"),
            kind,
            _required(request, "NodeInstanceId"),
            stop_duration=float(duration) if duration > 0 else None,
        )
        return Response(status_code=202)

    async def transition_progress(self, request: Request) -> Any:
        transition = self.cluster.transitions.progress(
            request.path_params["node"], _required(request, "OperationId")
        )
        return transition_progress_json(transition)

    async def restart_replica(self, request: Request) -> Any:
        replica, activation = deployed_replica(self.cluster.state, request)
        await activation.restart_replica(replica)
        return {}
