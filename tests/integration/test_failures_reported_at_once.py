"""A create or deploy that waits reports a failure when it happens, with its cause.

A service whose ``open()`` raises, a guest executable that exits at once and a runtime host that
keeps exiting must not pass for healthy (a guest's replica is Ready while its process runs) nor
wait out the whole timeout: each waiting command is given 60 s, so an error that names the
service's own exception, or the code package's stderr, can only come from the failure as it was
reported, never from a timeout.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import (
    fh,
    runtime_host_script,
    write_guest_package,
    write_runtime_package,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

# Opens fail twice with the service's own exception, then succeed: the count is kept in the
# application's work folder, so it survives the replica's retries in the same host.
FLAKY_OPEN = """
import os
from pathlib import Path
from fabrichost.runtime import StatefulService, run_host

class Svc(StatefulService):
    def open(self):
        counter = Path(os.environ["Fabric_Folder_App_Work"]) / "opens"
        count = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(count))
        if count < 3:
            raise ConnectionRefusedError(f"database db.example:5432 unreachable (open {count})")
        return "tcp://db-ready"

run_host({"FlakyType": Svc})
"""


def _replicas(cluster: Cluster, service: str) -> list[dict[str, Any]]:
    return [
        r
        for p in cluster.client.partitions(service)
        for r in cluster.client.replicas(p["PartitionInformation"]["Id"])
    ]


def _ready_replica(cluster: Cluster, service: str) -> dict[str, Any] | None:
    (replica,) = _replicas(cluster, service)
    return replica if replica["ReplicaStatus"] == "Ready" else None


def _wait_for(check: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return value


def test_a_service_whose_open_raises_fails_the_waiting_create_with_its_own_error(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("FlakyType", FLAKY_OPEN)})
    code, _, err = fh(cluster, capsys, "app", "deploy", str(pkg), "--name", "fabric:/Flaky")
    assert code == 0, err
    service = "fabric:/Flaky/S"
    create = ["service", "create", service, "--type", "FlakyType", "--stateful"]
    code, _, err = fh(cluster, capsys, *create, "--replicas", "1", "--wait", "--timeout", "60")

    assert code == 1
    assert "ConnectionRefusedError: database db.example:5432 unreachable (open 1)" in err
    assert "not ready after" not in err  # reported, not timed out
    # The replica is opened again, with backoff, until its open succeeds (the third). (A wait
    # would report the failure again while it lasts: watch the replica instead.)
    replica = _wait_for(lambda: _ready_replica(cluster, service), "the third open", 60.0)
    assert replica["HealthState"] == "Ok"
    assert replica["Address"] == "tcp://db-ready"
    info = cluster.client.service(service)
    assert (info["HealthState"], info["HealthWarnings"]) == ("Ok", [])


def test_a_service_whose_open_keeps_raising_is_in_error_saying_why(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    always = FLAKY_OPEN.replace("if count < 3:", "if True:")
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("FlakyType", always)})
    code, _, err = fh(cluster, capsys, "app", "deploy", str(pkg), "--name", "fabric:/Flaky")
    assert code == 0, err
    service = "fabric:/Flaky/S"
    create = ["service", "create", service, "--type", "FlakyType", "--stateful"]
    code, _, err = fh(cluster, capsys, *create, "--replicas", "1", "--wait", "--timeout", "60")
    assert code == 1, err

    info = cluster.client.service(service)
    assert info["HealthState"] == "Error"
    assert any("ConnectionRefusedError" in w for w in info["HealthWarnings"])
    (replica,) = _replicas(cluster, service)
    assert (replica["ReplicaStatus"], replica["HealthState"]) == ("InBuild", "Error")
    assert "ConnectionRefusedError: database db.example" in replica["HealthDescription"]
    code, out, err = fh(cluster, capsys, "service", "show", service)
    assert code == 0, err
    assert "Error" in out
    assert "error: replica " in out
    assert "failed to open on _Node_0: ConnectionRefusedError: database db.example" in out


def test_a_guest_that_exits_at_once_fails_the_waiting_deploy_with_its_exit_code_and_stderr(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = write_guest_package(
        tmp_path / "pkg", script="def broken(:\n    pass\n", default_service=True
    )
    code, out, err = fh(cluster, capsys, "app", "deploy", str(pkg), "--name", "fabric:/G")

    assert code == 1, out
    assert "deployed" not in out
    assert "code package Code keeps failing (last exit code 1)" in err
    assert "SyntaxError" in err
    assert "def broken(:" in err


def test_a_runtime_host_that_keeps_exiting_is_reported_with_the_cause_from_its_log(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The host registers a misspelt type, which its package does not declare: refused, it exits.
    host = runtime_host_script("CountrType")
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("CounterType", host)})
    code, _, err = fh(cluster, capsys, "app", "deploy", str(pkg), "--name", "fabric:/C")
    assert code == 0, err
    create = ["service", "create", "fabric:/C/S", "--type", "CounterType", "--stateful"]
    code, _, err = fh(cluster, capsys, *create, "--replicas", "1", "--wait", "--timeout", "60")

    assert code == 1
    assert "code package Code keeps failing (last exit code 1)" in err
    assert "service type 'CountrType' is not declared by service package 'RtPkg'" in err
    assert "Error(re=" not in err  # the refusal as a reader wants it, not a repr
