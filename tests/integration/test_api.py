"""The HTTP API answers bad input with Service Fabric's error JSON and changes nothing."""

from __future__ import annotations

import http.client
import select
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from fabrichost.errors import NotFoundError
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


def _post(cluster: Cluster, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(cluster.client.endpoint + path, timeout=10, **kwargs)


def test_bad_requests_get_an_error_that_names_the_field(cluster: Cluster, tmp_path: Path) -> None:
    cluster.client.deploy(
        write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n"), "fabric:/G"
    )
    create = "/Applications/G/$/GetServices/$/Create"
    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (create, {"content": b"{not json"}, 400, "not valid JSON"),
        (create, {"json": [1, 2]}, 400, "JSON object"),
        (
            create,
            {"json": {"ServiceKind": "Stateless", "ServiceTypeName": "GuestType"}},
            400,
            "ServiceName",
        ),
        (
            create,
            {
                "json": {
                    "ServiceKind": "Stateful",
                    "ServiceName": "fabric:/G/S",
                    "ServiceTypeName": "GuestType",
                }
            },
            400,
            "stateless",
        ),
        (
            create,
            {
                "json": {
                    "ServiceKind": "Stateless",
                    "ServiceName": "fabric:/G/S",
                    "ServiceTypeName": "NoSuchType",
                }
            },
            404,
            "NoSuchType",
        ),
        (
            create,
            {
                "json": {
                    "ServiceKind": "Stateless",
                    "ServiceName": "fabric:/Other/S",
                    "ServiceTypeName": "GuestType",
                }
            },
            400,
            "under its application",
        ),
        (
            create,
            {
                "json": {
                    "ServiceKind": "Stateless",
                    "ServiceName": "fabric:/G/S",
                    "ServiceTypeName": "GuestType",
                    "InstanceCount": "many",
                }
            },
            400,
            "InstanceCount",
        ),
        (
            create,
            {
                "json": {
                    "ServiceKind": "Stateless",
                    "ServiceName": "fabric:/G/S",
                    "ServiceTypeName": "GuestType",
                    "PartitionDescription": {
                        "PartitionScheme": "UniformInt64Range",
                        "Count": 5,
                        "LowKey": "0",
                        "HighKey": "2",
                    },
                }
            },
            400,
            "do not fit",
        ),
        (
            "/Applications/$/Create",
            {"json": {"Name": "fabric:/H", "TypeName": "Nope", "TypeVersion": "1"}},
            404,
            "not provisioned",
        ),
        (
            "/Applications/$/Create",
            {
                "json": {
                    "Name": "fabric:/H",
                    "TypeName": "GuestAppType",
                    "TypeVersion": "1.0.0",
                    "ParameterList": [{"Key": "Nope", "Value": "1"}],
                }
            },
            400,
            "Nope",
        ),
        (
            "/ApplicationTypes/$/Provision",
            {"json": {"ApplicationTypeBuildPath": str(tmp_path)}},
            400,
            "ApplicationManifest.xml",
        ),
    ]
    for path, kwargs, status, words in cases:
        response = _post(cluster, path, **kwargs)
        assert response.status_code == status, (path, kwargs, response.text)
        error = response.json()["Error"]
        assert words in error["Message"], (words, error)
        assert error["Code"].startswith(("FABRIC_E_", "E_"))
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/G"]
    assert cluster.client.services("fabric:/G") == []


def test_only_loopback_hosts_and_origins_are_served(cluster: Cluster) -> None:
    url = cluster.client.endpoint + "/Nodes"
    assert httpx.get(url, timeout=10).status_code == 200
    assert httpx.get(url, headers={"Host": "evil.example"}, timeout=10).status_code == 400
    refused = httpx.get(url, headers={"Origin": "http://evil.example"}, timeout=10)
    assert refused.status_code == 403
    own = cluster.client.endpoint  # http://127.0.0.1:<port>
    assert httpx.get(url, headers={"Origin": own}, timeout=10).status_code == 200
    # The agent listens on 127.0.0.1 only: whatever holds [::1]:<port>, where a browser may
    # take `localhost`, is not the agent, so neither origin is its own.
    for name in ("[::1]", "localhost"):
        alias = own.replace("127.0.0.1", name)
        node_stop = httpx.post(
            cluster.client.endpoint + "/Nodes/_Node_0/$/Stop", headers={"Origin": alias}
        )
        assert node_stop.status_code == 403, (alias, node_stop.text)
    assert [n["NodeStatus"] for n in cluster.client.nodes()] == ["Up"]
    # Another local port is another origin (say, a dev server's page): refused too.
    other = httpx.get(url, headers={"Origin": "http://localhost:8080"}, timeout=10)
    assert other.status_code == 403


