"""Service Fabric's query surface on a real agent: filters and paging, application types and
their manifests, partitions and replicas by id, ResolvePartition, the deployed queries, the
node transition API and replica restart, with SF's paths, status codes and JSON."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import psutil
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


# -- node transitions ------------------------------------------------------------------------------

OP_STOP = "11111111-1111-1111-1111-111111111111"
OP_START = "22222222-2222-2222-2222-222222222222"


def _transition(cluster: Cluster, node: str, **params: Any) -> httpx.Response:
    return httpx.post(
        f"{cluster.client.endpoint}/Faults/Nodes/{node}/$/StartTransition/",
        params={"StopDurationInSeconds": 0, **params},
        timeout=30,
    )


def _wait_transition(cluster: Cluster, node: str, operation_id: str) -> dict[str, Any]:
    """The transition's progress once it is no longer Running (a generous deadline)."""
    deadline = time.monotonic() + 60
    while True:
        progress: dict[str, Any] = _json(
            cluster, f"/Faults/Nodes/{node}/$/GetTransitionProgress", OperationId=operation_id
        )
        if progress["State"] != "Running" or time.monotonic() > deadline:
            return progress
        time.sleep(0.05)


def test_node_transitions_stop_and_start_a_node(cluster3: Cluster) -> None:
    before = _json(cluster3, "/Nodes/_Node_1")
    wrong = _transition(
        cluster3, "_Node_1", OperationId=OP_STOP, NodeTransitionType="Stop", NodeInstanceId="1"
    )
    assert wrong.status_code == 400
    assert wrong.json()["Error"]["Code"] == "FABRIC_E_INSTANCE_ID_MISMATCH"
    assert _json(cluster3, "/Nodes/_Node_1")["NodeStatus"] == "Up"  # nothing changed

    stop = _transition(
        cluster3,
        "_Node_1",
        OperationId=OP_STOP,
        NodeTransitionType="Stop",
        NodeInstanceId=before["InstanceId"],
    )
    assert stop.status_code == 202, stop.text
    progress = _wait_transition(cluster3, "_Node_1", OP_STOP)
    assert progress == {
        "State": "Completed",
        "NodeTransitionResult": {
            "ErrorCode": 0,
            "NodeResult": {"NodeName": "_Node_1", "NodeInstanceId": before["InstanceId"]},
        },
    }
    stopped = _json(cluster3, "/Nodes/_Node_1")
    assert (stopped["NodeStatus"], stopped["IsStopped"]) == ("Down", True)
    again = _transition(
        cluster3,
        "_Node_1",
        OperationId=OP_STOP,
        NodeTransitionType="Start",
        NodeInstanceId=stopped["InstanceId"],
    )
    assert again.status_code == 409  # an operation id is used once

    start = _transition(
        cluster3,
        "_Node_1",
        OperationId=OP_START,
        NodeTransitionType="Start",
        NodeInstanceId=stopped["InstanceId"],
    )
    assert start.status_code == 202, start.text
    assert _wait_transition(cluster3, "_Node_1", OP_START)["State"] == "Completed"
    after = _json(cluster3, "/Nodes/_Node_1")
    assert (after["NodeStatus"], after["IsStopped"]) == ("Up", False)
    assert after["InstanceId"] != before["InstanceId"]  # a new instance at every start
    assert after["NodeUpAt"] > before["NodeUpAt"]
    up = _transition(
        cluster3,
        "_Node_1",
        OperationId=str(uuid.uuid4()),
        NodeTransitionType="Start",
        NodeInstanceId=after["InstanceId"],
    )
    assert up.json()["Error"]["Code"] == "FABRIC_E_NODE_IS_UP"
    missing = _get(
        cluster3, "/Faults/Nodes/_Node_1/$/GetTransitionProgress", OperationId=str(uuid.uuid4())
    )
    assert missing.status_code == 404


def test_a_stop_with_a_duration_starts_the_node_again_by_itself(cluster: Cluster) -> None:
    before = _json(cluster, "/Nodes/_Node_0")
    stop = _transition(
        cluster,
        "_Node_0",
        OperationId=OP_STOP,
        NodeTransitionType="Stop",
        NodeInstanceId=before["InstanceId"],
        StopDurationInSeconds=1,
    )
    assert stop.status_code == 202, stop.text
    assert _wait_transition(cluster, "_Node_0", OP_STOP)["State"] == "Completed"
    deadline = time.monotonic() + 60
    while (node := _json(cluster, "/Nodes/_Node_0"))["NodeStatus"] != "Up":
        assert time.monotonic() < deadline, node
        time.sleep(0.05)
    assert node["InstanceId"] != before["InstanceId"]
    assert node["NodeDownAt"] != "0001-01-01T00:00:00.000Z"


