"""The health check after an upgrade domain: is the application whole again on that node?

Whole means: every replica of the application placed on the node is Ready (a guest's process
has run ``guest_settle`` seconds) and not in Error in the health model (a service's own report
counts), every stateful partition with a replica there has a Primary, and the deployed
application there is not in Error. It has *failed* as soon as a replica's open raised or a code
package keeps exiting (the same verdicts a create's wait gives,
``ClusterState.replica_failure``), with the cause quoted (the end of the code package's
stderr). Otherwise the check waits, re-checking on every change, until it has been whole for
``stable`` seconds or ``retry_timeout`` is over (SF's HealthCheckStableDuration and
HealthCheckRetryTimeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

from fabrichost.agent._model import HealthState, ReplicaRole, ReplicaStatus, ServiceKind
from fabrichost.agent._summary import summarize_reasons

if TYPE_CHECKING:
    from fabrichost.agent._health_view import EntityHealth, HealthView
    from fabrichost.agent._model import Partition, Replica
    from fabrichost.agent._state import ClusterState

# Seconds between checks when nothing the check hears of changed (a guest settles with time).
_RECHECK: Final = 1.0


def _unhealthy(entity: EntityHealth, what: str) -> str | None:
    """``what`` and the deepest reason, when the health model says Error."""
    if entity.health.state is not HealthState.ERROR:
        return None
    evaluation = entity.health.evaluations[0] if entity.health.evaluations else None
    while evaluation is not None and evaluation.children:
        evaluation = evaluation.children[0]
    if evaluation is None:
        return f"{what} is in Error"
    said = evaluation.event.info.description if evaluation.event is not None else ""
    return f"{what} is in Error: {evaluation.description}" + (f" {said}" if said else "")


def _replica_problem(
    state: ClusterState, replica: Replica, settle: float, health: HealthView | None
) -> tuple[str | None, bool]:
    """Why one replica is not whole (None: it is), and whether that is a failure."""
    if replica.status is not ReplicaStatus.READY:
        failure = state.replica_failure(replica)
        return (failure, True) if failure else (state.replica_reason(replica), False)
    if state.unsettled(replica, settle) > 0:
        return f"replica {replica.id} has just started", False
    if health is not None:
        return _unhealthy(health.replica(replica), f"replica {replica.id}"), False
    return None, False


def node_problem(
    state: ClusterState,
    node_name: str,
    app_name: str,
    settle: float,
    health: HealthView | None = None,
) -> tuple[str | None, bool]:
    """What keeps application ``app_name`` from being whole on ``node_name`` (None: nothing),
    and whether it is a failure rather than something still coming up. With ``health``, an
    Error in the health model (of the deployed application there, or of a replica there: a
    service's own report) keeps it from being whole too, as in Service Fabric's check."""
    app = state.applications.get(app_name)
    node = state.nodes.get(node_name)
    if app is None or node is None or not node.up:
        return None, False  # deleted, or a node that runs nothing: nothing to wait for
    waiting: list[str] = []
    failures: list[str] = []
    partitions: dict[str, Partition] = {}
    for service in list(app.services.values()):
        for replica in service.replicas():
            if replica.node_name != node_name:
                continue
            if service.kind is ServiceKind.STATEFUL:
                partitions[replica.partition.id] = replica.partition
            problem, failed = _replica_problem(state, replica, settle, health)
            if problem is not None:
                (failures if failed else waiting).append(
                    problem if failed else f"{service.name}: {problem}"
                )
    if failures:
        return summarize_reasons(failures), True
    waiting.extend(
        f"{partition.service.name}: partition {partition.id} has no Primary"
        for partition in partitions.values()
        if not any(
            r.role is ReplicaRole.PRIMARY and r.status is ReplicaStatus.READY
            for r in state.serving(partition)
        )
    )
    if health is not None and not waiting and state.activations_on(node, app_name):
        deployed = health.deployed_application(app, node)
        if bad := _unhealthy(deployed, f"{app_name} on {node_name}"):
            waiting.append(bad)
    return (summarize_reasons(waiting) if waiting else None), False


async def wait_node_whole(
    state: ClusterState,
    node_name: str,
    app_name: str,
    *,
    settle: float,
    retry_timeout: float,
    stable: float = 0.0,
    health: HealthView | None = None,
) -> str | None:
    """Wait until the application is whole on the node for ``stable`` seconds; None then, or
    why not as soon as it has failed or when ``retry_timeout`` seconds are over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_timeout
    whole_since: float | None = None
    while True:
        changed = state.changes.next()
        problem, failed = node_problem(state, node_name, app_name, settle, health)
        if failed:
            return problem
        now = loop.time()
        if problem is None:
            whole_since = now if whole_since is None else whole_since
            if now - whole_since >= stable:
                return None
            wake = whole_since + stable
        else:
            whole_since = None
            wake = now + _RECHECK
        if now >= deadline:
            return f"not healthy after {retry_timeout:g} s: {problem}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min(wake, deadline) - now)):
                await changed.wait()
