"""Service Fabric's query surface on a real agent: filters and paging, application types and
their manifests, partitions and replicas by id, ResolvePartition, the deployed queries, the
node transition API and replica restart, with SF's paths, status codes and JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fabrichost.wire import PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import (
    runtime_host_script,
    write_guest_package,
    write_runtime_package,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration


def _get(cluster: Cluster, path: str, **params: Any) -> httpx.Response:
    return httpx.get(cluster.client.endpoint + path, params=params, timeout=30)


def _json(cluster: Cluster, path: str, **params: Any) -> Any:
    response = _get(cluster, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def _error(cluster: Cluster, path: str, status: int, **params: Any) -> dict[str, str]:
    response = _get(cluster, path, **params)
    assert response.status_code == status, response.text
    return dict(response.json()["Error"])


def _walk(cluster: Cluster, path: str, **params: Any) -> list[list[Any]]:
    """Every page of a paged list, following its continuation tokens."""
    pages: list[list[Any]] = []
    token = ""
    while True:
        page = _json(cluster, path, ContinuationToken=token, **params)
        pages.append(page["Items"])
        token = page["ContinuationToken"]
        if not token:
            return pages


def _deploy_stateful(cluster: Cluster, tmp_path: Path) -> None:
    package = write_runtime_package(
        tmp_path / "Rt", {"Code": ("CounterType", runtime_host_script("CounterType"))}
    )
    cluster.client.deploy(package, "fabric:/Rt")
    cluster.client.create_service(
        "fabric:/Rt",
        ServiceDescription(
            name="fabric:/Rt/Counter",
            type_name="CounterType",
            kind=ServiceKind.STATEFUL,
            partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
            partition_count=3,
            low_key=0,
            high_key=299,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
        wait_timeout=60,
    )


def test_lists_page_with_opaque_tokens_and_filter(cluster3: Cluster, tmp_path: Path) -> None:
    _deploy_stateful(cluster3, tmp_path)
    guest = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
    cluster3.client.deploy(guest, "fabric:/G")

    # Nodes: pages of one, in node order, covering each node once.
    pages = _walk(cluster3, "/Nodes", MaxResults=1)
    assert [[n["Name"] for n in p] for p in pages] == [["_Node_0"], ["_Node_1"], ["_Node_2"]]
    token = _json(cluster3, "/Nodes", MaxResults=1)["ContinuationToken"]
    assert "_Node" not in token  # opaque
    error = _error(cluster3, "/Nodes", 400, ContinuationToken="not-a-token")
    assert "ContinuationToken" in error["Message"]
    assert error["Code"] == "FABRIC_E_INVALID_ARGUMENT"
    assert _error(cluster3, "/Nodes", 400, MaxResults="-1")["Code"] == "FABRIC_E_INVALID_ARGUMENT"

    # Partitions of an int64 service, two per page; replicas one per page.
    pages = _walk(cluster3, "/Services/Rt~Counter/$/GetPartitions", MaxResults=2)
    assert [len(p) for p in pages] == [2, 1]
    lows = [p["PartitionInformation"]["LowKey"] for page in pages for p in page]
    assert lows == ["0", "100", "200"]
    partition_id = pages[0][0]["PartitionInformation"]["Id"]
    replicas = _walk(cluster3, f"/Partitions/{partition_id}/$/GetReplicas", MaxResults=1)
    assert [len(p) for p in replicas] == [1, 1, 1]
    ids = [int(p[0]["ReplicaId"]) for p in replicas]
    assert ids == sorted(ids)

    # Applications and types: filters, ExcludeApplicationParameters, paging.
    apps = _walk(cluster3, "/Applications", MaxResults=1)
    assert [[a["Name"] for a in p] for p in apps] == [["fabric:/G"], ["fabric:/Rt"]]
    only_g = _json(cluster3, "/Applications", ApplicationTypeName="GuestAppType")["Items"]
    assert [a["Name"] for a in only_g] == ["fabric:/G"]
    assert only_g[0]["Parameters"] == [{"Key": "Greeting", "Value": "hello"}]
    bare = _json(cluster3, "/Applications/G", ExcludeApplicationParameters="true")
    assert bare["Parameters"] == []
    types = _json(cluster3, "/ApplicationTypes", ExcludeApplicationParameters="true")["Items"]
    assert [(t["Name"], t["DefaultParameterList"]) for t in types] == [
        ("GuestAppType", []),
        ("RtAppType", []),
    ]
    compose = _json(cluster3, "/ApplicationTypes", ApplicationTypeDefinitionKindFilter=2)
    assert compose["Items"] == []
    assert len(_walk(cluster3, "/ApplicationTypes", MaxResults=1)) == 2

    # Services by type name.
    assert _json(cluster3, "/Applications/Rt/$/GetServices", ServiceTypeName="Nope")["Items"] == []
    named = _json(cluster3, "/Applications/Rt/$/GetServices", ServiceTypeName="CounterType")
    assert [s["Name"] for s in named["Items"]] == ["fabric:/Rt/Counter"]

    # Deployed code packages and replicas on a node, filtered.
    deployed = "/Nodes/_Node_0/$/GetApplications/Rt/$/"
    assert len(_json(cluster3, deployed + "GetCodePackages", CodePackageName="Code")) == 1
    assert _json(cluster3, deployed + "GetCodePackages", CodePackageName="Other") == []
    assert _json(cluster3, deployed + "GetCodePackages", ServiceManifestName="Other") == []
    on_node = _json(cluster3, deployed + "GetReplicas")
    assert len(on_node) == 3  # one replica of each partition on every node
    mine = _json(cluster3, deployed + "GetReplicas", PartitionId=partition_id)
    assert [r["PartitionId"] for r in mine] == [partition_id]
    assert _json(cluster3, deployed + "GetReplicas", ServiceManifestName="Other") == []


def test_node_status_filter_sees_a_stopped_node(cluster3: Cluster) -> None:
    cluster3.client.stop_node("_Node_1")
    down = _json(cluster3, "/Nodes", NodeStatusFilter="down")["Items"]
    assert [n["Name"] for n in down] == ["_Node_1"]
    assert down[0]["IsStopped"] is True
    assert down[0]["NodeDownAt"] != "0001-01-01T00:00:00.000Z"
    up = _json(cluster3, "/Nodes", NodeStatusFilter="Up")["Items"]
    assert [n["Name"] for n in up] == ["_Node_0", "_Node_2"]
    assert len(_json(cluster3, "/Nodes", NodeStatusFilter="all")["Items"]) == 3
    assert "NodeStatusFilter" in _error(cluster3, "/Nodes", 400, NodeStatusFilter="x")["Message"]


def test_application_types_manifests_and_service_types(cluster: Cluster, tmp_path: Path) -> None:
    guest = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
    cluster.client.provision(guest)
    types = "/ApplicationTypes/GuestAppType"
    found = _json(cluster, types)
    assert [(t["Name"], t["Version"]) for t in found["Items"]] == [("GuestAppType", "1.0.0")]
    assert found["Items"][0]["ApplicationTypeDefinitionKind"] == "ServiceFabricApplicationPackage"
    assert _json(cluster, types, ApplicationTypeVersion="2.0.0")["Items"] == []
    assert _json(cluster, "/ApplicationTypes/Other")["Items"] == []

    manifest = _json(cluster, types + "/$/GetApplicationManifest", ApplicationTypeVersion="1.0.0")
    assert manifest["Manifest"] == (guest / "ApplicationManifest.xml").read_text()
    service = _json(
        cluster,
        types + "/$/GetServiceManifest",
        ApplicationTypeVersion="1.0.0",
        ServiceManifestName="GuestPkg",
    )
    assert service["Manifest"] == (guest / "GuestPkg" / "ServiceManifest.xml").read_text()
    error = _error(
        cluster,
        types + "/$/GetServiceManifest",
        404,
        ApplicationTypeVersion="1.0.0",
        ServiceManifestName="Nope",
    )
    assert error["Code"] == "FABRIC_E_SERVICE_MANIFEST_NOT_FOUND"
    assert "GuestPkg" in error["Message"]
    error = _error(cluster, types + "/$/GetApplicationManifest", 404, ApplicationTypeVersion="9")
    assert error["Code"] == "FABRIC_E_APPLICATION_TYPE_NOT_FOUND"
    assert "ApplicationTypeVersion" in _error(cluster, types + "/$/GetServiceTypes", 400)["Message"]

    (info,) = _json(cluster, types + "/$/GetServiceTypes", ApplicationTypeVersion="1.0.0")
    assert info == {
        "ServiceTypeDescription": {
            "Kind": "Stateless",
            "IsStateful": False,
            "ServiceTypeName": "GuestType",
            "PlacementConstraints": "",
            "LoadMetrics": [],
            "ServicePlacementPolicies": [],
            "Extensions": [],
            "UseImplicitHost": True,
        },
        "ServiceManifestName": "GuestPkg",
        "ServiceManifestVersion": "1.0.0",
        "IsServiceGroup": False,
    }
    one = _json(cluster, types + "/$/GetServiceTypes/GuestType", ApplicationTypeVersion="1.0.0")
    assert one == info
    absent = _get(cluster, types + "/$/GetServiceTypes/Nope", ApplicationTypeVersion="1.0.0")
    assert absent.status_code == 204


def test_partitions_replicas_and_names_by_id(cluster3: Cluster, tmp_path: Path) -> None:
    _deploy_stateful(cluster3, tmp_path)
    partitions = _json(cluster3, "/Services/Rt~Counter/$/GetPartitions")["Items"]
    by_low = {p["PartitionInformation"]["LowKey"]: p for p in partitions}
    second = by_low["100"]
    pid = second["PartitionInformation"]["Id"]
    assert _json(cluster3, f"/Partitions/{pid}") == second
    assert _json(cluster3, f"/Services/Rt~Counter/$/GetPartitions/{pid}") == second
    assert _get(cluster3, "/Partitions/00000000-0000-0000-0000-000000000000").status_code == 204
    assert _json(cluster3, f"/Partitions/{pid}/$/GetServiceName") == {
        "Id": "Rt~Counter",
        "Name": "fabric:/Rt/Counter",
    }
    assert _json(cluster3, "/Services/Rt~Counter/$/GetApplicationName") == {
        "Id": "Rt",
        "Name": "fabric:/Rt",
    }
    error = _error(cluster3, "/Services/Rt~Nope/$/GetApplicationName", 404)
    assert error["Code"] == "FABRIC_E_SERVICE_DOES_NOT_EXIST"

    replicas = _json(cluster3, f"/Partitions/{pid}/$/GetReplicas")["Items"]
    primary = next(r for r in replicas if r["ReplicaRole"] == "Primary")
    assert _json(cluster3, f"/Partitions/{pid}/$/GetReplicas/{primary['ReplicaId']}") == primary
    assert _get(cluster3, f"/Partitions/{pid}/$/GetReplicas/1").status_code == 204

    resolved = _json(
        cluster3,
        "/Services/Rt~Counter/$/ResolvePartition",
        PartitionKeyType=2,
        PartitionKeyValue=150,
    )
    assert resolved["Name"] == "fabric:/Rt/Counter"
    assert resolved["PartitionInformation"] == second["PartitionInformation"]
    assert resolved["Endpoints"][0] == {"Kind": "StatefulPrimary", "Address": primary["Address"]}
    assert sorted(e["Kind"] for e in resolved["Endpoints"]) == [
        "StatefulPrimary",
        "StatefulSecondary",
        "StatefulSecondary",
    ]
    assert resolved["Version"].isdigit()
    for params in ({"PartitionKeyType": 2, "PartitionKeyValue": 300}, {"PartitionKeyType": 1}):
        error = _error(cluster3, "/Services/Rt~Counter/$/ResolvePartition", 400, **params)
        assert error["Code"] == "FABRIC_E_INVALID_PARTITION_KEY"


def test_deployed_service_types_packages_and_replica_detail(
    cluster: Cluster, tmp_path: Path
) -> None:
    _deploy_stateful(cluster, tmp_path)
    base = "/Nodes/_Node_0/$/GetApplications/Rt/$/"
    assert _json(cluster, base + "GetServiceTypes") == [
        {
            "ServiceTypeName": "CounterType",
            "ServiceManifestName": "RtPkg",
            "CodePackageName": "Code",
            "Status": "Registered",
            "ServicePackageActivationId": "",
        }
    ]
    assert _json(cluster, base + "GetServiceTypes", ServiceManifestName="Nope") == []
    (package,) = _json(cluster, base + "GetServicePackages/RtPkg")
    assert package["Name"] == "RtPkg"
    assert _get(cluster, base + "GetServicePackages/Nope").status_code == 204

    deployed = _json(cluster, base + "GetReplicas")
    first = deployed[0]
    detail = _json(
        cluster,
        f"/Nodes/_Node_0/$/GetPartitions/{first['PartitionId']}/$/GetReplicas/"
        f"{first['ReplicaId']}/$/GetDetail",
    )
    assert detail["ServiceKind"] == "Stateful"
    assert detail["ServiceName"] == "fabric:/Rt/Counter"
    assert detail["ReplicaId"] == first["ReplicaId"]
    assert detail["CurrentServiceOperation"] == "None"
    assert detail["ReadStatus"] == detail["WriteStatus"] == "Granted"  # the only replica
    assert detail["DeployedServiceReplicaQueryResult"] == first
    error = _error(
        cluster,
        f"/Nodes/_Node_0/$/GetPartitions/{first['PartitionId']}/$/GetReplicas/1/$/GetDetail",
        404,
    )
    assert error["Code"] == "FABRIC_E_REPLICA_DOES_NOT_EXIST"
