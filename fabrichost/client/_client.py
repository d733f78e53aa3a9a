"""A typed client of the agent's HTTP API; the CLI and the tests use it.

It imports only the wire vocabulary and the standard library: nothing of the agent, so a test or
a script that only talks to an agent stays small and quick to start.

Usage::

    client = FabricClient.for_state_dir(state_dir)   # or FabricClient("http://127.0.0.1:19080")
    client.deploy("manifests/MyApp", "fabric:/App1")
    client.create_service("fabric:/App1", ServiceDescription(...), wait=True)
    client.deployed_replicas("_Node_0", "fabric:/App1")
    client.endpoints("fabric:/App1/Web")             # {"Web": "http://127.0.0.1:30017/"}
    client.resolve_service("fabric:/App1/Counter")   # per partition, Primary first

A replica's address (``Address`` in ``replicas()`` and ``deployed_replicas()``) is what Service
Fabric publishes: its endpoints JSON ``{"Endpoints": {name: address}}`` for a guest executable,
or the string a runtime service's ``open()`` returned; ``fabrichost.wire.endpoints_of`` reads
either. :meth:`endpoints` answers a one-partition service in one call, :meth:`resolve_service`
lists every partition (SF's ``ResolvedServicePartition`` shape).

Errors come back as the same exceptions the agent raised
(:func:`fabrichost.wire.error_from_answer`): :class:`NotFoundError` (404),
:class:`ConflictError` (409, the name is taken), and so on, each carrying the answer's
``status``. Every call has a deadline (``timeout``, default 60 s, plus the wait time of calls
that wait). Requests go over one kept-alive HTTP/1.1 connection with the standard library
(``_plain_http``: importing httpx would cost more than a CLI query). ``transport`` is an httpx
transport to send through instead (``httpx.MockTransport`` in tests, as httpx itself is tested);
httpx is imported only then. ``token`` is the agent's token, sent as ``Authorization: Bearer``;
``for_state_dir`` reads it from the state directory, so the agent serves its user's client even
where the kernel cannot tell who connects (docs/security.md).
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fabrichost.client._health import HealthMixin
from fabrichost.client._instances import InstancesMixin
from fabrichost.client._plain_http import PlainHttp
from fabrichost.client._resolve import ResolveMixin
from fabrichost.client._upgrade import UpgradeMixin
from fabrichost.errors import ApiError, FabricHostError
from fabrichost.wire import (
    CREATE_HEADER,
    PROVISION_HEADER,
    AgentRecord,
    error_from_answer,
    name_to_id,
    read_token,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import httpx

    from fabrichost.client._plain_http import PlainResponse
    from fabrichost.wire import ServiceDescription

Json = Any

# How often a deploy provisions again when a concurrent deploy's failure took the shared type
# back between this deploy's provision and its create.
DEPLOY_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Created:
    """A create's answer (``value``, SF's JSON) and whether it created it (False: an existing
    one was used, as ``if_exists="use-existing"`` or a retried request id allow)."""

    value: Json
    created: bool


@dataclass(frozen=True, slots=True)
class Deployed:
    """What :meth:`FabricClient.deploy_outcome` did: the application, the provisioned type
    (``application_type``), and whether each was new."""

    application: Json
    created: bool
    application_type: Json
    type_provisioned: bool


class FabricClient(InstancesMixin, ResolveMixin, HealthMixin, UpgradeMixin):
    """Client of one agent. Close it with :meth:`close` or use it as a context manager."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self._http: PlainHttp | httpx.Client
        if transport is None:
            self._http = PlainHttp(endpoint, timeout=timeout, headers=headers)
        else:
            import httpx  # only for a caller's transport: see the module doc

            self._http = httpx.Client(
                base_url=endpoint, timeout=timeout, transport=transport, headers=headers
            )

    @classmethod
    def for_state_dir(
        cls,
        state_dir: Path,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> FabricClient:
        record = AgentRecord.read(state_dir)
        if record is None:
            raise FabricHostError(
                f"no agent is running for the state directory {state_dir}; "
                "start one with `fabrichost up`"
            )
        # The agent's token, when this user can read it: the agent then serves this client
        # whatever the kernel says of the connection (docs/security.md).
        token = read_token(state_dir)
        return cls(record.Endpoint, timeout=timeout, transport=transport, token=token)

    def __enter__(self) -> FabricClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Json = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        extra_time: float = 0.0,
    ) -> Json:
        response = self._send(
            method,
            path,
            json=json,
            content=content,
            params=params,
            headers=headers,
            extra_time=extra_time,
        )
        if not response.content:
            return None
        return response.json()

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Json = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        extra_time: float = 0.0,
    ) -> PlainResponse | httpx.Response:
        """The agent's answer to one request; an error answer raises (see the module doc).

        ``json`` is sent as the body unless it is None (no body); ``content`` is a body as is.
        """
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                content=content,
                params=params,
                headers=headers,
                timeout=self._timeout + extra_time,
            )
        except Exception as exc:
            if not _unreachable(exc):
                raise
            raise FabricHostError(f"cannot reach the agent at {self.endpoint}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()["Error"]
                code, message = error["Code"], error["Message"]
            except (ValueError, KeyError, TypeError):
                code, message = "E_FAIL", response.text or response.reason_phrase
            raise error_from_answer(response.status_code, code, message)
        return response

    # -- cluster --------------------------------------------------------------------------------
    def status(self) -> Json:
        return self._call("GET", "/$/fabrichost/Status")

    def shutdown(self) -> None:
        self._call("POST", "/$/fabrichost/Shutdown")

    def view(self, node: str | None = None) -> Json:
        return self._call("GET", "/$/fabrichost/View", params={"NodeName": node} if node else None)

    def nodes(self) -> list[Json]:
        return list(self._call("GET", "/Nodes")["Items"])

    def stop_node(self, node: str) -> None:
        self._call("POST", f"/Nodes/{node}/$/Stop")

    def start_node(self, node: str) -> None:
        self._call("POST", f"/Nodes/{node}/$/Start")

    # -- application types and applications -----------------------------------------------------
    def provision(self, package_dir: str | Path, *, reuse_existing: bool = False) -> Json:
        return self.provision_outcome(package_dir, reuse_existing=reuse_existing).value

    def provision_outcome(
        self, package_dir: str | Path, *, reuse_existing: bool = False
    ) -> Created:
        """:meth:`provision`, saying whether the type is new (False: an identical one was
        reused; an agent that does not say so counts as new)."""
        response = self._send(
            "POST",
            "/ApplicationTypes/$/Provision",
            json={
                "ApplicationTypeBuildPath": str(Path(package_dir).resolve()),
                "ReuseExisting": reuse_existing,
            },
        )
        return Created(response.json(), response.headers.get(PROVISION_HEADER) != "reused")

    def application_types(self) -> list[Json]:
        return list(self._call("GET", "/ApplicationTypes")["Items"])

    def unprovision(self, type_name: str, version: str) -> None:
        self._call(
            "POST",
            f"/ApplicationTypes/{type_name}/$/Unprovision",
            json={"ApplicationTypeVersion": version},
        )

    def create_application(
        self,
        name: str,
        type_name: str,
        type_version: str,
        parameters: Mapping[str, str] | None = None,
        *,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Json:
        """Create an application; ``if_exists`` is fail | use-existing | replace."""
        return self.create_application_outcome(
            name,
            type_name,
            type_version,
            parameters,
            if_exists=if_exists,
            request_id=request_id,
        ).value

    def create_application_outcome(
        self,
        name: str,
        type_name: str,
        type_version: str,
        parameters: Mapping[str, str] | None = None,
        *,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Created:
        """:meth:`create_application`, saying whether it created it or used one."""
        response = self._send(
            "POST",
            "/Applications/$/Create",
            json={
                "Name": name,
                "TypeName": type_name,
                "TypeVersion": type_version,
                "ParameterList": [{"Key": k, "Value": v} for k, v in (parameters or {}).items()],
            },
            params={"IfExists": if_exists},
            headers=_request_headers(request_id),
        )
        return Created(response.json(), _created(response))

    def deploy(
        self,
        package_dir: str | Path,
        name: str,
        parameters: Mapping[str, str] | None = None,
        *,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Json:
        """Provision the package (reusing an identical provisioned type) and create the app."""
        return self.deploy_outcome(
            package_dir, name, parameters, if_exists=if_exists, request_id=request_id
        ).application

    def deploy_outcome(
        self,
        package_dir: str | Path,
        name: str,
        parameters: Mapping[str, str] | None = None,
        *,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Deployed:
        """:meth:`deploy`, saying what it created.

        If the create fails, a type this call provisioned is unprovisioned again, so a refused
        deploy leaves no state behind (unless someone else started using the type meanwhile);
        so is it when an existing application of another type was kept (``use-existing``).
        """
        for attempt in range(DEPLOY_ATTEMPTS):
            provisioned = self.provision_outcome(package_dir, reuse_existing=True)
            app_type = provisioned.value
            try:
                app = self.create_application_outcome(
                    name,
                    app_type["Name"],
                    app_type["Version"],
                    parameters,
                    if_exists=if_exists,
                    request_id=request_id,
                )
                break
            except FabricHostError as exc:
                if provisioned.created:
                    self._take_back(app_type)
                elif (
                    isinstance(exc, ApiError)
                    and exc.code == "FABRIC_E_APPLICATION_TYPE_NOT_FOUND"
                    and attempt + 1 < DEPLOY_ATTEMPTS
                ):
                    # A concurrent deploy provisioned this type, failed, and took it back
                    # between our provision and our create: provision it again. (A failed
                    # create is not recorded under its request id, so retrying is safe.)
                    continue
                raise
        kept_other = (app.value["TypeName"], app.value["TypeVersion"]) != (
            app_type["Name"],
            app_type["Version"],
        )
        if provisioned.created and kept_other:
            self._take_back(app_type)
        return Deployed(app.value, app.created, app_type, provisioned.created)

    def _take_back(self, app_type: Json) -> None:
        """Unprovision a type a failed deploy provisioned (unless it is in use by now)."""
        with contextlib.suppress(FabricHostError):
            self.unprovision(app_type["Name"], app_type["Version"])

    def applications(self) -> list[Json]:
        return list(self._call("GET", "/Applications")["Items"])

    def application(self, name: str) -> Json:
        return self._call("GET", f"/Applications/{name_to_id(name)}")

    def delete_application(self, name: str) -> None:
        self._call("POST", f"/Applications/{name_to_id(name)}/$/Delete")

    # -- services -------------------------------------------------------------------------------
    def create_service(
        self,
        app_name: str,
        description: ServiceDescription,
        *,
        wait: bool = False,
        wait_timeout: float = 60.0,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Json:
        """Create a service; ``if_exists`` is fail | use-existing | replace."""
        return self.create_service_outcome(
            app_name,
            description,
            wait=wait,
            wait_timeout=wait_timeout,
            if_exists=if_exists,
            request_id=request_id,
        ).value

    def create_service_outcome(
        self,
        app_name: str,
        description: ServiceDescription,
        *,
        wait: bool = False,
        wait_timeout: float = 60.0,
        if_exists: str = "fail",
        request_id: str | None = None,
    ) -> Created:
        """:meth:`create_service`, saying whether it created it or used one."""
        params = {"IfExists": if_exists}
        if wait:
            params.update(WaitForReady="true", Timeout=str(wait_timeout))
        response = self._send(
            "POST",
            f"/Applications/{name_to_id(app_name)}/$/GetServices/$/Create",
            json=_description_json(description),
            params=params,
            headers=_request_headers(request_id),
            extra_time=wait_timeout if wait else 0.0,
        )
        return Created(response.json(), _created(response))

    def wait_service_ready(self, name: str, timeout: float = 60.0) -> Json:
        return self._call(
            "GET",
            f"/$/fabrichost/Services/{name_to_id(name)}/$/WaitReady",
            params={"Timeout": str(timeout)},
            extra_time=timeout,
        )

    def services(self, app_name: str) -> list[Json]:
        return list(
            self._call("GET", f"/Applications/{name_to_id(app_name)}/$/GetServices")["Items"]
        )

    def service(self, name: str) -> Json:
        app = name.rsplit("/", 1)[0]
        return self._call(
            "GET", f"/Applications/{name_to_id(app)}/$/GetServices/{name_to_id(name)}"
        )

    def delete_service(self, name: str) -> None:
        self._call("POST", f"/Services/{name_to_id(name)}/$/Delete")

    def partitions(self, service_name: str) -> list[Json]:
        return list(
            self._call("GET", f"/Services/{name_to_id(service_name)}/$/GetPartitions")["Items"]
        )

    def replicas(self, partition_id: str) -> list[Json]:
        return list(self._call("GET", f"/Partitions/{partition_id}/$/GetReplicas")["Items"])

    # -- deployed entities ----------------------------------------------------------------------
    def deployed_applications(self, node: str) -> list[Json]:
        return list(self._call("GET", f"/Nodes/{node}/$/GetApplications")["Items"])

    def _deployed(self, node: str, app: str, what: str) -> list[Json]:
        return list(
            self._call("GET", f"/Nodes/{node}/$/GetApplications/{name_to_id(app)}/$/{what}")
        )

    def deployed_service_packages(self, node: str, app: str) -> list[Json]:
        return self._deployed(node, app, "GetServicePackages")

    def deployed_code_packages(self, node: str, app: str) -> list[Json]:
        return self._deployed(node, app, "GetCodePackages")

    def deployed_replicas(self, node: str, app: str) -> list[Json]:
        return self._deployed(node, app, "GetReplicas")

    def restart_code_package(
        self, node: str, app: str, manifest: str, code_package: str, activation_id: str = ""
    ) -> None:
        self._call(
            "POST",
            f"/Nodes/{node}/$/GetApplications/{name_to_id(app)}/$/GetCodePackages/$/Restart",
            json={
                "ServiceManifestName": manifest,
                "CodePackageName": code_package,
                "ServicePackageActivationId": activation_id,
                "CodePackageInstanceId": "0",
            },
        )


def _request_headers(request_id: str | None) -> dict[str, str] | None:
    """``Idempotency-Key`` for a create that may be retried."""
    return {"Idempotency-Key": request_id} if request_id else None


def _description_json(description: ServiceDescription) -> Json:
    # Imported on use: the descriptions' rules are a quarter of a CLI query's imports.
    from fabrichost.wire import service_description_json

    return service_description_json(description)


def _unreachable(exc: Exception) -> bool:
    """Whether ``exc`` says the agent could not be reached or answered no HTTP."""
    if isinstance(exc, OSError):  # PlainHttp's HttpError, a refused connection, a timeout
        return True
    httpx = sys.modules.get("httpx")  # loaded if and only if a transport was given
    return httpx is not None and isinstance(exc, httpx.HTTPError)


def _created(response: PlainResponse | httpx.Response) -> bool:
    """Whether a create made its entity: the agent's header (its status is Service Fabric's,
    the same either way); an agent without the header answered 201 only for a new one."""
    said = response.headers.get(CREATE_HEADER)
    return said == "created" if said is not None else response.status_code == 201