def test_two_clusters_with_different_state_dirs_run_side_by_side(
    cluster: Cluster, tmp_path: Path
) -> None:
    from fabrichost.client import FabricClient
    from fabrichost.daemon import start_background, stop_background
    from tests.integration.conftest import marked_processes

    other_dir = (tmp_path / "other").resolve()
    record = start_background(other_dir, nodes=2, port=0)
    try:
        with FabricClient(record.Endpoint) as other:
            assert record.Endpoint != cluster.client.endpoint
            assert len(other.nodes()) == 2
            assert len(cluster.client.nodes()) == 1
            package = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
            cluster.client.deploy(package, "fabric:/G")
            other.deploy(package, "fabric:/G")  # the same name: another cluster
            assert [a["Name"] for a in other.applications()] == ["fabric:/G"]
    finally:
        stop_background(other_dir)
    assert marked_processes(other_dir) == []
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/G"], "untouched"


# -- request bodies: bounded, strict JSON, on every route that reads one ---------------------------

EVENT_ROUTE = "/runtime/webhooks/durabletask/instances/job-1/raiseEvent/go"
#: Every route that reads a JSON body (the application G of a guest package, on _Node_0).
JSON_ROUTES = (
    "/ApplicationTypes/$/Provision",
    "/ApplicationTypes/GuestAppType/$/Unprovision",
    "/Applications/$/Create",
    "/Applications/G/$/GetServices/$/Create",
    "/Nodes/_Node_0/$/GetApplications/G/$/GetCodePackages/$/Restart",
    "/orchestrators/EchoJob/job-1",
    EVENT_ROUTE,
)


def _connect(cluster: Cluster) -> http.client.HTTPConnection:
    address = urlsplit(cluster.client.endpoint)
    assert address.hostname is not None
    return http.client.HTTPConnection(address.hostname, address.port, timeout=30)


def _error(response: http.client.HTTPResponse) -> tuple[int, str]:
    body = httpx.Response(response.status, content=response.read()).json()
    return response.status, body["Error"]["Code"]


def test_a_body_announced_too_large_is_refused_before_any_of_it_is_sent(
    cluster: Cluster,
) -> None:
    for path in JSON_ROUTES:
        connection = _connect(cluster)
        try:
            connection.putrequest("POST", path)
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(100 * 1024 * 1024))
            connection.endheaders()  # and not one byte of the body
            assert _error(connection.getresponse()) == (413, "FABRIC_E_VALUE_TOO_LARGE"), path
        finally:
            connection.close()


def test_a_streamed_body_is_refused_once_past_the_limit_without_being_buffered(
    cluster: Cluster,
) -> None:
    agent = psutil.Process(cluster.agent_pid)
    rss_before = agent.memory_info().rss
    chunk, planned = b'"' + b"x" * (64 * 1024 - 1), 100 * 1024 * 1024
    connection = _connect(cluster)
    try:
        connection.putrequest("POST", "/orchestrators/EchoJob/big-1")  # no Content-Length
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        assert connection.sock is not None
        sent, deadline = 0, time.monotonic() + 60
        # Send until the agent answers (it must, long before the end) or all 100 MiB are out.
        while sent < planned and not select.select([connection.sock], [], [], 0)[0]:
            assert time.monotonic() < deadline, f"no answer after {sent} bytes"
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        assert _error(connection.getresponse()) == (413, "FABRIC_E_VALUE_TOO_LARGE")
    finally:
        connection.close()
    # It answered after the limit (1 MiB) and what the kernel's buffers held, not at the end.
    assert sent < planned // 3, sent
    assert agent.memory_info().rss - rss_before < 50 * 1024 * 1024
    with pytest.raises(NotFoundError):
        cluster.client.instance_status("big-1")


def test_deep_or_ambiguous_json_is_a_400_on_every_route_and_changes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
    cluster.client.deploy(package, "fabric:/G")
    bodies = {
        b"[" * 1000 + b"]" * 1000: "nested more than 100 levels deep",
        b'{"Name": "fabric:/A", "Name": "fabric:/B"}': "the key 'Name' appears twice",
    }
    for path in JSON_ROUTES:
        for body, words in bodies.items():
            response = _post(cluster, path, content=body)
            assert response.status_code == 400, (path, response.text)
            code, message = response.json()["Error"].values()
            assert code == "FABRIC_E_INVALID_ARGUMENT", (path, code)
            assert words in message, (path, message)
    # A create that would succeed with either value is refused too, naming the key.
    twice = (
        b'{"Name": "fabric:/A", "TypeName": "GuestAppType", "TypeVersion": "1.0.0", '
        b'"Name": "fabric:/B"}'
    )
    response = _post(cluster, "/Applications/$/Create", content=twice)
    assert response.status_code == 400, response.text
    assert "'Name'" in response.json()["Error"]["Message"]
    assert [a["Name"] for a in cluster.client.applications()] == ["fabric:/G"]
    assert [t["Name"] for t in cluster.client.application_types()] == ["GuestAppType"]
    assert cluster.client.services("fabric:/G") == []
    assert cluster.client.instances() == []
