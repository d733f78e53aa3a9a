"""A typed client of the agent's HTTP API; the CLI and the tests use it.

Usage::

    client = FabricClient.for_state_dir(state_dir)   # or FabricClient("http://127.0.0.1:19080")
    client.deploy("manifests/MyApp", "fabric:/App1")
    client.create_service("fabric:/App1", ServiceDescription(...), wait=True)
    client.deployed_replicas("_Node_0", "fabric:/App1")

Errors come back as the same exceptions the agent raised: :class:`NotFoundError` (404),
:class:`ConflictError` (409, the name is taken), :class:`ApiError` otherwise. Every call has a
deadline (``timeout``, default 60 s, plus the wait time of calls that wait).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from fabrichost._instances import InstancesMixin
from fabrichost.agent._statedir import AgentRecord
from fabrichost.api._descriptions import service_description_json
from fabrichost.api._json import name_to_id
from fabrichost.errors import ApiError, ConflictError, FabricHostError, NotFoundError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.agent._model import ServiceDescription

Json = Any


class FabricClient(InstancesMixin):
    """Client of one agent. Close it with :meth:`close` or use it as a context manager."""

    def __init__(self, endpoint: str, *, timeout: float = 60.0) -> None:
        self.endpoint = endpoint
        self._timeout = timeout
        self._http = httpx.Client(base_url=endpoint, timeout=timeout)

    @classmethod
    def for_state_dir(cls, state_dir: Path, *, timeout: float = 60.0) -> FabricClient:
        record = AgentRecord.read(state_dir)
        if record is None:
            raise FabricHostError(
                f"no agent is running for the state directory {state_dir}; "
                "start one with `fabrichost up`"
            )
        return cls(record.Endpoint, timeout=timeout)

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
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        extra_time: float = 0.0,
    ) -> Json:
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=params,
                headers=headers,
                timeout=self._timeout + extra_time,
            )
        except httpx.HTTPError as exc:
            raise FabricHostError(f"cannot reach the agent at {self.endpoint}: {exc}") from exc
        if response.status_code >= 400:
            try:
                error = response.json()["Error"]
                code, message = error["Code"], error["Message"]
            except (ValueError, KeyError, TypeError):
                code, message = "E_FAIL", response.text or response.reason_phrase
            kind = {404: NotFoundError, 409: ConflictError}.get(response.status_code, ApiError)
            raise kind(message, code=code, status=response.status_code)
        if not response.content:
            return None
        return response.json()

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
        return self._call(
            "POST",
            "/ApplicationTypes/$/Provision",
            json={
                "ApplicationTypeBuildPath": str(Path(package_dir).resolve()),
                "ReuseExisting": reuse_existing,
            },
        )

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
        return self._call(
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
        app_type = self.provision(package_dir, reuse_existing=True)
        return self.create_application(
            name,
            app_type["Name"],
            app_type["Version"],
            parameters,
            if_exists=if_exists,
            request_id=request_id,
        )

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
        params = {"IfExists": if_exists}
        if wait:
            params.update(WaitForReady="true", Timeout=str(wait_timeout))
        return self._call(
            "POST",
            f"/Applications/{name_to_id(app_name)}/$/GetServices/$/Create",
            json=service_description_json(description),
            params=params,
            headers=_request_headers(request_id),
            extra_time=wait_timeout if wait else 0.0,
        )

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
