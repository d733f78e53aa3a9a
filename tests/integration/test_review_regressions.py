"""Regression tests for the defects an independent review of the agent found."""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.agent._crash import ENV as CRASH_ENV
from fabrichost.errors import ApiError, FabricHostError
from fabrichost.wire import PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import MANIFESTS, marked_processes, write_guest_package
from tests.integration.test_durability import _kill_agent, _restarted

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def test_an_application_and_its_default_services_are_committed_together(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER, default_service=True)
    _kill_agent(cluster.state_dir)
    monkeypatch.setenv(CRASH_ENV, "application-committed")
    with (
        _restarted(cluster.state_dir) as doomed,
        pytest.raises(FabricHostError, match="cannot reach the agent"),
    ):
        doomed.deploy(package, "fabric:/G", request_id="d1")
    monkeypatch.delenv(CRASH_ENV)
    _kill_agent(cluster.state_dir)
    with _restarted(cluster.state_dir) as client:
        client.wait_service_ready("fabric:/G/Web", 30)  # the whole application came back
        again = client.deploy(package, "fabric:/G", request_id="d1")
        assert again["Name"] == "fabric:/G"
        assert [s["Name"] for s in client.services("fabric:/G")] == ["fabric:/G/Web"]


def test_deleting_an_application_while_it_is_created_waits_and_leaves_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER, default_service=True)
    app_type = cluster.client.provision(package, reuse_existing=True)
    url = f"{cluster.client.endpoint}/Applications"
    barrier = threading.Barrier(2)

    def create() -> int:
        barrier.wait(timeout=30)
        return httpx.post(
            f"{url}/$/Create",
            timeout=60,
            json={
                "Name": "fabric:/G",
                "TypeName": app_type["Name"],
                "TypeVersion": app_type["Version"],
            },
        ).status_code

    def delete() -> int:
        barrier.wait(timeout=30)
        return httpx.post(f"{url}/G/$/Delete", timeout=60).status_code

    with ThreadPoolExecutor(2) as pool:
        created, deleted = pool.submit(create), pool.submit(delete)
        codes = (created.result(), deleted.result())
    assert codes in ((201, 200), (201, 404)), codes  # never a 500
    if codes[1] == 404:  # the delete came first
        cluster.client.delete_application("fabric:/G")
    assert cluster.client.applications() == []
    assert marked_processes(cluster.state_dir) == []


def test_a_retried_start_without_an_instance_id_names_the_same_instance(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    url = f"{cluster.client.endpoint}/orchestrators/EternalJob"
    first = httpx.post(url, json={}, headers={"Idempotency-Key": "k"}, timeout=30)
    second = httpx.post(url, json={}, headers={"Idempotency-Key": "k"}, timeout=30)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    cluster.client.terminate_instance(first.json()["id"])


def test_a_partition_restored_on_fewer_nodes_still_has_a_primary(cluster3: Cluster) -> None:
    cluster3.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    cluster3.client.create_service(
        "fabric:/App1",
        ServiceDescription(
            name="fabric:/App1/S",
            type_name="MyServiceType",
            kind=ServiceKind.STATEFUL,
            partition_count=1,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
    )
    (partition,) = cluster3.client.partitions("fabric:/App1/S")
    pid = partition["PartitionInformation"]["Id"]
    primary = next(r for r in cluster3.client.replicas(pid) if r["ReplicaRole"] == "Primary")
    _kill_agent(cluster3.state_dir)
    # Restarting with fewer nodes drops the replicas of nodes that no longer exist.
    nodes = 2 if primary["NodeName"] == "_Node_2" else 1
    with _restarted(cluster3.state_dir, nodes=nodes) as client:
        client.wait_service_ready("fabric:/App1/S", 30)
        roles = [r["ReplicaRole"] for r in client.replicas(pid)]
        assert roles.count("Primary") == 1, roles


def test_bad_input_is_refused_with_an_error_and_changes_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    create = f"{cluster.client.endpoint}/Applications/$/Create"
    for bad in ([1], [{"Key": "a"}], "x"):
        response = httpx.post(
            create,
            json={"Name": "fabric:/X", "TypeName": "T", "TypeVersion": "1", "ParameterList": bad},
            timeout=30,
        )
        assert response.status_code == 400, response.text
        assert "ParameterList" in response.json()["Error"]["Message"]
    response = httpx.post(
        create, json={"Name": "fabric:/A~B", "TypeName": "T", "TypeVersion": "1"}, timeout=30
    )
    assert response.status_code == 400
    assert "'~'" in response.json()["Error"]["Message"]

    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    manifest = package / "ApplicationManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            'ApplicationTypeVersion="1.0.0"', 'ApplicationTypeVersion="../../../escaped"'
        )
    )
    response = httpx.post(
        f"{cluster.client.endpoint}/ApplicationTypes/$/Provision",
        timeout=30,
        json={"ApplicationTypeBuildPath": str(package)},
    )
    assert response.status_code == 400
    assert "path separators" in response.json()["Error"]["Message"]
    assert not list(cluster.state_dir.parent.rglob("*escaped*"))


