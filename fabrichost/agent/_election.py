"""Electing a stateful partition's Primary among its Ready replicas on up nodes.

The candidate's role is claimed before the ChangeRole round trip, so elections that run at the
same time (two replicas turned Ready at once) never make two Primaries: the second sees one and
stops. The new role is committed once the host has it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import TYPE_CHECKING

from fabrichost.agent._model import ReplicaRole, ReplicaStatus
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fabrichost.agent._model import Partition, Replica
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._state import ClusterState

log = logging.getLogger(__name__)


class PrimaryElection:
    """Promotes a Ready secondary when a partition has no Primary."""

    def __init__(self, state: ClusterState, persist: Persistence) -> None:
        self._state = state
        self._persist = persist
        # Nodes whose processes an application upgrade is about to restart, with how many
        # upgrades are at it (two applications' upgrades may be on one node at once): a
        # Primary is elected there only when no Ready replica elsewhere can take the role.
        self._avoided: Counter[str] = Counter()

    @property
    def avoided_nodes(self) -> frozenset[str]:
        """The nodes an upgrade is at now (see :meth:`avoiding`)."""
        return frozenset(self._avoided)

    @contextlib.contextmanager
    def avoiding(self, node_name: str) -> Iterator[None]:
        """Avoid ``node_name`` for Primaries while the block runs; the node stays avoided
        until every upgrade that avoids it is done with it."""
        self._avoided[node_name] += 1
        try:
            yield
        finally:
            self._avoided[node_name] -= 1
            if self._avoided[node_name] <= 0:
                del self._avoided[node_name]

    def has_primary(self, partition: Partition) -> bool:
        return any(r.role is ReplicaRole.PRIMARY for r in self._state.serving(partition))

    async def elect(self, partition: Partition) -> None:
        """Promote a Ready secondary of ``partition`` (the first that accepts) to Primary."""
        state = self._state
        avoided = self.avoided_nodes
        for candidate in sorted(state.serving(partition), key=lambda r: r.node_name in avoided):
            if self.has_primary(partition):
                return
            if candidate.status is not ReplicaStatus.READY or candidate.dropped:
                continue
            activation = state.activation_of(candidate)
            if activation is None:
                continue
            previous = candidate.role
            # Claimed before the await: an election that runs meanwhile sees a Primary and
            # stops, so a partition never gets two.
            candidate.role = ReplicaRole.PRIMARY
            try:
                await activation.change_role(candidate, ReplicaRole.PRIMARY)
            except (FabricHostError, TimeoutError) as exc:
                log.warning("promoting replica %s failed: %s", candidate.id, exc)
                if candidate.role is ReplicaRole.PRIMARY:
                    candidate.role = previous
                continue
            if not candidate.dropped and state.nodes[candidate.node_name].up:
                self._persist.replica_saved(candidate)  # committed once the host has it
            return

    async def swap_out(self, primary: Replica) -> None:
        """Hand ``primary``'s role to a Ready replica on a node that is not avoided, before
        its process restarts (Service Fabric swaps a Primary out of an upgrade domain).

        The Primary is demoted first and another promoted after, so a partition never has two;
        with no Ready replica elsewhere it stays Primary until its host goes (then failover
        elects one as it does for any lost host).
        """
        state = self._state
        partition = primary.partition
        others = [
            r
            for r in state.serving(partition)
            if r is not primary
            and r.status is ReplicaStatus.READY
            and r.node_name not in self.avoided_nodes
        ]
        activation = state.activation_of(primary)
        if not others or activation is None or primary.role is not ReplicaRole.PRIMARY:
            return
        try:
            await activation.change_role(primary, ReplicaRole.ACTIVE_SECONDARY)
        except (FabricHostError, TimeoutError) as exc:
            log.warning("demoting replica %s before its restart failed: %s", primary.id, exc)
            return
        if not primary.dropped and state.nodes[primary.node_name].up:
            self._persist.replica_saved(primary)
        await self.elect(partition)
