"""The local cluster: builds its parts, wires them together, restores and shuts them down.

The parts, from the bottom up (``docs/architecture.md`` draws them):

* **state** (:class:`ClusterState`): the runtime model and its read-only queries, no IO;
* **persistence** (:class:`Persistence`): every decision written through to the store, on the
  event loop, in the same step that makes it, before any process is started for it;
* **mechanisms**: service package activations, code package processes, host channels;
* **services**, each given only the collaborators it needs: the application types
  (:class:`ApplicationTypes`), the catalog of applications and services (:class:`Catalog`),
  placement (:class:`Placement`, with an injected activation factory), failover
  (:class:`Failover`), and singleton instances (:class:`InstanceManager`,
  :class:`InstanceEvents`), a client of the catalog.

Events flow up through callbacks wired here: an activation tells placement's callback that a
replica changed, and the cluster tells the instances, then failover; a host's notification
reaches the instances the same way; the catalog tells the instances when an application is
being deleted. Nothing below imports anything above it (``AGENT_TIERS`` in
``tests/test_architecture.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from fabrichost.agent._activation import ServicePackageActivation
from fabrichost.agent._app_types import ApplicationTypes
from fabrichost.agent._catalog import Catalog
from fabrichost.agent._election import PrimaryElection
from fabrichost.agent._failover import Failover
from fabrichost.agent._fence import fence_previous_run
from fabrichost.agent._health import HealthInformation
from fabrichost.agent._health_view import HealthView
from fabrichost.agent._image_store import ImageStore
from fabrichost.agent._instance_events import InstanceEvents
from fabrichost.agent._instances import InstanceManager
from fabrichost.agent._persist import Persistence
from fabrichost.agent._placement import Placement
from fabrichost.agent._requests import RequestLedger
from fabrichost.agent._restore import restore_state
from fabrichost.agent._settings import AgentSettings
from fabrichost.agent._state import ClusterState
from fabrichost.agent._tasks import BackgroundTasks
from fabrichost.agent._transitions import NodeTransitions
from fabrichost.agent._upgrade import ApplicationUpgrades
from fabrichost.errors import FabricHostError
from fabrichost.protocol import (
    ReplicaFaulted,
    ReplicaNotification,
    ReportHealth,
    RunCompleted,
    RunStatus,
)

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.agent._model import Replica
    from fabrichost.agent._placement import ActivationFactory

log = logging.getLogger(__name__)

REQUEST_ID_RETENTION: Final = 7 * 86400  # seconds a request id is remembered, as such keys go


class Cluster:
    """A local cluster of ``settings.node_count`` logical nodes, rooted in ``state_dir``.

    ``persist`` is the store to write through (default: ``state.db`` in ``state_dir``);
    ``activation_factory`` makes service package activations (default:
    :class:`ServicePackageActivation`). Call :meth:`restore` before use and :meth:`shutdown`
    at the end: it stops every process and closes the store.
    """

    def __init__(
        self,
        state_dir: Path,
        settings: AgentSettings | None = None,
        *,
        persist: Persistence | None = None,
        activation_factory: ActivationFactory = ServicePackageActivation,
    ) -> None:
        self.state_dir = state_dir
        self.settings = settings = settings or AgentSettings()
        names = [f"_Node_{i}" for i in range(settings.node_count)]
        self.state = state = ClusterState(state_dir, names)
        self.persist = persist = persist or Persistence.open(state_dir)
        self.tasks = tasks = BackgroundTasks()
        election = PrimaryElection(state, persist)
        self.placement = placement = Placement(
            state,
            persist,
            settings,
            election,
            tasks,
            on_replica_change=self._replica_changed,
            on_notification=self._host_notification,
            activation_factory=activation_factory,
        )
        self.failover = Failover(state, persist, placement, election, settings, tasks)
        self.transitions = NodeTransitions(state, self.failover, tasks)
        self.types = ApplicationTypes(state, persist, state_dir / "ImageStore")
        # What clients upload (SF's /ImageStore REST root), apart from the provisioned copies.
        self.image_store = ImageStore(state_dir / "ImageStoreContent")
        ledger = RequestLedger(
            on_claimed=persist.request_claimed,
            on_failed=persist.request_failed,
            find_recorded=persist.request_found,
            on_completed=persist.request_completed,
        )
        self.catalog = catalog = Catalog(
            state,
            persist,
            placement,
            ledger,
            settings,
            on_application_deleting=self._application_deleting,
        )
        self.instances = InstanceManager(
            state, persist, catalog, placement, ledger, tasks, settings
        )
        self.events = InstanceEvents(state, self.instances)
        self.health = HealthView(state, settings)
        self.upgrades = ApplicationUpgrades(
            state, persist, placement, election, settings, tasks, self.health
        )

    # -- callbacks from below -------------------------------------------------------------------

    def _replica_changed(self, replica: Replica) -> None:
        self.state.changes.notify()
        self.instances.replica_changed(replica)
        self.failover.replica_changed(replica)

    def _host_notification(self, activation: ServicePackageActivation, message: object) -> None:
        if not isinstance(message, ReplicaNotification):
            return
        replica = activation.replica(message.partition_id, message.replica_id)
        if replica is None:
            return
        if isinstance(message, RunCompleted):
            self.instances.run_completed(
                replica, message.status is RunStatus.COMPLETED, message.output, message.error
            )
        elif isinstance(message, ReplicaFaulted):
            activation.replica_faulted(replica, message.reason)
        elif isinstance(message, ReportHealth):
            self._replica_reported(replica, message)
        else:
            log.debug("replica %s reports %r", replica.id, message)

    def _replica_reported(self, replica: Replica, message: ReportHealth) -> None:
        """A service's own report lands on its replica, under its service type as SourceId (the
        code that reports); a stale or malformed one is logged, the host is not faulted."""
        ttl = message.time_to_live_ms
        info = HealthInformation(
            replica.service.type_name,
            message.property,
            message.state,
            message.description,
            ttl=None if ttl is None else ttl / 1000,
            remove_when_expired=bool(message.remove_when_expired),
        )
        try:
            self.health.report(replica.health, info)
        except FabricHostError as exc:
            log.warning("replica %s: health report refused: %s", replica.id, exc)

    def _application_deleting(self, name: str) -> None:
        self.instances.application_deleted(name)
        self.upgrades.application_deleted(name)

    # -- lifecycle ------------------------------------------------------------------------------

    async def restore(self) -> None:
        """Load what an earlier run created, fence its processes, and start everything again.

        Order matters: the model is rebuilt from the store first, then the earlier run's
        processes are fenced (``_fence``), and only then is anything started.
        """
        await restore_state(self.state, self.persist)
        self.upgrades.restore()  # one in progress is over: the version in force runs
        unlaunched = self.instances.restore(self.persist.instance_rows())
        forgotten = self.persist.requests_forgotten_before(time.time() - REQUEST_ID_RETENTION)
        if forgotten:
            log.info(
                "forgot %d request id(s) older than %d days",
                forgotten,
                REQUEST_ID_RETENTION // 86400,
            )
        processes = self.persist.process_rows()
        await asyncio.to_thread(
            fence_previous_run, self.state_dir, [p.lock_path for p in processes]
        )
        for row in processes:
            self.persist.process_row_removed(row)
        for service in list(self.state.services()):
            for partition in service.partitions:
                try:
                    await self.placement.activate_replicas(partition.live_replicas())
                    await self.placement.fill_partition(partition)
                except FabricHostError as exc:  # reported; the rest of the cluster still runs
                    log.error("%s partition %s cannot start: %s", service.name, partition.id, exc)
        for instance in unlaunched:
            await self.instances.relaunch(instance)
        if self.state.applications:
            log.info("restored %d application(s) from the store", len(self.state.applications))

    async def shutdown(self) -> None:
        """Stop every process of every node and close the store; returns when all are gone."""
        state = self.state
        state.closing = True  # from now on nothing is activated and nothing fails over
        state.changes.notify()  # whoever waits for a change (an event for a Pending instance)
        self.tasks.cancel_all()
        while any(node.activations for node in state.nodes.values()):
            # Activations made while the previous round stopped are stopped in the next one.
            batch = [a for node in state.nodes.values() for a in node.activations.values()]
            for node in state.nodes.values():
                node.activations.clear()
            await asyncio.gather(*(a.deactivate(self.settings.stop_grace) for a in batch))
        self.persist.close()
