"""Repairing partitions that lost replicas because an activation failed.

A partition gets one repair task: it fills the partition again after a backoff
(``AgentSettings.repair_first_delay``, doubling up to ``repair_max_delay``) until the partition
is whole, its service is gone or the agent stops, placing on the nodes that failed only when no
other node fits. A loss reported while a pass runs marks the task for another pass: that pass may
have planned before the loss and would otherwise end with the partition short.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fabrichost.errors import FabricHostError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from fabrichost.agent._model import Partition
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._state import ClusterState
    from fabrichost.agent._tasks import BackgroundTasks

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Repair:
    """The state of one partition's repair task."""

    # Nodes where an activation for the partition failed: placed on last, so that one broken
    # node does not take every retry while another node could serve.
    failed_nodes: set[str] = field(default_factory=set)
    # A replica was lost after the current pass began: another pass is needed.
    again: bool = True


class PartitionRepairs:
    """The repair tasks of one cluster, one per partition at most."""

    def __init__(
        self,
        state: ClusterState,
        settings: AgentSettings,
        tasks: BackgroundTasks,
        fill: Callable[[Partition, frozenset[str]], Awaitable[None]],
    ) -> None:
        self._state = state
        self._settings = settings
        self._tasks = tasks
        self._fill = fill
        self._repairs: dict[str, _Repair] = {}  # partition id -> its repair task's state

    def is_repairing(self, partition: Partition) -> bool:
        return partition.id in self._repairs

    def schedule(self, partition: Partition, failed_node: str) -> None:
        """Fill ``partition`` again after a backoff; ``failed_node`` is placed on last."""
        if self._state.closing:
            return
        repair = self._repairs.get(partition.id)
        if repair is None:
            repair = self._repairs[partition.id] = _Repair()
            self._tasks.spawn(self._repair(partition, repair))
        repair.failed_nodes.add(failed_node)
        repair.again = True

    async def _repair(self, partition: Partition, repair: _Repair) -> None:
        """Fill ``partition`` until a pass succeeds with no loss reported since it began."""
        delay = self._settings.repair_first_delay
        try:
            while repair.again:
                await asyncio.sleep(delay)
                await self._state.wait_stops_over()
                if self._state.closing or not self._state.is_live(partition.service):
                    return
                repair.again = False  # from here on, a reported loss needs another pass
                try:
                    await self._fill(partition, frozenset(repair.failed_nodes))
                except FabricHostError as exc:
                    repair.again = True
                    delay = min(delay * 2, self._settings.repair_max_delay)
                    log.warning(
                        "%s partition %s: repair failed (%s); next try in %.0f s",
                        partition.service.name,
                        partition.id,
                        exc,
                        delay,
                    )
            # Whole again, or short of up nodes (a node start fills it then).
        except Exception:  # a bug: said loudly, not lost with the task
            log.exception("%s partition %s: repair stopped", partition.service.name, partition.id)
        finally:
            del self._repairs[partition.id]
