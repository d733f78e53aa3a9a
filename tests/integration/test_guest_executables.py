"""Guest executables on a real agent: processes, environment, restarts, activation modes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.cli import main
from fabrichost.errors import ConflictError
from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind
from tests.integration.conftest import marked_processes, write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

SLEEPER = "import signal\nsignal.pause()\n"


def _web(
    name: str = "fabric:/G/Web",
    instances: int = 1,
    mode: ActivationMode = ActivationMode.SHARED_PROCESS,
) -> ServiceDescription:
    return ServiceDescription(
        name=name,
        type_name="GuestType",
        kind=ServiceKind.STATELESS,
        instance_count=instances,
        activation_mode=mode,
    )


def _pids(cluster: Cluster, app: str = "fabric:/G") -> dict[str, int]:
    pids = {}
    for node in cluster.client.nodes():
        for replica in cluster.client.deployed_replicas(node["Name"], app):
            pids[node["Name"]] = int(replica["HostProcessId"])
    return pids


def test_one_instance_per_node_runs_with_service_fabric_environment(
    cluster3: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "GuestApp", script=SLEEPER)
    cluster3.client.deploy(package, "fabric:/G", {"Greeting": "hi"})
    cluster3.client.create_service("fabric:/G", _web(instances=-1), wait=True, wait_timeout=30)

    pids = _pids(cluster3)
    assert sorted(pids) == ["_Node_0", "_Node_1", "_Node_2"]
    ports = set()
    for node, pid in pids.items():
        env = psutil.Process(pid).environ()
        assert env["Fabric_NodeName"] == node
        assert env["Fabric_ApplicationName"] == "fabric:/G"
        assert env["Fabric_CodePackageName"] == "Code"
        assert env["Fabric_ServicePackageName"] == "GuestPkg"
        assert env["Fabric_ServicePackageActivationId"] == ""
        assert env["GREETING"] == "hi"  # EnvironmentOverrides with [Greeting] substituted
        assert re.search(rf"{node}/GuestAppType_App\d+/work$", env["Fabric_Folder_App_Work"])
        assert os.path.isdir(env["Fabric_Folder_App_Log"])
        ports.add(env["Fabric_Endpoint_Web"])
        assert psutil.Process(pid).cwd().endswith("/Code")  # WorkingFolder=CodePackage
    assert len(ports) == 3  # allocated, never given twice


def test_a_killed_guest_comes_back_in_a_new_process(cluster: Cluster, tmp_path: Path) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "GuestApp", script=SLEEPER), "fabric:/G")
    cluster.client.create_service("fabric:/G", _web(), wait=True, wait_timeout=30)
    old = _pids(cluster)["_Node_0"]
    os.kill(old, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):  # the agent may have reaped it already
        psutil.Process(old).wait(10)

    cluster.client.wait_service_ready("fabric:/G/Web", timeout=30)
    new = _pids(cluster)["_Node_0"]
    assert new != old
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/G")
    stats = code_package["MainEntryPoint"]["CodePackageEntryPointStatistics"]
    assert int(stats["ExitCount"]) >= 1
    assert code_package["MainEntryPoint"]["ProcessId"] == str(new)


def test_setup_entry_point_runs_to_completion_before_the_main_one(
    cluster: Cluster, tmp_path: Path
) -> None:
    setup = "import os, pathlib\npathlib.Path('setup-ran').write_text(str(os.getpid()))\n"
    main_script = (
        "import pathlib, signal, sys\n"
        "sys.exit(3) if not pathlib.Path('setup-ran').exists() else signal.pause()\n"
    )
    package = write_guest_package(tmp_path / "GuestApp", script=main_script, setup=setup)
    cluster.client.deploy(package, "fabric:/G")
    cluster.client.create_service("fabric:/G", _web(), wait=True, wait_timeout=30)
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/G")
    assert code_package["HasSetupEntryPoint"] is True
    assert code_package["MainEntryPoint"]["CodePackageEntryPointStatistics"]["ExitCount"] == "0"


def test_exclusive_process_gets_an_activation_per_replica_and_is_deactivated_when_empty(
    cluster3: Cluster, tmp_path: Path
) -> None:
    cluster3.client.deploy(write_guest_package(tmp_path / "GuestApp", script=SLEEPER), "fabric:/G")
    cluster3.client.create_service("fabric:/G", _web(), wait=True, wait_timeout=30)
    cluster3.client.create_service(
        "fabric:/G",
        _web("fabric:/G/Solo", instances=-1, mode=ActivationMode.EXCLUSIVE_PROCESS),
        wait=True,
        wait_timeout=30,
    )
    for node in ("_Node_0", "_Node_1", "_Node_2"):
        ids = [
            p["ServicePackageActivationId"]
            for p in cluster3.client.deployed_service_packages(node, "fabric:/G")
        ]
        exclusive = [i for i in ids if i]
        assert len(exclusive) == 1
        assert exclusive[0] == exclusive[0].lower()
        assert len(exclusive[0]) == 36
    replicas = list(cluster3.client.deployed_replicas("_Node_0", "fabric:/G"))
    assert len({r["HostProcessId"] for r in replicas}) == len(replicas)  # isolated processes

    solo_pids = {
        int(r["HostProcessId"])
        for n in ("_Node_0", "_Node_1", "_Node_2")
        for r in cluster3.client.deployed_replicas(n, "fabric:/G")
        if r["ServiceName"] == "fabric:/G/Solo"
    }
    assert len(solo_pids) == 3
    cluster3.client.delete_service("fabric:/G/Solo")
    # The delete returns once the exclusive processes are gone, not merely asked to stop.
    alive = [
        p
        for p in solo_pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == []


def test_cli_deploy_errors_name_the_file_and_line(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    package = write_guest_package(tmp_path / "GuestApp", script=SLEEPER)
    manifest = package / "GuestPkg" / "ServiceManifest.xml"
    manifest.write_text(manifest.read_text().replace("<Program>run.sh", "<Program>missing.sh"))
    os.environ["FABRICHOST_STATE_DIR"] = str(cluster.state_dir)
    try:
        code = main(["app", "deploy", str(package), "--name", "fabric:/G"])
    finally:
        del os.environ["FABRICHOST_STATE_DIR"]
    err = capsys.readouterr().err
    assert code == 1
    assert "ServiceManifest.xml:" in err
    assert "missing.sh" in err
    assert cluster.client.applications() == []  # nothing half-provisioned
    assert cluster.client.application_types() == []


def test_cli_service_create_conflict_exits_3_and_names_the_existing_service(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "GuestApp", script=SLEEPER), "fabric:/G")
    args = [
        "service",
        "create",
        "fabric:/G/Web",
        "--type",
        "GuestType",
        "--stateless",
        "--state-dir",
        str(cluster.state_dir),
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 3
    assert "fabric:/G/Web already exists" in capsys.readouterr().err
    with pytest.raises(ConflictError) as info:
        cluster.client.create_service("fabric:/G", _web())
    assert info.value.code == "FABRIC_E_SERVICE_ALREADY_EXISTS"


def test_json_queries_use_service_fabric_field_names(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "GuestApp", script=SLEEPER), "fabric:/G")
    cluster.client.create_service("fabric:/G", _web(), wait=True, wait_timeout=30)
    base = ["--state-dir", str(cluster.state_dir), "--json"]
    assert main(["deployed", "code-packages", "--app", "fabric:/G", *base]) == 0
    (cp,) = json.loads(capsys.readouterr().out)
    assert {
        "Name",
        "ServiceManifestName",
        "ServicePackageActivationId",
        "HostType",
        "HostIsolationMode",
        "Status",
        "MainEntryPoint",
    } <= set(cp)
    assert {"ProcessId", "Status", "CodePackageEntryPointStatistics"} <= set(cp["MainEntryPoint"])
    assert main(["status", *base]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["AgentProcessId"] == cluster.agent_pid
    assert status["Endpoint"].startswith("http://127.0.0.1:")


def test_down_leaves_no_process_behind(cluster3: Cluster, tmp_path: Path) -> None:
    cluster3.client.deploy(write_guest_package(tmp_path / "GuestApp", script=SLEEPER), "fabric:/G")
    cluster3.client.create_service("fabric:/G", _web(instances=-1), wait=True, wait_timeout=30)
    assert len(marked_processes(cluster3.state_dir)) == 3
    assert main(["down", "--state-dir", str(cluster3.state_dir)]) == 0
    assert marked_processes(cluster3.state_dir) == []
    assert not psutil.pid_exists(cluster3.agent_pid) or (
        psutil.Process(cluster3.agent_pid).status() == "zombie"
    )


def test_a_second_deploy_reuses_the_type_but_changed_content_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "GuestApp", script=SLEEPER)
    cluster.client.deploy(package, "fabric:/G1")
    cluster.client.deploy(package, "fabric:/G2")
    assert len(cluster.client.application_types()) == 1
    assert {a["Name"] for a in cluster.client.applications()} == {"fabric:/G1", "fabric:/G2"}
    (package / "GuestPkg" / "Code" / "main.py").write_text(SLEEPER + "# changed\n")
    with pytest.raises(ConflictError, match="different content"):
        cluster.client.deploy(package, "fabric:/G3")
    assert len(cluster.client.applications()) == 2


def test_a_main_entry_point_that_keeps_exiting_0_does_not_spin(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script="pass\n"), "fabric:/G")
    cluster.client.create_service("fabric:/G", _web())
    time.sleep(2.0)  # a rate is measured over a window: there is no event to wait for
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/G")
    starts = int(
        code_package["MainEntryPoint"]["CodePackageEntryPointStatistics"]["ActivationCount"]
    )
    assert 1 <= starts <= 6, f"{starts} starts in about 2 s: the restart loop spins"


@pytest.mark.timeout(120)  # the shared activation's 10 s grace plus a loaded machine's slowness
def test_a_grandchild_that_left_the_process_group_goes_with_its_code_package(
    cluster: Cluster, tmp_path: Path
) -> None:
    script = (
        "import os, signal, subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'],"
        " start_new_session=True)\n"
        "signal.pause()\n"
    )
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=script), "fabric:/G")
    cluster.client.create_service("fabric:/G", _web(), wait=True, wait_timeout=30)
    deadline = time.monotonic() + 15
    while len(marked_processes(cluster.state_dir)) < 2:  # the grandchild is on its way
        assert time.monotonic() < deadline
        time.sleep(0.05)
    both = marked_processes(cluster.state_dir)
    cluster.client.delete_service("fabric:/G/Web")
    # A shared activation is deactivated after its 10 s grace, then SIGINT, then the sweep.
    _, alive = psutil.wait_procs(both, timeout=40)
    assert alive == [], "the setsid grandchild outlived its code package"
