"""Service Fabric's by-id and type queries: application type manifests and service types,
partitions and replicas by id, name lookups, ``ResolvePartition``, deployed service types and
packages by name, and a deployed replica's detail.

Where Service Fabric answers a lookup of an absent entity with ``204 No Content`` (the
``azure-servicefabric`` client accepts 204 for exactly those), so does this module; the others
are SF's ``FABRIC_E_*_NOT_FOUND`` errors.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.responses import Response

from fabrichost.api import _json as J
from fabrichost.api import _paging as P
from fabrichost.api import _query_json as Q
from fabrichost.errors import ApiError, NotFoundError
from fabrichost.wire import PartitionScheme, id_to_name

if TYPE_CHECKING:
    from starlette.requests import Request

    from fabrichost.agent import (
        Cluster,
        ClusterState,
        Partition,
        ProvisionedType,
        Replica,
        Service,
        ServicePackageActivation,
    )

NO_CONTENT = 204

# SF's PartitionKeyType: the scheme a ResolvePartition key is meant for.
_KEY_TYPES = {
    1: PartitionScheme.SINGLETON,
    2: PartitionScheme.UNIFORM_INT64_RANGE,
    3: PartitionScheme.NAMED,
}


def _no_content() -> Response:
    return Response(status_code=NO_CONTENT)


class QueryRoutes:
    """The handlers; ``build_app`` routes them."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.health = cluster.health

    # -- lookups ---------------------------------------------------------------------------------

    def _type(self, request: Request) -> ProvisionedType:
        name = request.path_params["type"]
        version = request.query_params.get("ApplicationTypeVersion")
        if not version:
            raise ApiError("query parameter ApplicationTypeVersion is required")
        ptype = self.state.application_types.get((name, version))
        if ptype is None:
            raise NotFoundError(
                f"application type {name} version {version} is not provisioned",
                code="FABRIC_E_APPLICATION_TYPE_NOT_FOUND",
            )
        return ptype

    def _service(self, request: Request) -> Service:
        return self.state.service(id_to_name(request.path_params["service"]))

    def _find_partition(self, partition_id: str) -> Partition | None:
        try:
            return self.state.partition(partition_id)
        except NotFoundError:
            return None

    # -- application types -----------------------------------------------------------------------

    async def application_manifest(self, request: Request) -> Any:
        ptype = self._type(request)
        return {"Manifest": await asyncio.to_thread(ptype.manifest_file.read_text, "utf-8")}

    async def service_manifest(self, request: Request) -> Any:
        ptype = self._type(request)
        name = request.query_params.get("ServiceManifestName")
        if not name:
            raise ApiError("query parameter ServiceManifestName is required")
        path = ptype.service_manifest_file(name)
        return {"Manifest": await asyncio.to_thread(path.read_text, "utf-8")}

    async def service_types(self, request: Request) -> Any:
        return [Q.service_type_info(t) for t in self._type(request).service_types()]

    async def service_type(self, request: Request) -> Any:
        wanted = request.path_params["service_type"]
        for record in self._type(request).service_types():
            if record.name == wanted:
                return Q.service_type_info(record)
        return _no_content()

    # -- partitions, replicas and names ----------------------------------------------------------

    async def partition(self, request: Request) -> Any:
        partition = self._find_partition(request.path_params["partition"])
        return _no_content() if partition is None else J.partition_info(partition, self.health)

    async def service_partition(self, request: Request) -> Any:
        service = self._service(request)
        partition = self._find_partition(request.path_params["partition"])
        if partition is None or partition.service is not service:
            return _no_content()
        return J.partition_info(partition, self.health)

    async def replica(self, request: Request) -> Any:
        partition = self.state.partition(request.path_params["partition"])
        wanted = request.path_params["replica"]
        for replica in partition.live_replicas():
            if str(replica.id) == wanted:
                return J.replica_info(replica, self.health)
        return _no_content()

    async def service_name(self, request: Request) -> Any:
        return Q.name_info(self.state.partition(request.path_params["partition"]).service.name)

    async def application_name(self, request: Request) -> Any:
        return Q.name_info(self._service(request).application.name)

    async def resolve(self, request: Request) -> Any:
        service = self._service(request)
        partition = _partition_for_key(service, request)
        return Q.resolved_partition(partition, self.state.serving(partition))

    # -- deployed on a node ----------------------------------------------------------------------

    def _activations(self, request: Request) -> list[ServicePackageActivation]:
        node = self.state.node(request.path_params["node"])
        app = self.state.application(id_to_name(request.path_params["app"]))
        return self.state.activations_on(node, app.name)

    async def deployed_service_types(self, request: Request) -> Any:
        package = P.equals_filter(request.query_params, "ServiceManifestName")
        result = []
        for activation in self._activations(request):
            if not package(activation.package.name):
                continue
            for spec in activation.package.service_types:
                host = activation.type_host(spec.name)
                result.append(
                    Q.deployed_service_type_info(
                        activation, spec.name, host.spec.name if host else None
                    )
                )
        return result

    async def deployed_package(self, request: Request) -> Any:
        wanted = request.path_params["package"]
        found = [
            J.deployed_service_package_info(a)
            for a in self._activations(request)
            if a.package.name == wanted
        ]
        return found or _no_content()

    async def replica_detail(self, request: Request) -> Any:
        replica, activation = deployed_replica(self.state, request)
        return Q.deployed_replica_detail(replica, activation, replica.service)


