"""Service Fabric's node transitions (its fault analysis service's StartNodeTransition): a node
stopped or started as an operation with an id, whose progress is asked for afterwards.

A transition is checked at once (the node exists, ``NodeInstanceId`` is its current instance,
a Stop finds it up and a Start finds it stopped, the operation id is new) and then runs in the
background on top of :class:`Failover`'s node stop and start; its progress is Running until
that returns, then Completed or Faulted. A Stop with a duration starts the node again by
itself when the duration is over, unless something else started (or stopped) it meanwhile.
Unlike Service Fabric, which asks at least 600 seconds, any duration is taken, and none keeps
the node stopped until it is started; the timer is not persisted (an agent restart forgets it).
Operations are remembered for the agent's lifetime.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fabrichost.errors import ApiError, ConflictError, FabricHostError, NotFoundError

if TYPE_CHECKING:
    from datetime import datetime

    from fabrichost.agent._failover import Failover
    from fabrichost.agent._state import ClusterState
    from fabrichost.agent._tasks import BackgroundTasks

log = logging.getLogger(__name__)


class TransitionKind(enum.StrEnum):
    """SF's NodeTransitionType."""

    START = "Start"
    STOP = "Stop"


class OperationState(enum.StrEnum):
    """SF's OperationState, the values a node transition takes."""

    RUNNING = "Running"
    COMPLETED = "Completed"
    FAULTED = "Faulted"


@dataclass
class Transition:
    """One node transition: what was asked, where it is, and the node instance it left."""

    operation_id: str
    node_name: str
    kind: TransitionKind
    state: OperationState = OperationState.RUNNING
    error: str = ""
    node_instance_id: int = 0  # the node's instance when the transition finished


class NodeTransitions:
    """Starts node transitions and remembers them by operation id."""

    def __init__(self, state: ClusterState, failover: Failover, tasks: BackgroundTasks) -> None:
        self._state = state
        self._failover = failover
        self._tasks = tasks
        self._operations: dict[str, Transition] = {}

    def start(
        self,
        node_name: str,
        operation_id: str,
        kind: TransitionKind,
        node_instance_id: str,
        stop_duration: float | None = None,
    ) -> Transition:
        """Check and begin a transition of ``node_name``; it runs in the background.

        Raises:
            ApiError: a malformed operation id, a stale instance id (SF's
                FABRIC_E_INSTANCE_ID_MISMATCH), a node whose stop is in progress
                (FABRIC_E_NODE_HAS_NOT_STOPPED_YET), a Start of a node that is up
                (FABRIC_E_NODE_IS_UP) or a Stop of one that is stopped.
            ConflictError: the operation id was used before.
            NotFoundError: no such node.
        """
        try:
            uuid.UUID(operation_id)
        except ValueError:
            raise ApiError(f"OperationId must be a GUID, not {operation_id!r}") from None
        if operation_id in self._operations:
            raise ConflictError(
                f"operation {operation_id} exists already; every transition needs a new id",
                code="FABRIC_E_TEST_COMMAND_OPERATION_ID_ALREADY_EXISTS",
            )
        node = self._state.node(node_name)
        if node_instance_id != str(node.instance_id):
            raise ApiError(
                f"node {node_name} is instance {node.instance_id}, not {node_instance_id}; "
                "read its InstanceId again (it changes each time the node starts)",
                code="FABRIC_E_INSTANCE_ID_MISMATCH",
            )
        if node.stopped is not None:
            raise ApiError(
                f"node {node_name} is being stopped; ask again once the stop is over",
                code="FABRIC_E_NODE_HAS_NOT_STOPPED_YET",
            )
        if kind is TransitionKind.STOP and not node.up:
            raise ApiError(
                f"node {node_name} is stopped already", code="FABRIC_E_INVALID_OPERATION"
            )
        if kind is TransitionKind.START and node.up:
            raise ApiError(f"node {node_name} is up already", code="FABRIC_E_NODE_IS_UP")
        transition = Transition(operation_id, node_name, kind)
        self._operations[operation_id] = transition
        self._tasks.spawn(self._run(transition, stop_duration))
        return transition

    def progress(self, node_name: str, operation_id: str) -> Transition:
        """The transition ``operation_id`` of ``node_name``."""
        transition = self._operations.get(operation_id)
        if transition is None or transition.node_name != node_name:
            raise NotFoundError(
                f"no transition {operation_id} of node {node_name} was started",
                code="FABRIC_E_KEY_NOT_FOUND",
            )
        return transition

    async def _run(self, transition: Transition, stop_duration: float | None) -> None:
        name = transition.node_name
        try:
            if transition.kind is TransitionKind.STOP:
                await self._failover.stop_node(name)
            else:
                await self._failover.start_node(name)
        except FabricHostError as exc:
            transition.state, transition.error = OperationState.FAULTED, str(exc)
            log.error("node transition %s of %s failed: %s", transition.kind, name, exc)
            return
        node = self._state.node(name)
        transition.node_instance_id = node.instance_id
        transition.state = OperationState.COMPLETED
        if transition.kind is TransitionKind.STOP and stop_duration is not None:
            await self._restart_after(name, node.down_at, stop_duration)

    async def _restart_after(self, name: str, down_at: datetime | None, seconds: float) -> None:
        """Start the node again after ``seconds``, if it is still down from this stop."""
        await asyncio.sleep(seconds)
        node = self._state.node(name)
        if node.up or node.down_at is not down_at:
            return  # started by someone else meanwhile (and perhaps stopped again)
        log.info("node %s stop duration of %.0f s is over: starting it", name, seconds)
        try:
            await self._failover.start_node(name)
        except FabricHostError as exc:
            log.error("node %s could not be started after its stop duration: %s", name, exc)
