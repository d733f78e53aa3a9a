"""Provisioning packages: concurrent provisions of one package, programs written as on
Windows, a copy that fails, and package problems that name their file and line (SPEC §2) in
the user's package, never in the image store copy."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import httpx
import pytest

from fabrichost.daemon import stop_background
from fabrichost.errors import ApiError
from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import write_guest_package
from tests.integration.test_durability import _restarted

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


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


@pytest.mark.parametrize("name", ["secret.txt", "rootdir"])
def test_a_link_out_of_the_package_is_refused_and_leaves_nothing(
    cluster: Cluster, tmp_path: Path, name: str
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the package's")
    target = str(outside) if name == "secret.txt" else "/"
    (package / "GuestPkg" / "Code" / name).symlink_to(target)
    with pytest.raises(ApiError) as caught:
        cluster.client.deploy(package, "fabric:/G")
    message = caught.value.message
    assert message.startswith(f"{package}: GuestPkg/Code/{name}: symbolic link to {target!r}")
    assert "leads outside the package" in message
    assert "ImageStore" not in message
    assert list((cluster.state_dir / "ImageStore").rglob("*")) == []
    assert cluster.client.application_types() == []
    assert cluster.client.applications() == []


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


def _counted_package(root: Path) -> tuple[Path, int]:
    """A guest package whose default service's InstanceCount is the parameter Count; and the
    line of the manifest that uses it."""
    package = write_guest_package(root, script=SLEEPER, default_service=True)
    manifest = package / "ApplicationManifest.xml"
    manifest.write_text(
        manifest.read_text()
        .replace("<Parameters>", '<Parameters><Parameter Name="Count" DefaultValue="1" />')
        .replace('InstanceCount="1"', 'InstanceCount="[Count]"')
    )
    lines = manifest.read_text().splitlines()
    return package, next(n for n, text in enumerate(lines, 1) if "[Count]" in text)


def test_a_bad_param_names_the_users_manifest_not_the_image_store_copy(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fabrichost.cli import main

    package, line = _counted_package(tmp_path / "G")
    state = ["--state-dir", str(cluster.state_dir)]
    assert main(["app", "deploy", str(package), "--param", "Count=abc", *state]) == 1
    err = capsys.readouterr().err
    assert f"{package}/ApplicationManifest.xml:{line}: InstanceCount" in err
    assert "ImageStore" not in err
    assert cluster.client.applications() == []
    assert cluster.client.application_types() == []  # the deploy took its type back


def test_a_program_missing_at_create_names_the_users_service_manifest(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    manifest = package / "GuestPkg" / "ServiceManifest.xml"
    manifest.write_text(
        manifest.read_text().replace(
            "<ExeHost>\n        <Program>run.sh</Program>",
            '<ExeHost IsExternalExecutable="true">\n        <Program>no-such-program</Program>',
        )
    )
    with pytest.raises(ApiError) as caught:
        cluster.client.deploy(package, "fabric:/G")
    message = caught.value.message
    assert message.startswith(f"{manifest}:"), message
    assert "external program 'no-such-program' not found" in message
    assert "ImageStore" not in message
    assert cluster.client.applications() == []


def test_a_type_restored_after_a_restart_is_named_by_its_type_in_errors(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The agent no longer knows the build path: the package is named relative to itself."""
    package, line = _counted_package(tmp_path / "G")
    cluster.client.provision(package)
    stop_background(cluster.state_dir)
    with _restarted(cluster.state_dir) as client:
        with pytest.raises(ApiError) as caught:
            client.create_application("fabric:/G", "GuestAppType", "1.0.0", {"Count": "abc"})
        message = caught.value.message
        assert message.startswith(f"GuestAppType/ApplicationManifest.xml:{line}: InstanceCount")
        assert "ImageStore" not in message
        assert client.applications() == []


def test_a_program_that_cannot_start_is_named_in_the_users_package(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER, default_service=True)
    program = package / "GuestPkg" / "Code" / "run.sh"
    program.write_text("echo no interpreter line\n")  # exec fails: Exec format error
    cluster.client.deploy(package, "fabric:/G")
    deadline = time.monotonic() + 60
    while True:  # until the agent has tried to start it and says why it is not ready
        with pytest.raises(ApiError) as caught:
            cluster.client.wait_service_ready("fabric:/G/Web", 1)
        if "cannot start" in caught.value.message or time.monotonic() > deadline:
            break
    message = caught.value.message
    assert f"cannot start {program} (working folder {program.parent})" in message, message
    assert "ImageStore" not in message