def deployed_replica(
    state: ClusterState, request: Request
) -> tuple[Replica, ServicePackageActivation]:
    """The replica of the path's partition and id, placed on the path's node and in an
    activation there; SF's FABRIC_E_REPLICA_DOES_NOT_EXIST otherwise."""
    node = state.node(request.path_params["node"])
    partition = state.partition(request.path_params["partition"])
    wanted = request.path_params["replica"]
    for replica in partition.live_replicas():
        if str(replica.id) == wanted and replica.node_name == node.name:
            activation = state.activation_of(replica)
            if activation is not None:
                return replica, activation
    raise NotFoundError(
        f"replica {wanted} of partition {partition.id} is not deployed on {node.name}",
        code="FABRIC_E_REPLICA_DOES_NOT_EXIST",
    )


def _partition_for_key(service: Service, request: Request) -> Partition:
    """The partition of ``service`` that ``PartitionKeyType``/``PartitionKeyValue`` name
    (no key type: the singleton partition); SF's FABRIC_E_INVALID_PARTITION_KEY otherwise."""
    q = request.query_params
    key_type = P.int_param(q, "PartitionKeyType", 1)
    scheme = _KEY_TYPES.get(key_type)
    if scheme is None:
        raise ApiError(
            f"PartitionKeyType must be 1 (None), 2 (Int64Range) or 3 (Named), not {key_type}"
        )
    value = q.get("PartitionKeyValue")
    schemes = {p.scheme for p in service.partitions}
    if scheme not in schemes:
        raise ApiError(
            f"service {service.name} is {next(iter(schemes)).value}-partitioned; "
            f"PartitionKeyType {key_type} does not fit it",
            code="FABRIC_E_INVALID_PARTITION_KEY",
        )
    for partition in service.partitions:
        if scheme is PartitionScheme.SINGLETON or _matches(partition, value):
            return partition
    raise ApiError(
        f"service {service.name} has no partition for key {value!r}",
        code="FABRIC_E_INVALID_PARTITION_KEY",
    )


def _matches(partition: Partition, value: str | None) -> bool:
    if partition.scheme is PartitionScheme.NAMED:
        return value == partition.name
    try:
        key = int(value or "")
    except ValueError:
        return False
    assert partition.low_key is not None
    assert partition.high_key is not None
    return partition.low_key <= key <= partition.high_key
