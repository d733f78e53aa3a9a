"""Application upgrades on a real agent, with real packages and processes (issue 11, item 1).

The packages are the samples copied into ``tmp_path`` with their versions edited, as a
developer bumps them: only what changed restarts, node by node; a version whose code exits at
once rolls back by itself; a changed ``Settings.xml`` reaches a service that takes config
changes without a restart.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from typing import TYPE_CHECKING, Any

import pytest

from fabrichost.errors import ApiError
from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import MANIFESTS, fh

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

NODES = ("_Node_0", "_Node_1", "_Node_2")
WAIT = 60.0


def _stateful(name: str, type_name: str) -> ServiceDescription:
    return ServiceDescription(
        name=name,
        type_name=type_name,
        kind=ServiceKind.STATEFUL,
        activation_mode=ActivationMode.SHARED_PROCESS,
        partition_scheme=PartitionScheme.SINGLETON,
        partition_count=1,
        target_replica_set_size=3,
        min_replica_set_size=2,
        has_persisted_state=True,
    )


def _copy(sample: str, dest: Path) -> Path:
    shutil.copytree(MANIFESTS / sample, dest)
    return dest


def _edit(file: Path, pattern: str, replacement: str) -> None:
    text = file.read_text()
    changed, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"{pattern!r} not found in {file}"
    file.write_text(changed)


def _special_v2(tmp_path: Path, *, code_a: str = "1.0.1") -> Path:
    """SpecialApp 2.0.0: MyCodePackageA at ``code_a``, MyCodePackageB unchanged."""
    pkg = _copy("SpecialApp", tmp_path / "v2" / "SpecialApp")
    manifest = pkg / "MultiTypeServicePackage" / "ServiceManifest.xml"
    _edit(
        pkg / "ApplicationManifest.xml",
        r'ApplicationTypeVersion="1.0.0"',
        'ApplicationTypeVersion="2.0.0"',
    )
    _edit(
        pkg / "ApplicationManifest.xml",
        r'ServiceManifestVersion="1.0.0"',
        'ServiceManifestVersion="1.1.0"',
    )
    _edit(
        manifest,
        r'Name="MultiTypeServicePackage"\s+Version="1.0.0"',
        'Name="MultiTypeServicePackage"\n                 Version="1.1.0"',
    )
    _edit(
        manifest,
        r'<CodePackage Name="MyCodePackageA" Version="1.0.0">',
        f'<CodePackage Name="MyCodePackageA" Version="{code_a}">',
    )
    return pkg


def _pids(cluster: Cluster, app: str) -> dict[tuple[str, str], int]:
    """(node, code package) -> the pid of its running process."""
    found = {}
    for node in NODES:
        for cp in cluster.client.deployed_code_packages(node, app):
            found[(node, cp["Name"])] = int(cp["MainEntryPoint"]["ProcessId"])
    return found


def _deploy_special(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    for name, type_name in (("A", "MyServiceTypeA"), ("B", "MyServiceTypeB")):
        cluster.client.create_service(
            "fabric:/SpecialApp", _stateful(f"fabric:/SpecialApp/{name}", type_name), wait=True
        )


def _all_ready_with_one_primary(cluster: Cluster, app: str) -> None:
    for service in cluster.client.services(app):
        cluster.client.wait_service_ready(service["Name"], WAIT)
        for partition in cluster.client.partitions(service["Name"]):
            replicas = cluster.client.replicas(partition["PartitionInformation"]["Id"])
            assert all(r["ReplicaStatus"] == "Ready" for r in replicas), replicas
            roles = [r["ReplicaRole"] for r in replicas]
            assert roles.count("Primary") == 1, roles


def test_an_upgrade_restarts_only_the_changed_code_package_node_by_node(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_special(cluster3)
    before = _pids(cluster3, "fabric:/SpecialApp")
    assert len(before) == 6  # two code packages on each of three nodes

    code, out, err = fh(
        cluster3, capsys, "app", "upgrade", "fabric:/SpecialApp", str(_special_v2(tmp_path))
    )

    assert code == 0, err
    assert "upgraded fabric:/SpecialApp to 2.0.0" in out
    after = _pids(cluster3, "fabric:/SpecialApp")
    for node in NODES:
        assert after[(node, "MyCodePackageA")] != before[(node, "MyCodePackageA")], node
        assert after[(node, "MyCodePackageB")] == before[(node, "MyCodePackageB")], node
    code, out, _ = fh(cluster3, capsys, "app", "list", "--json")
    (app,) = json.loads(out)
    assert (app["TypeVersion"], app["Status"]) == ("2.0.0", "Ready")
    progress = cluster3.client.get_upgrade_progress("fabric:/SpecialApp")
    assert progress["UpgradeState"] == "RollingForwardCompleted"
    assert [d["State"] for d in progress["UpgradeDomains"]] == ["Completed"] * 3
    # Node by node, in order, each restarting MyCodePackageA alone.
    restarted = [line for line in progress["Details"] if "restarted" in line]
    assert [line.split(":")[0] for line in restarted] == list(NODES)
    assert all(
        "restarted MyCodePackageA" in line and "MyCodePackageB" not in line.split("restarted")[1]
        for line in restarted
    )
    _all_ready_with_one_primary(cluster3, "fabric:/SpecialApp")
    versions = {
        cp["Version"]
        for node in NODES
        for cp in cluster3.client.deployed_code_packages(node, "fabric:/SpecialApp")
        if cp["Name"] == "MyCodePackageA"
    }
    assert versions == {"1.0.1"}


def _exits_at_once(pkg: Path) -> None:
    launcher = pkg / "MultiTypeServicePackage" / "MyCodePackageA" / "launch.sh"
    launcher.write_text('#!/bin/sh\necho "version 1.0.1 is broken: no such module" >&2\nexit 3\n')
    launcher.chmod(0o755)


def test_an_upgrade_whose_new_code_exits_at_once_rolls_back_by_itself(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_special(cluster3)
    before = _pids(cluster3, "fabric:/SpecialApp")
    pkg = _special_v2(tmp_path)
    _exits_at_once(pkg)

    code, out, err = fh(
        cluster3,
        capsys,
        "app",
        "upgrade",
        "fabric:/SpecialApp",
        str(pkg),
        "--health-check-retry-timeout",
        "30",
    )

    assert code == 1, out
    assert "failed (HealthCheck)" in err
    assert "RollingBackCompleted, 1.0.0 is in force" in err
    assert "version 1.0.1 is broken" in err  # the cause: the end of the code package's stderr
    progress = cluster3.client.get_upgrade_progress("fabric:/SpecialApp")
    assert progress["UpgradeState"] == "RollingBackCompleted"
    assert progress["FailureReason"] == "HealthCheck"
    # It failed on the first node: the others never ran the new version.
    assert progress["UpgradeDomainProgressAtFailure"]["DomainName"] == "_Node_0"
    assert [d["State"] for d in progress["UpgradeDomains"]] == ["Completed", "Pending", "Pending"]
    (app,) = cluster3.client.applications()
    assert (app["TypeVersion"], app["Status"]) == ("1.0.0", "Ready")
    _all_ready_with_one_primary(cluster3, "fabric:/SpecialApp")
    after = _pids(cluster3, "fabric:/SpecialApp")
    for node in ("_Node_1", "_Node_2"):  # never touched
        assert after[(node, "MyCodePackageA")] == before[(node, "MyCodePackageA")]
    versions = {
        cp["Version"]
        for node in NODES
        for cp in cluster3.client.deployed_code_packages(node, "fabric:/SpecialApp")
    }
    assert versions == {"1.0.0"}
    code, out, _ = fh(cluster3, capsys, "app", "upgrade-status", "fabric:/SpecialApp")
    assert code == 0
    assert "RollingBackCompleted" in out
    assert "version in force 1.0.0, target 2.0.0" in out


def _greeting(address: str) -> dict[str, Any]:
    host, port = address.removeprefix("tcp://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"who\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "the service closed the connection"
            data += chunk
    return dict(json.loads(data))


def _my_app(root: Path, version: str, greeting: str) -> Path:
    """MyApp at ``version`` whose Settings.xml says ``greeting`` (no override of it)."""
    pkg = _copy("MyApp", root / "MyApp")
    app_manifest = pkg / "ApplicationManifest.xml"
    text = app_manifest.read_text()
    text = re.sub(r"<ConfigOverrides>.*</ConfigOverrides>", "", text, flags=re.S)
    text = text.replace('ApplicationTypeVersion="1.0.0"', f'ApplicationTypeVersion="{version}"')
    app_manifest.write_text(text)
    _edit(
        pkg / "MyServicePackage" / "Config" / "Settings.xml",
        r'Value="hello"',
        f'Value="{greeting}"',
    )
    return pkg


def test_a_changed_settings_file_reaches_a_subscribed_service_without_a_restart(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    client.deploy(_my_app(tmp_path / "v1", "1.0.0", "hello"), "fabric:/App1")
    client.create_service("fabric:/App1", _stateful("fabric:/App1/S", "MyServiceType"), wait=True)
    (partition,) = client.partitions("fabric:/App1/S")
    (replica,) = client.replicas(partition["PartitionInformation"]["Id"])
    first = _greeting(replica["Address"])
    assert first["greeting"] == "hello"
    v2 = _my_app(tmp_path / "v2", "1.1.0", "bonjour")
    _edit(
        v2 / "MyServicePackage" / "ServiceManifest.xml",
        r'<ConfigPackage Name="Config" Version="1.0.0"',
        '<ConfigPackage Name="Config" Version="1.0.1"',
    )

    code, out, err = fh(cluster, capsys, "app", "upgrade", "fabric:/App1", str(v2))

    assert code == 0, err
    assert "config delivered to MyCodePackage" in out
    assert "restarted" not in out
    now = _greeting(replica["Address"])
    assert now["greeting"] == "bonjour"
    assert now["pid"] == first["pid"]  # the same process, told over its channel
    (app,) = client.applications()
    assert app["TypeVersion"] == "1.1.0"


def test_an_upgrade_to_the_version_in_force_or_an_unknown_one_changes_nothing(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    code, _, err = fh(
        cluster, capsys, "app", "upgrade", "fabric:/SpecialApp", str(MANIFESTS / "SpecialApp")
    )
    assert code == 2
    assert "runs SpecialAppType 1.0.0 already: bump ApplicationTypeVersion" in err
    with pytest.raises(ApiError, match=r"version 9\.9\.9 is not provisioned"):
        client.upgrade_application("fabric:/SpecialApp", "9.9.9")
    with pytest.raises(ApiError, match=r"runs SpecialAppType 1\.0\.0 already"):
        client.upgrade_application("fabric:/SpecialApp", "1.0.0")
    assert (
        client.get_upgrade_progress("fabric:/SpecialApp")["UpgradeState"]
        == "RollingForwardCompleted"
    )
    assert [t["Version"] for t in client.application_types()] == ["1.0.0"]
