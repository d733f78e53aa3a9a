"""Application upgrades on a real agent, with real packages and processes (issue 11, item 1).

The packages are the samples copied into ``tmp_path`` with their versions edited, as a
developer bumps them: only what changed restarts, node by node; a version whose code exits at
once rolls back by itself; a changed ``Settings.xml`` reaches a service that takes config
changes without a restart.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from fabrichost.client import FabricClient
from fabrichost.daemon import start_background
from fabrichost.errors import ApiError, FabricHostError
from fabrichost.wire import (
    ActivationMode,
    AgentRecord,
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
)
from tests.integration.conftest import MANIFESTS, fh, write_guest_package, write_runtime_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

NODES = ("_Node_0", "_Node_1", "_Node_2")
SLEEPER = "import signal\nsignal.pause()\n"
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


def special_v2(tmp_path: Path, *, code_a: str = "1.0.1") -> Path:
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


def deploy_special(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    # A and A2 share MyCodePackageA's process on every node: its restart closes and reopens
    # both; B lives in MyCodePackageB's.
    for name, type_name in (
        ("A", "MyServiceTypeA"),
        ("A2", "MyServiceTypeA"),
        ("B", "MyServiceTypeB"),
    ):
        cluster.client.create_service(
            "fabric:/SpecialApp", _stateful(f"fabric:/SpecialApp/{name}", type_name), wait=True
        )


def _all_ready_with_one_primary(cluster: Cluster, app: str) -> None:
    _all_ready_with_one_primary_on(cluster.client, app)


def _all_ready_with_one_primary_on(client: FabricClient, app: str) -> None:
    for service in client.services(app):
        client.wait_service_ready(service["Name"], WAIT)
        for partition in client.partitions(service["Name"]):
            replicas = client.replicas(partition["PartitionInformation"]["Id"])
            assert all(r["ReplicaStatus"] == "Ready" for r in replicas), replicas
            roles = [r["ReplicaRole"] for r in replicas]
            assert roles.count("Primary") == 1, roles


def test_an_upgrade_restarts_only_the_changed_code_package_node_by_node(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_special(cluster3)
    before = _pids(cluster3, "fabric:/SpecialApp")
    assert len(before) == 6  # two code packages on each of three nodes

    code, out, err = fh(
        cluster3, capsys, "app", "upgrade", "fabric:/SpecialApp", str(special_v2(tmp_path))
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
    # MyCodePackageB still runs from 1.0.0's copy in the image store: it stays.
    with pytest.raises(ApiError, match="still run by code packages an upgrade kept"):
        cluster3.client.unprovision("SpecialAppType", "1.0.0")


def _exits_at_once(pkg: Path) -> None:
    launcher = pkg / "MultiTypeServicePackage" / "MyCodePackageA" / "launch.sh"
    launcher.write_text('#!/bin/sh\necho "version 1.0.1 is broken: no such module" >&2\nexit 3\n')
    launcher.chmod(0o755)


def test_an_upgrade_whose_new_code_exits_at_once_rolls_back_by_itself(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_special(cluster3)
    before = _pids(cluster3, "fabric:/SpecialApp")
    pkg = special_v2(tmp_path)
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


def test_a_package_of_another_application_type_is_refused_and_changes_nothing(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    # MyApp is MyAppType 1.0.0: taken as "version 1.0.0" it would have "upgraded"
    # fabric:/SpecialApp to SpecialAppType 1.0.0, the version it runs already, or any other.
    client = cluster.client
    client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    code, _, err = fh(
        cluster, capsys, "app", "upgrade", "fabric:/SpecialApp", str(MANIFESTS / "MyApp")
    )
    assert code == 2
    assert "is application type MyAppType; fabric:/SpecialApp is of type SpecialAppType" in err
    with pytest.raises(FabricHostError, match=r"is application type MyAppType 1\.0\.0"):
        client.upgrade_from_package(MANIFESTS / "MyApp", "fabric:/SpecialApp")

    progress = client.get_upgrade_progress("fabric:/SpecialApp")
    assert (progress["UpgradeState"], progress["TargetApplicationTypeVersion"]) == (
        "RollingForwardCompleted",
        "1.0.0",
    )
    assert [(t["Name"], t["Version"]) for t in client.application_types()] == [
        ("SpecialAppType", "1.0.0")
    ]


def test_a_package_whose_files_changed_under_the_same_version_is_refused_and_changes_nothing(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The developer's trap: new code, the code package's Version not bumped. The upgrade
    # would restart nothing for it and report success while the old code keeps running.
    client = cluster.client
    client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    pkg = special_v2(tmp_path, code_a="1.0.0")
    launcher = pkg / "MultiTypeServicePackage" / "MyCodePackageB" / "launch.sh"
    launcher.write_text(launcher.read_text() + "# edited, Version not bumped\n")

    code, _, err = fh(cluster, capsys, "app", "upgrade", "fabric:/SpecialApp", str(pkg))

    assert code == 1
    assert (
        "version 2.0.0 keeps the version of MultiTypeServicePackage code package "
        "MyCodePackageB 1.0.0 but not its files" in err
    )
    assert "MyCodePackageA" not in err  # unchanged files: kept rightly
    (app,) = client.applications()
    assert (app["TypeVersion"], app["Status"]) == ("1.0.0", "Ready")
    assert [(t["Name"], t["Version"]) for t in client.application_types()] == [
        ("SpecialAppType", "1.0.0")
    ]


def _versions(client: FabricClient, app: str) -> dict[str, set[str]]:
    """Node -> the versions of MyCodePackageA running there."""
    return {
        node: {
            cp["Version"]
            for cp in client.deployed_code_packages(node, app)
            if cp["Name"] == "MyCodePackageA"
        }
        for node in NODES
    }


def test_a_manual_upgrade_waits_between_nodes_and_an_agent_killed_meanwhile_runs_the_old_version(
    cluster3: Cluster, tmp_path: Path
) -> None:
    client = cluster3.client
    deploy_special(cluster3)
    client.provision(special_v2(tmp_path))
    client.upgrade_application("fabric:/SpecialApp", "2.0.0", mode="UnmonitoredManual")

    progress = client.wait_upgrade("fabric:/SpecialApp", WAIT)

    assert progress["UpgradeState"] == "RollingForwardPending"
    assert progress["NextUpgradeDomain"] == "_Node_1"
    assert [d["State"] for d in progress["UpgradeDomains"]] == ["Completed", "Pending", "Pending"]
    assert _versions(client, "fabric:/SpecialApp") == {
        "_Node_0": {"1.0.1"},
        "_Node_1": {"1.0.0"},
        "_Node_2": {"1.0.0"},
    }
    (app,) = client.applications()
    assert (app["TypeVersion"], app["Status"]) == ("1.0.0", "Upgrading")

    record = AgentRecord.read(cluster3.state_dir)
    assert record is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.AgentProcessId, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(record.AgentProcessId).wait(10)
    again = start_background(cluster3.state_dir, nodes=3, port=0)
    with FabricClient(again.Endpoint, timeout=60) as restarted:
        _all_ready_with_one_primary_on(restarted, "fabric:/SpecialApp")
        progress = restarted.get_upgrade_progress("fabric:/SpecialApp")
        assert (progress["UpgradeState"], progress["FailureReason"]) == (
            "RollingBackCompleted",
            "Interrupted",
        )
        assert progress["NextUpgradeDomain"] == ""  # over: it waits for no node any more
        (app,) = restarted.applications()
        assert (app["TypeVersion"], app["Status"]) == ("1.0.0", "Ready")
        assert _versions(restarted, "fabric:/SpecialApp") == {key: {"1.0.0"} for key in NODES}

        # The same upgrade again, told to go on twice: it completes.
        restarted.upgrade_application("fabric:/SpecialApp", "2.0.0", mode="UnmonitoredManual")
        for node in ("_Node_1", "_Node_2"):
            assert restarted.wait_upgrade("fabric:/SpecialApp", WAIT)["NextUpgradeDomain"] == node
            restarted.move_to_next_upgrade_domain("fabric:/SpecialApp", node)
        assert (
            restarted.wait_upgrade("fabric:/SpecialApp", WAIT)["UpgradeState"]
            == "RollingForwardCompleted"
        )
        assert _versions(restarted, "fabric:/SpecialApp") == {key: {"1.0.1"} for key in NODES}
        assert restarted.application("fabric:/SpecialApp")["TypeVersion"] == "2.0.0"


def test_an_upgrade_rolled_back_on_request_runs_the_old_version_everywhere(
    cluster3: Cluster, tmp_path: Path
) -> None:
    client = cluster3.client
    deploy_special(cluster3)
    client.provision(special_v2(tmp_path))
    client.upgrade_application("fabric:/SpecialApp", "2.0.0", mode="UnmonitoredManual")
    assert (
        client.wait_upgrade("fabric:/SpecialApp", WAIT)["UpgradeState"] == "RollingForwardPending"
    )

    client.rollback_upgrade("fabric:/SpecialApp")

    progress = client.wait_upgrade("fabric:/SpecialApp", WAIT)
    assert (progress["UpgradeState"], progress["FailureReason"]) == ("RollingBackCompleted", "None")
    assert _versions(client, "fabric:/SpecialApp") == {key: {"1.0.0"} for key in NODES}
    _all_ready_with_one_primary(cluster3, "fabric:/SpecialApp")
    with pytest.raises(ApiError, match="has no upgrade rolling forward"):
        client.rollback_upgrade("fabric:/SpecialApp")

    # An application deleted while its upgrade waits takes the upgrade along.
    client.upgrade_application("fabric:/SpecialApp", "2.0.0", mode="UnmonitoredManual")
    assert (
        client.wait_upgrade("fabric:/SpecialApp", WAIT)["UpgradeState"] == "RollingForwardPending"
    )
    client.delete_application("fabric:/SpecialApp")
    assert client.applications() == []
    client.create_application("fabric:/SpecialApp", "SpecialAppType", "1.0.0")
    progress = client.get_upgrade_progress("fabric:/SpecialApp")
    assert (progress["UpgradeState"], progress["TargetApplicationTypeVersion"]) == (
        "RollingForwardCompleted",
        "1.0.0",
    )


def test_a_parameter_that_changes_a_guest_s_environment_restarts_it_with_the_new_value(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    client.deploy(
        write_guest_package(tmp_path / "v1", script=SLEEPER, default_service=True), "fabric:/G"
    )
    client.wait_service_ready("fabric:/G/Web", WAIT)
    (cp,) = client.deployed_code_packages("_Node_0", "fabric:/G")
    old_pid = int(cp["MainEntryPoint"]["ProcessId"])
    v2 = write_guest_package(tmp_path / "v2", script=SLEEPER, default_service=True)
    _edit(
        v2 / "ApplicationManifest.xml",
        r'ApplicationTypeVersion="1.0.0"',
        'ApplicationTypeVersion="1.0.1"',
    )

    code, out, err = fh(
        cluster, capsys, "app", "upgrade", "fabric:/G", str(v2), "--param", "Greeting=bonjour"
    )

    assert code == 0, err
    assert "_Node_0: GuestPkg: code Code; restarted Code" in out
    (cp,) = client.deployed_code_packages("_Node_0", "fabric:/G")
    new_pid = int(cp["MainEntryPoint"]["ProcessId"])
    assert new_pid != old_pid
    assert psutil.Process(new_pid).environ()["GREETING"] == "bonjour"
    app = client.application("fabric:/G")
    assert (app["TypeVersion"], app["Parameters"]) == (
        "1.0.1",
        [{"Key": "Greeting", "Value": "bonjour"}],
    )


def test_a_package_whose_endpoints_changed_is_activated_again_and_every_replica_comes_back(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_special(cluster)
    (before,) = {
        p for (_, name), p in _pids_on(cluster, "_Node_0").items() if name == "MyCodePackageB"
    }
    pkg = special_v2(tmp_path)
    _edit(
        pkg / "MultiTypeServicePackage" / "ServiceManifest.xml",
        r"</Endpoints>",
        '  <Endpoint Name="Metrics" Protocol="tcp" Type="Internal" />\n    </Endpoints>',
    )

    code, out, err = fh(cluster, capsys, "app", "upgrade", "fabric:/SpecialApp", str(pkg))

    assert code == 0, err
    assert "activated again (its endpoints changed)" in out
    _all_ready_with_one_primary(cluster, "fabric:/SpecialApp")
    (after,) = {
        p for (_, name), p in _pids_on(cluster, "_Node_0").items() if name == "MyCodePackageB"
    }
    assert after != before
    (package,) = cluster.client.deployed_service_packages("_Node_0", "fabric:/SpecialApp")
    assert package["Version"] == "1.1.0"


def _pids_on(cluster: Cluster, node: str) -> dict[tuple[str, str], int]:
    return {
        (node, cp["Name"]): int(cp["MainEntryPoint"]["ProcessId"])
        for cp in cluster.client.deployed_code_packages(node, "fabric:/SpecialApp")
    }


def test_exclusive_activations_each_restart_only_the_changed_code_package(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    client.deploy(MANIFESTS / "SpecialApp", "fabric:/SpecialApp")
    desc = dataclasses.replace(
        _stateful("fabric:/SpecialApp/X", "MyServiceTypeA"),
        activation_mode=ActivationMode.EXCLUSIVE_PROCESS,
        partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
        partition_count=2,
        low_key=0,
        high_key=99,
    )
    client.create_service("fabric:/SpecialApp", desc, wait=True)

    def by_activation() -> dict[tuple[str, str], int]:
        return {
            (cp["ServicePackageActivationId"], cp["Name"]): int(cp["MainEntryPoint"]["ProcessId"])
            for cp in client.deployed_code_packages("_Node_0", "fabric:/SpecialApp")
        }

    # Every code package runs (B's start may still be under way: Ready waits for A's replicas).
    deadline = time.monotonic() + WAIT
    while 0 in (before := by_activation()).values() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 0 not in before.values(), before
    assert len({a for a, _ in before}) == 2  # one activation per partition's replica

    code, out, err = fh(
        cluster, capsys, "app", "upgrade", "fabric:/SpecialApp", str(special_v2(tmp_path))
    )

    assert code == 0, err
    after = by_activation()
    assert after.keys() == before.keys()  # the same activations, in place
    # One line per exclusive activation, each naming its own.
    for activation_id in {a for a, _ in before}:
        assert f"_Node_0: activation {activation_id}: MultiTypeServicePackage" in out, out
    for key, pid in before.items():
        assert (after[key] != pid) == (key[1] == "MyCodePackageA"), key
    client.wait_service_ready("fabric:/SpecialApp/X", WAIT)


HEALTHY = """
from fabrichost.runtime import StatefulService, run_host

