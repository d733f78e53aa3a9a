"""Finding a service's endpoints: the part of :class:`FabricClient` that resolves names.

Usage::

    with FabricClient.for_state_dir(state_dir) as client:
        web = client.endpoints("fabric:/App1/Web")["Web"]       # one partition: one call
        for partition in client.resolve_service("fabric:/App1/Counter"):
            primary = partition["Endpoints"][0]                   # Primary first (stateful)

What a replica publishes is its address: Service Fabric's endpoints JSON
(``{"Endpoints": {"Web": "http://127.0.0.1:30017/"}}``) for a guest executable, or the string a
runtime service's ``open()`` returned. :func:`fabrichost.wire.endpoints_of` reads either into
a map of endpoint name to address (a plain string is named ``""``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fabrichost.errors import ApiError, UnavailableError
from fabrichost.wire import endpoints_of

if TYPE_CHECKING:
    from collections.abc import Mapping

#: ``ResolvedServiceEndpoint.Kind`` (SF's ``ServiceEndpointRole``), in the order listed.
_KIND_ORDER: Final = ("StatefulPrimary", "Stateless", "StatefulSecondary")


def _endpoint_kind(replica: Mapping[str, Any]) -> str:
    if replica.get("ServiceKind") == "Stateless":
        return "Stateless"
    return "StatefulPrimary" if replica.get("ReplicaRole") == "Primary" else "StatefulSecondary"


class ResolveMixin:
    """Name resolution calls of :class:`fabrichost.client.FabricClient` (mixed into it)."""

    if TYPE_CHECKING:

        def partitions(self, service_name: str) -> list[Any]: ...

        def replicas(self, partition_id: str) -> list[Any]: ...

    def resolve_service(self, name: str) -> list[dict[str, Any]]:
        """Where a service's replicas listen, per partition, as Service Fabric resolves them.

        One entry per partition, in SF's ``ResolvedServicePartition`` shape::

            {"Name": "fabric:/App1/Web",
             "PartitionInformation": {"ServicePartitionKind": "Singleton", "Id": "..."},
             "Endpoints": [{"Kind": "Stateless",
                            "Address": "{\\"Endpoints\\": {\\"Web\\": \\"http://...\\"}}"}]}

        Only Ready replicas that published an address are listed; the Primary comes first
        (``Kind`` ``StatefulPrimary``, then ``StatefulSecondary``; ``Stateless`` for instances).
        Read an ``Address`` with :func:`fabrichost.wire.endpoints_of`. Raises
        :class:`~fabrichost.errors.NotFoundError` for an unknown service.
        """
        resolved = []
        for partition in self.partitions(name):
            info = partition["PartitionInformation"]
            endpoints = [
                {"Kind": _endpoint_kind(r), "Address": r["Address"]}
                for r in self.replicas(info["Id"])
                if r.get("ReplicaStatus") == "Ready" and r.get("Address")
            ]
            endpoints.sort(key=lambda e: _KIND_ORDER.index(e["Kind"]))
            resolved.append({"Name": name, "PartitionInformation": info, "Endpoints": endpoints})
        return resolved

    def endpoints(self, name: str) -> dict[str, str]:
        """The endpoints of a one-partition service: endpoint name → address.

        The service's Primary's (stateful) or its first Ready instance's (stateless) published
        endpoints, e.g. ``{"Web": "http://127.0.0.1:30017/"}`` for a guest executable, or
        ``{"": "tcp://127.0.0.1:31001"}`` for a runtime service whose ``open()`` returned that.
        Use :meth:`resolve_service` for a partitioned service (it raises
        :class:`~fabrichost.errors.ApiError` here) or to see every replica. Raises
        :class:`~fabrichost.errors.UnavailableError` when no replica has published an address
        yet (wait with ``create_service(..., wait=True)`` first) and
        :class:`~fabrichost.errors.NotFoundError` for an unknown service.
        """
        partitions = self.resolve_service(name)
        if len(partitions) != 1:
            raise ApiError(
                f"service {name} has {len(partitions)} partitions: "
                "resolve_service() lists each partition's endpoints"
            )
        found = partitions[0]["Endpoints"]
        if not found:
            raise UnavailableError(f"service {name} has no Ready replica with an address yet")
        return endpoints_of(found[0]["Address"])
