"""Removing an instance's service and knowing when its processes are gone.

A delete unregisters an activation before its processes are stopped, so whoever must wait for
the processes (to release a singleton ID) notes the service's activations *before* the delete
begins: a :class:`Watch`. The watch is over once the service is deleted and every activation
it noted is deactivated.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from fabrichost.errors import NotFoundError

if TYPE_CHECKING:
    from fabrichost.agent._activation import ServicePackageActivation
    from fabrichost.agent._catalog import Catalog
    from fabrichost.agent._model import Service
    from fabrichost.agent._placement import Placement
    from fabrichost.agent._settings import AgentSettings
    from fabrichost.agent._state import ClusterState

log = logging.getLogger(__name__)


class Watch:
    """A service, and the activations it had when the watch began."""

    def __init__(self, state: ClusterState, service: Service) -> None:
        self.service = service
        self._state = state
        self._seen: dict[int, ServicePackageActivation] = {}
        self.look()

    def look(self) -> list[ServicePackageActivation]:
        """Note the service's activations now; every activation noted so far."""
        for replica in self.service.replicas():
            activation = self._state.activation_of(replica)
            if activation is not None:
                self._seen[id(activation)] = activation
        return list(self._seen.values())

    async def gone(self) -> None:
        """Return once the service is deleted and every activation noted is deactivated."""
        state, service = self._state, self.service
        while True:
            changed = state.changes.next()  # taken before the check: no wake-up is missed
            activations = self.look()
            app = service.application
            deleted = (
                state.applications.get(app.name) is not app
                or app.services.get(service.name) is not service
            )
            if deleted and all(a.status == "Deactivated" for a in activations):
                return
            await changed.wait()


class ServiceRemoval:
    """Deletes services on behalf of their owner and waits until their processes are gone."""

    def __init__(
        self,
        state: ClusterState,
        catalog: Catalog,
        placement: Placement,
        settings: AgentSettings,
    ) -> None:
        self._state = state
        self._catalog = catalog
        self._placement = placement
        self._settings = settings

    def watch(self, service_name: str) -> Watch | None:
        """A watch of the service named ``service_name`` (None: there is none)."""
        service = self._state.find_service(service_name)
        return Watch(self._state, service) if service is not None else None

    async def remove(self, service_name: str, why: str) -> None:
        """Delete the service as its owner; return once its processes are gone.

        If the delete fails, its exclusive activations are stopped all the same (``why`` says
        whose service it is, for the log).
        """
        watch = self.watch(service_name)
        try:
            with contextlib.suppress(NotFoundError):
                await self._catalog.delete_service(service_name, instance_owner=True)
        except Exception:
            log.exception("deleting the service of %s failed", why)
            if watch is not None:
                await self._stop_exclusive(watch)
        if watch is not None:
            # Normally gone already; if someone else is deleting it, that delete may not be
            # done: the caller goes on only once its processes are gone.
            await watch.gone()

    async def _stop_exclusive(self, watch: Watch) -> None:
        """After a failed delete: stop the service's exclusive activations all the same.

        Each exists for one replica of this service alone, so nothing else loses its process;
        without this its owner would wait for ever for them to be deactivated.
        """
        for activation in watch.look():
            if activation.activation_id and activation.status != "Deactivated":
                node = self._state.nodes.get(activation.identity.node_name)
                if node is None:
                    continue
                try:
                    await self._placement.deactivate(
                        node, activation, grace=self._settings.stop_grace
                    )
                except Exception:
                    log.exception("stopping an activation of %s failed", watch.service.name)
