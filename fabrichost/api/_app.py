"""The agent's HTTP API: Service Fabric's REST paths and JSON, served on loopback.

Routes are thin: parse, call the cluster's parts, render with ``_json``. Errors become SF's
``{"Error": {"Code": ..., "Message": ...}}`` with the status the wire's table gives the error's
class (``fabrichost.wire.error_answer``). fabrichost's own additions live under
``/$/fabrichost/``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fabrichost.api import _json as J
from fabrichost.api import _paging as P
from fabrichost.api._access import AccessCheck, AccessPolicy, OriginCheck, error_response
from fabrichost.api._body import read_json_object
from fabrichost.api._health import HealthRoutes
from fabrichost.api._image_store import ImageStoreRoutes
from fabrichost.api._instances import STATUS_ROOT, InstanceRoutes
from fabrichost.api._nodes import NodeFaultRoutes
from fabrichost.api._queries import QueryRoutes
from fabrichost.api._upgrades import UpgradeRoutes
from fabrichost.api._view import node_view
from fabrichost.errors import ApiError, FabricHostError, NotFoundError, NotSupportedError
from fabrichost.wire import (
    CREATE_HEADER,
    PROVISION_HEADER,
    SERVICE_FABRIC_VERSION,
    IfExists,
    error_answer,
    id_to_name,
    parse_service_description,
    service_description_json,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from starlette.requests import Request

    from fabrichost.agent import (
        Application,
        Cluster,
        Node,
        ProvisionedType,
        ServicePackageActivation,
    )

LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def _parameter_list(value: Any) -> dict[str, str]:
    """ApplicationDescription.ParameterList: a list of {"Key": str, "Value": str}."""
    if value is None:
        return {}
    items = value if isinstance(value, list) else None
    if items is None or not all(
        isinstance(p, dict) and isinstance(p.get("Key"), str) and isinstance(p.get("Value"), str)
        for p in items
    ):
        raise ApiError('ParameterList must be a list of {"Key": "...", "Value": "..."} objects')
    return {p["Key"]: p["Value"] for p in items}


def if_exists_of(request: Request) -> IfExists:
    """The create policy: query ``IfExists`` (or ``ifExists``), default ``fail``."""
    value = request.query_params.get("IfExists", request.query_params.get("ifExists", "fail"))
    try:
        return IfExists(value)
    except ValueError:
        allowed = ", ".join(m.value for m in IfExists)
        raise ApiError(f"IfExists must be one of {allowed}, not {value!r}") from None


def request_id_of(request: Request) -> str | None:
    """The request id of an idempotent create: header ``Idempotency-Key``."""
    value = request.headers.get("Idempotency-Key")
    if value is not None and not 0 < len(value) <= 256:
        raise ApiError("Idempotency-Key must be 1 to 256 characters")
    return value


def _float(request: Request, name: str, default: float) -> float:
    value = request.query_params.get(name)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise ApiError(f"query parameter {name} must be a number, not {value!r}") from None


def guarded(
    handler: Callable[[Request], Awaitable[Any]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except FabricHostError as exc:
            return error_response(*error_answer(exc))
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    return endpoint


class _Api:
    """The route handlers of one agent: parse, call the cluster's parts, render."""

    def __init__(
        self,
        cluster: Cluster,
        status: Callable[[], dict[str, Any]],
        shutdown: Callable[[], None],
    ) -> None:
        self.cluster = cluster
        self.state = cluster.state
        self.health = cluster.health
        self.status = status
        self.shutdown = shutdown

    def node_of(self, request: Request) -> Node:
        return self.state.node(request.path_params["node"])

    def app_of(self, request: Request) -> Application:
        return self.state.application(id_to_name(request.path_params["app"]))

    def activations(self, request: Request) -> list[ServicePackageActivation]:
        return self.state.activations_on(self.node_of(request), self.app_of(request).name)

    # -- cluster, nodes -------------------------------------------------------------------------
    async def get_root(self, request: Request) -> Any:
        # sfctl's `cluster select` checks that GET / succeeds before it saves the endpoint
        # (Service Fabric answers with its Explorer); say what serves here instead.
        return {"Name": "fabrichost", "Version": self.status()["Version"]}

    async def get_cluster_version(self, request: Request) -> Any:
        return {"Version": SERVICE_FABRIC_VERSION}

    async def get_status(self, request: Request) -> Any:
        return self.status()

    async def post_shutdown(self, request: Request) -> Any:
        self.shutdown()
        return Response(status_code=202)

    async def get_view(self, request: Request) -> Any:
        node_name = request.query_params.get("NodeName")
        return node_view(self.state, node_name)

    async def get_nodes(self, request: Request) -> Any:
        q = request.query_params
        wanted = P.node_status_filter(q)
        nodes = [n for n in self.state.nodes.values() if wanted(J.node_status(n))]
        return P.paged(nodes, J.node_key, lambda n: J.node_info(n, self.health), P.page_request(q))

    async def get_node(self, request: Request) -> Any:
        return J.node_info(self.node_of(request), self.health)

    async def stop_node(self, request: Request) -> Any:
        await self.cluster.failover.stop_node(request.path_params["node"])
        return {}

    async def start_node(self, request: Request) -> Any:
        await self.cluster.failover.start_node(request.path_params["node"])
        return {}

    # -- application types and applications -----------------------------------------------------
    async def get_app_types(self, request: Request) -> Any:
        q = request.query_params
        kinds = P.definition_kind_filter(q, "ApplicationTypeDefinitionKindFilter")
        types = self.state.application_types.values() if kinds else ()
        return _paged_types(types, request)

    async def get_app_type(self, request: Request) -> Any:
        version = P.equals_filter(request.query_params, "ApplicationTypeVersion")
        types = [
            t
            for t in self.state.application_types.values()
            if t.name == request.path_params["type"] and version(t.version)
        ]
        return _paged_types(types, request)

    def build_path(self, body: dict[str, Any]) -> tuple[Path, bool]:
        """Where to provision from, and whether it is in the image store: SF's
        ``ApplicationTypeBuildPath``, relative to the image store (what ``sfctl application
        upload`` put there); an absolute path is a folder of this machine (fabrichost's own
        client and CLI)."""
        kind = body.get("Kind", "ImageStorePath")
        if kind == "ExternalStore":
            raise NotSupportedError(
                "provisioning from an external store (ApplicationPackageDownloadUri) is not "
                "built in fabrichost; upload the package to the image store and provision "
                "it by its ApplicationTypeBuildPath"
            )
        if kind != "ImageStorePath":
            raise ApiError(f"Kind must be ImageStorePath or ExternalStore, not {kind!r}")
        path = body.get("ApplicationTypeBuildPath")
        if not isinstance(path, str) or not path:
            raise ApiError(
                "ApplicationTypeBuildPath (the package's folder in the image store) is required"
            )
        if Path(path).is_absolute():
            return Path(path), False
        return self.cluster.image_store.package_folder(path), True

    async def provision(self, request: Request) -> Any:
        body = await read_json_object(request)
        package, in_store = self.build_path(body)
        reuse = body.get("ReuseExisting") is True
        before = dict(self.state.application_types)
        with self.cluster.image_store.in_use(package) if in_store else contextlib.nullcontext():
            ptype = await self.cluster.types.provision(package, reuse_existing=reuse)
        # Says whether this call registered the type, so that a deploy whose create then
        # fails can take it back (fabrichost's own header; SF's answer has no such field).
        reused = before.get((ptype.name, ptype.version)) is ptype
        return JSONResponse(
            J.application_type_info(ptype),
            headers={PROVISION_HEADER: "reused" if reused else "created"},
        )

    async def unprovision(self, request: Request) -> Any:
        version = (await read_json_object(request)).get("ApplicationTypeVersion")
        if not isinstance(version, str):
            raise ApiError("ApplicationTypeVersion is required")
        await self.cluster.types.unprovision(request.path_params["type"], version)
        return {}

    async def get_apps(self, request: Request) -> Any:
        q = request.query_params
        type_name = P.equals_filter(q, "ApplicationTypeName")
        kinds = P.definition_kind_filter(q, "ApplicationDefinitionKindFilter")
        bare = P.bool_param(q, "ExcludeApplicationParameters")
        apps = [a for a in self.state.applications.values() if kinds and type_name(a.type_name)]
        return P.paged(
            apps,
            lambda a: a.name,
            lambda a: J.application_info(a, self.health, parameters=not bare),
            P.page_request(q),
        )

    async def get_app(self, request: Request) -> Any:
        bare = P.bool_param(request.query_params, "ExcludeApplicationParameters")
        return J.application_info(self.app_of(request), self.health, parameters=not bare)

    async def create_app(self, request: Request) -> Any:
        body = await read_json_object(request)
        params = _parameter_list(body.get("ParameterList"))
        for field in ("Name", "TypeName", "TypeVersion"):
            if not isinstance(body.get(field), str):
                raise ApiError(f"ApplicationDescription.{field} is required")
        outcome = await self.cluster.catalog.create_application_with_policy(
            body["Name"],
            body["TypeName"],
            body["TypeVersion"],
            params,
            if_exists=if_exists_of(request),
            request_id=request_id_of(request),
        )
        # Service Fabric answers 201, and its client accepts nothing else; whether this call
        # created the application is fabrichost's header.
        return JSONResponse(
            J.application_info(outcome.value, self.health),
            status_code=201,
            headers={CREATE_HEADER: "created" if outcome.created else "existing"},
        )

    async def delete_app(self, request: Request) -> Any:
        await self.cluster.catalog.delete_application_locked(id_to_name(request.path_params["app"]))
        return {}

    # -- services -------------------------------------------------------------------------------
    async def get_services(self, request: Request) -> Any:
        q = request.query_params
        type_name = P.equals_filter(q, "ServiceTypeName")
        services = [s for s in self.app_of(request).services.values() if type_name(s.type_name)]
        return P.paged(
            services, lambda s: s.name, lambda s: J.service_info(s, self.health), P.page_request(q)
        )

    async def get_service(self, request: Request) -> Any:
        service = self.state.service(id_to_name(request.path_params["service"]))
        if service.application is not self.app_of(request):
            raise NotFoundError(
                f"service {service.name} is not in this application",
                code="FABRIC_E_SERVICE_DOES_NOT_EXIST",
            )
        return J.service_info(service, self.health)

    async def create_service(self, request: Request) -> Any:
        description = parse_service_description(await read_json_object(request))
        app = self.app_of(request)
        outcome = await self.cluster.catalog.create_service_with_policy(
            app.name,
            description,
            if_exists=if_exists_of(request),
            request_id=request_id_of(request),
        )
        service = outcome.value
        if request.query_params.get("WaitForReady", "").lower() == "true":
            await self.cluster.catalog.wait_service_ready(
                service.name, _float(request, "Timeout", 60.0)
            )
        # Service Fabric answers 202 (its client accepts nothing else); fabrichost's header
        # says whether this call created the service.
        return JSONResponse(
            J.service_info(service, self.health),
            status_code=202,
            headers={CREATE_HEADER: "created" if outcome.created else "existing"},
        )

    async def get_service_description(self, request: Request) -> Any:
        service = self.state.service(id_to_name(request.path_params["service"]))
        if service.description is None:
            raise NotFoundError(
                f"service {service.name} has no description",
                code="FABRIC_E_SERVICE_DOES_NOT_EXIST",
            )
        return {
            "ApplicationName": service.application.name,
            **service_description_json(service.description),
        }

    async def wait_service(self, request: Request) -> Any:
        name = id_to_name(request.path_params["service"])
        await self.cluster.catalog.wait_service_ready(name, _float(request, "Timeout", 60.0))
        return J.service_info(self.state.service(name), self.health)

    async def delete_service(self, request: Request) -> Any:
        await self.cluster.catalog.delete_service_locked(id_to_name(request.path_params["service"]))
        return {}

    async def get_partitions(self, request: Request) -> Any:
        service = self.state.service(id_to_name(request.path_params["service"]))
        order = {id(p): P.ordinal_key(i) for i, p in enumerate(service.partitions)}
        return P.paged(
            service.partitions,
            lambda p: order[id(p)],
            lambda p: J.partition_info(p, self.health),
            P.page_request(request.query_params),
        )

    async def get_partition_replicas(self, request: Request) -> Any:
        partition = self.state.partition(request.path_params["partition"])
        return P.paged(
            partition.live_replicas(),
            lambda r: P.ordinal_key(r.id),
            lambda r: J.replica_info(r, self.health),
            P.page_request(request.query_params),
        )

    # -- deployed entities on a node ------------------------------------------------------------
    async def deployed_apps(self, request: Request) -> Any:
        node = self.node_of(request)
        names = {key[0] for key in node.activations}
        apps = [self.state.applications[n] for n in names if n in self.state.applications]
        return P.paged(
            apps,
            lambda a: a.name,
            lambda a: J.deployed_application_info(self.health, node, a),
            P.page_request(request.query_params),
        )

    async def deployed_app(self, request: Request) -> Any:
        return J.deployed_application_info(self.health, self.node_of(request), self.app_of(request))

    async def deployed_packages(self, request: Request) -> Any:
        return [J.deployed_service_package_info(a) for a in self.activations(request)]

    async def deployed_code_packages(self, request: Request) -> Any:
        q = request.query_params
        package = P.equals_filter(q, "ServiceManifestName")
        code_package = P.equals_filter(q, "CodePackageName")
        return [
            J.deployed_code_package_info(a, h)
            for a in self.activations(request)
            if package(a.package.name)
            for h in a.hosts.values()
            if code_package(h.spec.name)
        ]

    async def deployed_replicas(self, request: Request) -> Any:
        q = request.query_params
        package = P.equals_filter(q, "ServiceManifestName")
        partition = P.equals_filter(q, "PartitionId")
        return [
            J.deployed_replica_info(r, a)
            for a in self.activations(request)
            if package(a.package.name)
            for r in a.replicas
            if partition(r.partition.id)
        ]

    async def restart_code_package(self, request: Request) -> Any:
        body = await read_json_object(request)
        wanted_id = body.get("ServicePackageActivationId", "") or ""
        activations = self.activations(request)
        for act in activations:
            if (
                act.package.name == body.get("ServiceManifestName")
                and act.activation_id == wanted_id
            ):
                host = act.hosts.get(body.get("CodePackageName", ""))
                if host is not None:
                    await host.supervisor.restart()
                    return {}
        raise NotFoundError(
            _no_code_package(
                self.node_of(request).name, self.app_of(request).name, body, activations
            ),
            code="FABRIC_E_CODE_PACKAGE_NOT_FOUND",
        )


