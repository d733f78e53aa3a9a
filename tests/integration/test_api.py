"""The HTTP API answers bad input with Service Fabric's error JSON and changes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

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
