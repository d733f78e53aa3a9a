"""A create is whole or nothing: refused input, a package problem found at create, an
activation that fails, a delete racing the create or a crash just after the commit leave either
the whole entity or no trace of it (SPEC §2, §6, §9)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.agent._crash import ENV as CRASH_ENV
from fabrichost.errors import ApiError, FabricHostError
from fabrichost.wire import PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import marked_processes, write_guest_package
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
