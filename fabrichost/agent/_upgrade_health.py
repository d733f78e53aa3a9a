"""The health check after an upgrade domain: is the application whole again on that node?

Whole means: every replica of the application placed on the node is Ready (a guest's process
has run ``guest_settle`` seconds), and every stateful partition with a replica there has a
Primary. It has *failed* as soon as a replica's open raised or a code package keeps exiting
(the same verdicts a create's wait gives, ``ClusterState.replica_failure``), with the cause
quoted (the end of the code package's stderr). Otherwise the check waits, re-checking on every
change, until it has been whole for ``stable`` seconds or ``retry_timeout`` is over (SF's
HealthCheckStableDuration and HealthCheckRetryTimeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Final

from fabrichost.agent._model import ReplicaRole, ReplicaStatus, ServiceKind
from fabrichost.agent._summary import summarize_reasons

if TYPE_CHECKING:
    from fabrichost.agent._model import Partition
    from fabrichost.agent._state import ClusterState

# Seconds between checks when nothing the check hears of changed (a guest settles with time).
_RECHECK: Final = 1.0


def node_problem(
    state: ClusterState, node_name: str, app_name: str, settle: float
) -> tuple[str | None, bool]:
    """What keeps application ``app_name`` from being whole on ``node_name`` (None: nothing),
    and whether it is a failure rather than something still coming up."""
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
            if replica.status is not ReplicaStatus.READY:
                failure = state.replica_failure(replica)
                if failure:
                    failures.append(failure)
                else:
                    waiting.append(f"{service.name}: {state.replica_reason(replica)}")
            elif state.unsettled(replica, settle) > 0:
                waiting.append(f"{service.name}: replica {replica.id} has just started")
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
    return (summarize_reasons(waiting) if waiting else None), False


async def wait_node_whole(
    state: ClusterState,
    node_name: str,
    app_name: str,
    *,
    settle: float,
    retry_timeout: float,
    stable: float = 0.0,
) -> str | None:
    """Wait until the application is whole on the node for ``stable`` seconds; None then, or
    why not as soon as it has failed or when ``retry_timeout`` seconds are over."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_timeout
    whole_since: float | None = None
    while True:
        changed = state.changes.next()
        problem, failed = node_problem(state, node_name, app_name, settle)
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