def _paged_types(types: Iterable[ProvisionedType], request: Request) -> Any:
    q = request.query_params
    bare = P.bool_param(q, "ExcludeApplicationParameters")
    return P.paged(
        types,
        lambda t: f"{t.name}\0{t.version}",
        lambda t: J.application_type_info(t, parameters=not bare),
        P.page_request(q),
    )


def _no_code_package(
    node: str, app: str, body: dict[str, Any], activations: list[ServicePackageActivation]
) -> str:
    """What a restart of a code package that is not deployed tells its user: what it looked
    for, on which node, and what is there instead (so a typo shows)."""
    here = sorted(
        f"{a.package.name}/{name}" + (f" (activation {a.activation_id})" if a.activation_id else "")
        for a in activations
        for name in a.hosts
    )
    wanted = f"{body.get('ServiceManifestName')}/{body.get('CodePackageName')}"
    if activation_id := body.get("ServicePackageActivationId"):
        wanted += f" (activation {activation_id})"
    return (
        f"{app} has no deployed code package {wanted} on {node}; "
        f"its code packages there: {', '.join(here) or '(none)'}"
    )


async def _unknown_route(request: Request, exc: Exception) -> Response:
    """A path or method not served: Service Fabric's error JSON, so a client can say why."""
    status = exc.status_code if isinstance(exc, HTTPException) else 404
    what = f"{request.method} {request.url.path}"
    if status == 405:
        headers = (exc.headers if isinstance(exc, HTTPException) else None) or {}
        allowed = headers.get("Allow", "")
        response = error_response(
            405,
            "FABRIC_E_NOT_SUPPORTED",
            f"{what}: the method is not allowed on this path (allowed: {allowed or 'none'})",
        )
        if allowed:
            response.headers["Allow"] = allowed
        return response
    return error_response(
        404,
        "FABRIC_E_NOT_SUPPORTED",
        f"{what}: fabrichost does not serve this path (not a Service Fabric REST path, or "
        "not built; see the README's 'Deploy with sfctl')",
    )


