"""Failover: what happens when a replica's host goes down, and when a node stops or starts.

A stateful partition whose Primary went down gets a new one elected among its Ready replicas;
the old Primary comes back as a secondary. A node stop commits "node down" and the removal of
every replica placed on it in one transaction, then stops its activations, which stay registered
(and findable by whoever waits for their processes) until they are gone; then its partitions are
filled again on the other nodes. A start of the same node waits for the stop.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from fabrichost.agent._model import ReplicaRole, ReplicaStatus, ServiceKind
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from fabrichost.agent._election import PrimaryElection
    from fabrichost.agent._model import Replica
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._state import ClusterState, Node
    from fabrichost.agent._tasks import BackgroundTasks

log = logging.getLogger(__name__)


class Failover:
    """Keeps partitions served when replicas, processes and nodes go away."""

    def __init__(
        self,
        state: ClusterState,
        persist: Persistence,
        placement: Placement,
        election: PrimaryElection,
        settings: AgentSettings,
        tasks: BackgroundTasks,
    ) -> None:
        self._state = state
        self._persist = persist
        self._placement = placement
        self._election = election
        self._settings = settings
        self._tasks = tasks

    def replica_changed(self, replica: Replica) -> None:
        """React to a replica's new status (called by the activation that changed it)."""
        if self._state.closing:
            return  # the agent is stopping: nothing fails over
        stateful = replica.service.kind is ServiceKind.STATEFUL
        if (
            stateful
            and replica.status is ReplicaStatus.DOWN
            and replica.role is ReplicaRole.PRIMARY
        ):
            replica.role = ReplicaRole.ACTIVE_SECONDARY  # it comes back as a secondary
            if self._state.nodes[replica.node_name].up:  # a stopping node's left the store
                self._persist.replica_saved(replica)
            self._tasks.spawn(self._election.elect(replica.partition))
        elif (
            stateful
            and replica.status is ReplicaStatus.READY
            and not self._election.has_primary(replica.partition)
            and self._state.is_live(replica.service)
        ):
            # The partition lost its Primary while no other replica was Ready (e.g. its only
            # replica's host died): the first replica that is Ready again is promoted.
            self._tasks.spawn(self._election.elect(replica.partition))

    async def stop_node(self, name: str) -> None:
        """Stop a node: its processes stop, its replicas fail over to the other nodes.

        Every replica placed on the node is taken from the model, not only those already in a
        process (a create or a failover may have placed some it has not activated yet). The
        node going down and those replicas going away are one decision, committed before
        anything is awaited: an agent killed during the stop restarts with the node down and
        the replicas to place again.
        """
        node = self._state.node(name)
        if not node.up:
            return
        node.stopped = asyncio.Event()  # a start of this node waits until the stop is over
        try:
            await self._stop_node(node)
        finally:
            node.stopped.set()
            node.stopped = None

    async def _stop_node(self, node: Node) -> None:
        state = self._state
        lost = [r for r in state.all_replicas() if r.node_name == node.name]
        with self._persist.transaction():
            self._persist.node_saved(node.name, False)
            for replica in lost:
                self._persist.replica_removed(replica)
        node.went_down()
        # They stay registered while they stop, so that whoever waits for a replica's
        # processes to be gone (a terminate, a delete) still finds them.
        activations = list(node.activations.values())
        held = {id(r) for a in activations for r in a.replicas}
        for replica in lost:
            if id(replica) not in held:  # not in a process yet: nothing to close first
                replica.status = ReplicaStatus.DROPPED
        state.changes.notify()
        await asyncio.gather(*(a.deactivate(self._settings.stop_grace) for a in activations))
        stopped = {id(a) for a in activations}
        for key, activation in list(node.activations.items()):
            if id(activation) in stopped:
                del node.activations[key]
        for replica in [*lost, *(r for a in activations for r in a.replicas)]:
            replica.status = ReplicaStatus.DROPPED  # closed in their processes, gone now
        state.changes.notify()
        if state.closing:
            return  # the agent is stopping: nothing fails over
        # Services deleted while the processes stopped are skipped (refill checks).
        for partition in dict.fromkeys(r.partition for r in lost):
            try:
                await self._placement.refill(partition)
            except FabricHostError as exc:  # reported; the other partitions still fail over
                log.error(
                    "%s partition %s cannot fail over: %s",
                    partition.service.name,
                    partition.id,
                    exc,
                )
        state.changes.notify()

    async def start_node(self, name: str) -> None:
        """Start a stopped node: the partitions that lack replicas are filled, on it too."""
        node = self._state.node(name)
        # Stops in progress finish first: this node's own, and any other node's, whose
        # replicas still run until its grace period ends (a fill now would double them).
        await self._state.wait_stops_over()
        if node.up:
            return
        node.went_up()
        self._persist.node_saved(name, True)
        for service in list(self._state.services()):
            for partition in service.partitions:
                try:
                    await self._placement.fill_partition(partition)
                except FabricHostError as exc:  # on the service's health; the rest go on
                    log.error(
                        "%s partition %s cannot be filled: %s", service.name, partition.id, exc
                    )
        self._state.changes.notify()