class Svc(StatefulService):
    pass

run_host({"SvcType": Svc})
"""
REPORTS_ERROR = """
from fabrichost.runtime import StatefulService, run_host

class Svc(StatefulService):
    def open(self):
        self.report_health("Error", "Database", "cannot reach the database at db:5432")

run_host({"SvcType": Svc})
"""


def test_a_new_version_whose_service_reports_error_is_rolled_back(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = cluster.client
    client.deploy(
        write_runtime_package(tmp_path / "v1", {"Code": ("SvcType", HEALTHY)}), "fabric:/Rt"
    )
    client.create_service("fabric:/Rt", _stateful("fabric:/Rt/S", "SvcType"), wait=True)
    v2 = write_runtime_package(tmp_path / "v2", {"Code": ("SvcType", REPORTS_ERROR)})
    _edit(
        v2 / "ApplicationManifest.xml",
        r'ApplicationTypeVersion="1.0.0"',
        'ApplicationTypeVersion="2.0.0"',
    )
    _edit(
        v2 / "RtPkg" / "ServiceManifest.xml",
        r'<CodePackage Name="Code" Version="1.0.0">',
        '<CodePackage Name="Code" Version="2.0.0">',
    )

    code, _, err = fh(
        cluster,
        capsys,
        "app",
        "upgrade",
        "fabric:/Rt",
        str(v2),
        "--health-check-retry-timeout",
        "2",
    )

    assert code == 1
    assert "is in Error" in err
    assert "cannot reach the database at db:5432" in err
    progress = client.get_upgrade_progress("fabric:/Rt")
    assert (progress["UpgradeState"], progress["FailureReason"]) == (
        "RollingBackCompleted",
        "HealthCheck",
    )
    assert client.application("fabric:/Rt")["TypeVersion"] == "1.0.0"
    client.wait_service_ready("fabric:/Rt/S", WAIT)


def test_a_failed_check_under_a_manual_failure_action_waits_for_the_operator(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_special(cluster3)
    pkg = special_v2(tmp_path)
    _exits_at_once(pkg)

    code, out, err = fh(
        cluster3,
        capsys,
        "app",
        "upgrade",
        "fabric:/SpecialApp",
        str(pkg),
        "--failure-action",
        "Manual",
    )

    assert code == 1
    assert "waits to go on" in out
    assert "failed (HealthCheck); RollingForwardPending, 1.0.0 is in force" in err
    assert "version 1.0.1 is broken" in err
    assert _versions(cluster3.client, "fabric:/SpecialApp")["_Node_1"] == {"1.0.0"}

    code, out, _ = fh(cluster3, capsys, "app", "upgrade-rollback", "fabric:/SpecialApp")

    assert code == 0
    progress = cluster3.client.wait_upgrade("fabric:/SpecialApp", WAIT)
    assert progress["UpgradeState"] == "RollingBackCompleted"
    assert _versions(cluster3.client, "fabric:/SpecialApp") == {node: {"1.0.0"} for node in NODES}
    _all_ready_with_one_primary(cluster3, "fabric:/SpecialApp")


def test_a_domain_timeout_under_a_manual_failure_action_waits_and_can_be_rolled_back(
    cluster3: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_special(cluster3)
    pkg = special_v2(tmp_path)
    launcher = pkg / "MultiTypeServicePackage" / "MyCodePackageA" / "launch.sh"
    launcher.write_text("#!/bin/sh\nexec sleep 3600\n")  # runs, never registers its types
    launcher.chmod(0o755)

    code, out, err = fh(
        cluster3,
        capsys,
        "app",
        "upgrade",
        "fabric:/SpecialApp",
        str(pkg),
        "--failure-action",
        "Manual",
        "--upgrade-domain-timeout",
        "2",
    )

    assert code == 1
    assert "waits to go on" in out
    assert "failed (UpgradeDomainTimeout); RollingForwardPending, 1.0.0 is in force" in err
    assert "upgrade domain _Node_0 did not finish in 2 s" in err
    assert _versions(cluster3.client, "fabric:/SpecialApp")["_Node_1"] == {"1.0.0"}

    code, _, err = fh(cluster3, capsys, "app", "upgrade-rollback", "fabric:/SpecialApp")

    assert code == 0, err
    progress = cluster3.client.wait_upgrade("fabric:/SpecialApp", WAIT)
    assert progress["UpgradeState"] == "RollingBackCompleted"
    assert _versions(cluster3.client, "fabric:/SpecialApp") == {node: {"1.0.0"} for node in NODES}
    _all_ready_with_one_primary(cluster3, "fabric:/SpecialApp")