def test_concurrent_provisions_of_one_package_all_succeed(cluster: Cluster, tmp_path: Path) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    url = f"{cluster.client.endpoint}/ApplicationTypes/$/Provision"
    body = {"ApplicationTypeBuildPath": str(package), "ReuseExisting": True}
    with ThreadPoolExecutor(4) as pool:
        codes = list(
            pool.map(lambda _: httpx.post(url, json=body, timeout=60).status_code, range(4))
        )
    assert codes.count(200) >= 1
    assert set(codes) <= {200, 409}, codes  # never a 500
    image_store = cluster.state_dir / "ImageStore"
    assert not list(image_store.rglob(".provision-*")), "staging folders left behind"


def test_a_program_written_windows_style_runs_as_the_check_resolved_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    code = package / "GuestPkg" / "Code"
    (code / "bin").mkdir()
    (code / "run.sh").rename(code / "bin" / "run.sh")
    manifest = package / "GuestPkg" / "ServiceManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            "<Program>run.sh</Program>", "<Program>\n   bin\\run.sh\n  </Program>"
        )
    )
    manifest.write_text(
        manifest.read_text().replace("<WorkingFolder>CodePackage</WorkingFolder>", "")
    )
    (code / "bin" / "run.sh").write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "$(dirname "$0")/../main.py"\n'
    )
    cluster.client.deploy(package, "fabric:/G")
    cluster.client.create_service(
        "fabric:/G",
        ServiceDescription(name="fabric:/G/Web", type_name="GuestType", kind=ServiceKind.STATELESS),
        wait=True,
    )


def test_package_problems_found_at_create_name_the_file_and_change_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    manifest = package / "GuestPkg" / "ServiceManifest.xml"
    manifest.write_text(
        manifest.read_text().replace('Name="GREETING" Value="unset"', 'Name="A=B" Value="1"')
    )
    with pytest.raises(ApiError, match=r"ServiceManifest.xml:\d+: environment variable 'A=B'"):
        cluster.client.deploy(package, "fabric:/G")
    assert cluster.client.applications() == []


def test_a_service_with_too_many_partitions_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    huge = ServiceDescription(
        name="fabric:/G/Huge",
        type_name="GuestType",
        kind=ServiceKind.STATELESS,
        partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
        partition_count=10**9,
        low_key=0,
        high_key=2**62,
    )
    with pytest.raises(ApiError, match="at most 10000"):
        cluster.client.create_service("fabric:/G", huge)
    assert cluster.client.services("fabric:/G") == []


def test_a_provision_that_fails_on_the_copy_leaves_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    code = package / "GuestPkg" / "Code"
    (code / "real.sh").write_text((code / "run.sh").read_text())
    (code / "real.sh").chmod(0o755)
    (code / "run.sh").unlink()
    (code / "run.sh").symlink_to(code / "real.sh")  # inside the source, outside any copy
    with pytest.raises(ApiError) as caught:
        cluster.client.provision(package)
    assert str(package) in caught.value.message, "the error names the user's own file"
    versions = list((cluster.state_dir / "ImageStore").glob("*/*"))
    assert versions == [], f"left in the image store: {versions}"


def test_an_undeclared_name_in_a_parameter_file_names_that_file_and_line(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fabrichost.cli import main

    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    params = tmp_path / "Local.xml"
    params.write_text(
        '<Application Name="fabric:/G" xmlns="http://schemas.microsoft.com/2011/01/fabric">\n'
        '  <Parameters>\n    <Parameter Name="Bogus" Value="1" />\n  </Parameters>\n'
        "</Application>\n"
    )
    code = main(
        [
            "app",
            "deploy",
            str(package),
            "--params-file",
            str(params),
            "--state-dir",
            str(cluster.state_dir),
        ]
    )
    assert code == 1
    assert f"{params}:3:" in capsys.readouterr().err
    assert cluster.client.applications() == []


def test_a_service_group_default_service_is_refused_not_dropped(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    manifest = package / "ApplicationManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            "</ApplicationManifest>",
            """
  <DefaultServices>
    <ServiceGroup Name="Group">
      <StatelessServiceGroup ServiceTypeName="GuestType" InstanceCount="1">
        <SingletonPartition />
        <Members><Member Name="A" ServiceTypeName="GuestType" /></Members>
      </StatelessServiceGroup>
    </ServiceGroup>
  </DefaultServices>
</ApplicationManifest>""",
        )
    )
    with pytest.raises(ApiError, match=r"ApplicationManifest.xml:\d+: ServiceGroup 'Group'"):
        cluster.client.deploy(package, "fabric:/G")
    assert cluster.client.application_types() == []


def test_a_folder_that_cannot_be_made_fails_the_create_cleanly(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    app_id = cluster.client.applications()[0]["TypeName"] + "_App1"
    blocker = cluster.state_dir / "_App" / "_Node_0" / app_id
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the application's folder belongs")
    description = ServiceDescription(
        name="fabric:/G/S", type_name="GuestType", kind=ServiceKind.STATELESS
    )
    with pytest.raises(ApiError, match="cannot be activated on _Node_0") as refused:
        cluster.client.create_service("fabric:/G", description)
    status = refused.value.status
    assert status is not None
    assert status < 500  # an activation failure, not an internal error
    assert cluster.client.services("fabric:/G") == []  # and nothing of it is left
    assert marked_processes(cluster.state_dir) == []
    blocker.unlink()
    cluster.client.create_service("fabric:/G", description, wait=True)  # a retry can succeed