# -- replica restart -------------------------------------------------------------------------------

COUNTING_HOST = """
from fabrichost.runtime import StatefulService, run_host

OPENS = {}

class Svc(StatefulService):
    def open(self):
        rid = self.context.replica_id
        OPENS[rid] = OPENS.get(rid, 0) + 1
        return f"replica://{rid}/open{OPENS[rid]}"

    def change_role(self, role):
        rid = self.context.replica_id
        return f"replica://{rid}/open{OPENS[rid]}/{role}"

run_host({"CounterType": Svc})
"""


def test_a_replica_restart_closes_and_reopens_it_in_its_host(
    cluster3: Cluster, tmp_path: Path
) -> None:
    package = write_runtime_package(tmp_path / "Rt", {"Code": ("CounterType", COUNTING_HOST)})
    cluster3.client.deploy(package, "fabric:/Rt")
    cluster3.client.create_service(
        "fabric:/Rt",
        ServiceDescription(
            name="fabric:/Rt/Counter",
            type_name="CounterType",
            kind=ServiceKind.STATEFUL,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
        wait_timeout=60,
    )
    (partition,) = cluster3.client.partitions("fabric:/Rt/Counter")
    pid = partition["PartitionInformation"]["Id"]
    primary = next(r for r in cluster3.client.replicas(pid) if r["ReplicaRole"] == "Primary")
    node, rid = primary["NodeName"], primary["ReplicaId"]
    assert "/open1" in primary["Address"]
    (host_before,) = {
        r["HostProcessId"] for r in cluster3.client.deployed_replicas(node, "fabric:/Rt")
    }

    restart = httpx.post(
        f"{cluster3.client.endpoint}/Nodes/{node}/$/GetPartitions/{pid}/$/GetReplicas/{rid}/$/Restart",
        timeout=60,
    )
    assert restart.status_code == 200, restart.text
    cluster3.client.wait_service_ready("fabric:/Rt/Counter", timeout=60)
    deadline = time.monotonic() + 60
    while True:
        replicas = {r["ReplicaId"]: r for r in cluster3.client.replicas(pid)}
        roles = sorted(r["ReplicaRole"] for r in replicas.values())
        if (
            roles == ["ActiveSecondary", "ActiveSecondary", "Primary"]
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.05)
    assert roles == ["ActiveSecondary", "ActiveSecondary", "Primary"]  # one Primary, always
    restarted = replicas[rid]
    assert restarted["ReplicaStatus"] == "Ready"
    assert restarted["ReplicaRole"] == "ActiveSecondary"  # a secondary was promoted meanwhile
    assert "/open2" in restarted["Address"]  # opened a second time ...
    (host_after,) = {
        r["HostProcessId"] for r in cluster3.client.deployed_replicas(node, "fabric:/Rt")
    }
    assert host_after == host_before  # ... in the same process

    missing = httpx.post(
        f"{cluster3.client.endpoint}/Nodes/{node}/$/GetPartitions/{pid}/$/GetReplicas/1/$/Restart",
        timeout=30,
    )
    assert missing.status_code == 404
    assert missing.json()["Error"]["Code"] == "FABRIC_E_REPLICA_DOES_NOT_EXIST"


def test_a_guest_replica_restart_restarts_its_process(cluster: Cluster, tmp_path: Path) -> None:
    guest = write_guest_package(tmp_path / "G", script="import signal\nsignal.pause()\n")
    cluster.client.deploy(guest, "fabric:/G")
    cluster.client.create_service(
        "fabric:/G",
        ServiceDescription(name="fabric:/G/Web", type_name="GuestType", kind=ServiceKind.STATELESS),
        wait=True,
        wait_timeout=60,
    )
    (before,) = cluster.client.deployed_replicas("_Node_0", "fabric:/G")
    restart = httpx.post(
        f"{cluster.client.endpoint}/Nodes/_Node_0/$/GetPartitions/{before['PartitionId']}"
        f"/$/GetReplicas/{before['InstanceId']}/$/Restart",
        timeout=60,
    )
    assert restart.status_code == 200, restart.text
    deadline = time.monotonic() + 60
    while True:
        (after,) = cluster.client.deployed_replicas("_Node_0", "fabric:/G")
        if after["ReplicaStatus"] == "Ready" and after["HostProcessId"] not in (
            "0",
            before["HostProcessId"],
        ):
            break
        assert time.monotonic() < deadline, after
        time.sleep(0.05)
    assert not psutil.pid_exists(int(before["HostProcessId"])) or (
        psutil.Process(int(before["HostProcessId"])).status() == psutil.STATUS_ZOMBIE
    )
