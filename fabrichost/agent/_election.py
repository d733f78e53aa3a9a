"""Electing a stateful partition's Primary among its Ready replicas on up nodes.

The candidate's role is claimed before the ChangeRole round trip, so elections that run at the
same time (two replicas turned Ready at once) never make two Primaries: the second sees one and
stops. The new role is committed once the host has it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fabrichost.agent._model import ReplicaRole, ReplicaStatus
from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from fabrichost.agent._model import Partition
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._state import ClusterState

log = logging.getLogger(__name__)


class PrimaryElection:
    """Promotes a Ready secondary when a partition has no Primary."""

    def __init__(self, state: ClusterState, persist: Persistence) -> None:
        self._state = state
        self._persist = persist

    def has_primary(self, partition: Partition) -> bool:
        return any(r.role is ReplicaRole.PRIMARY for r in self._state.serving(partition))

    async def elect(self, partition: Partition) -> None:
        """Promote a Ready secondary of ``partition`` (the first that accepts) to Primary."""
        state = self._state
        for candidate in state.serving(partition):
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