def build_app(
    cluster: Cluster,
    *,
    status: Callable[[], dict[str, Any]],
    shutdown: Callable[[], None],
    access: AccessPolicy,
) -> Starlette:
    """The ASGI application serving ``cluster`` to whom ``access`` lets in."""
    api = _Api(cluster, status, shutdown)
    store = ImageStoreRoutes(cluster.image_store)
    inst = InstanceRoutes(cluster, if_exists_of, request_id_of)
    status_route = STATUS_ROOT + "/{instance}"
    r = Route
    nodes = "/Nodes/{node}/$/GetApplications/{app}"
    types = "/ApplicationTypes/{type}"
    replica = "/Nodes/{node}/$/GetPartitions/{partition}/$/GetReplicas/{replica}"
    q = QueryRoutes(cluster)
    faults = NodeFaultRoutes(cluster)
    transition = "/Faults/Nodes/{node}/$/StartTransition"
    routes = [
        r("/", guarded(api.get_root)),
        r("/$/GetClusterVersion", guarded(api.get_cluster_version)),
        r("/ImageStore", guarded(store.root)),
        r(
            "/ImageStore/{path:path}",
            guarded(store.content),
            methods=["GET", "PUT", "DELETE", "POST"],
        ),
        r("/$/fabrichost/Status", guarded(api.get_status)),
        r("/$/fabrichost/Shutdown", guarded(api.post_shutdown), methods=["POST"]),
        r("/$/fabrichost/View", guarded(api.get_view)),
        r("/$/fabrichost/Services/{service}/$/WaitReady", guarded(api.wait_service)),
        r("/Nodes", guarded(api.get_nodes)),
        r("/Nodes/{node}", guarded(api.get_node)),
        r("/Nodes/{node}/$/Stop", guarded(api.stop_node), methods=["POST"]),
        r("/Nodes/{node}/$/Start", guarded(api.start_node), methods=["POST"]),
        r("/ApplicationTypes", guarded(api.get_app_types)),
        r("/ApplicationTypes/$/Provision", guarded(api.provision), methods=["POST"]),
        r("/ApplicationTypes/{type}/$/Unprovision", guarded(api.unprovision), methods=["POST"]),
        r("/ApplicationTypes/{type}", guarded(api.get_app_type)),
        r(types + "/$/GetApplicationManifest", guarded(q.application_manifest)),
        r(types + "/$/GetServiceManifest", guarded(q.service_manifest)),
        r(types + "/$/GetServiceTypes", guarded(q.service_types)),
        r(types + "/$/GetServiceTypes/{service_type}", guarded(q.service_type)),
        r("/Applications", guarded(api.get_apps)),
        r("/Applications/$/Create", guarded(api.create_app), methods=["POST"]),
        r("/Applications/{app}", guarded(api.get_app)),
        r("/Applications/{app}/$/Delete", guarded(api.delete_app), methods=["POST"]),
        r("/Applications/{app}/$/GetServices", guarded(api.get_services)),
        r(
            "/Applications/{app}/$/GetServices/$/Create",
            guarded(api.create_service),
            methods=["POST"],
        ),
        r("/Applications/{app}/$/GetServices/{service}", guarded(api.get_service)),
        r("/Services/{service}/$/Delete", guarded(api.delete_service), methods=["POST"]),
        r("/Services/{service}/$/GetDescription", guarded(api.get_service_description)),
        r("/Services/{service}/$/GetPartitions", guarded(api.get_partitions)),
        r("/Services/{service}/$/GetPartitions/{partition}", guarded(q.service_partition)),
        r("/Services/{service}/$/GetApplicationName", guarded(q.application_name)),
        r("/Services/{service}/$/ResolvePartition", guarded(q.resolve)),
        r("/Partitions/{partition}", guarded(q.partition)),
        r("/Partitions/{partition}/$/GetServiceName", guarded(q.service_name)),
        r("/Partitions/{partition}/$/GetReplicas", guarded(api.get_partition_replicas)),
        r("/Partitions/{partition}/$/GetReplicas/{replica}", guarded(q.replica)),
        r("/Nodes/{node}/$/GetApplications", guarded(api.deployed_apps)),
        r(nodes, guarded(api.deployed_app)),
        r(nodes + "/$/GetServicePackages", guarded(api.deployed_packages)),
        r(nodes + "/$/GetCodePackages", guarded(api.deployed_code_packages)),
        r(
            nodes + "/$/GetCodePackages/$/Restart",
            guarded(api.restart_code_package),
            methods=["POST"],
        ),
        r(nodes + "/$/GetReplicas", guarded(api.deployed_replicas)),
        r(nodes + "/$/GetServiceTypes", guarded(q.deployed_service_types)),
        r(nodes + "/$/GetServicePackages/{package}", guarded(q.deployed_package)),
        r(replica + "/$/GetDetail", guarded(q.replica_detail)),
        r(replica + "/$/Restart", guarded(faults.restart_replica), methods=["POST"]),
        # The client's path ends with a slash; sfctl's requests go there.
        r(transition, guarded(faults.start_transition), methods=["POST"]),
        r(transition + "/", guarded(faults.start_transition), methods=["POST"]),
        r("/Faults/Nodes/{node}/$/GetTransitionProgress", guarded(faults.transition_progress)),
        r("/orchestrators/{function}", guarded(inst.start), methods=["POST"]),
        r("/orchestrators/{function}/{instance}", guarded(inst.start), methods=["POST"]),
        r(STATUS_ROOT, guarded(inst.list)),
        r(status_route, guarded(inst.status)),
        r(status_route, guarded(inst.purge), methods=["DELETE"]),
        r(status_route + "/terminate", guarded(inst.terminate), methods=["POST"]),
        r(status_route + "/raiseEvent/{event}", guarded(inst.raise_event), methods=["POST"]),
        *HealthRoutes(cluster).routes(guarded),
        *UpgradeRoutes(cluster).routes(guarded),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={404: _unknown_route, 405: _unknown_route},
        middleware=[
            Middleware(AccessCheck, policy=access),
            Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS),
            Middleware(OriginCheck),
        ],
    )
