"""Deleting an application while other requests touch it: it goes whole, and nothing slips in.

An application delete waits for its services' processes to stop (a stubborn one for the whole
stop grace), which leaves room for requests about the same application to arrive meanwhile.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.errors import NotFoundError
from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind

from .conftest import MANIFESTS, job_processes, marked_processes, write_guest_package

if TYPE_CHECKING:
    from collections.abc import Callable

    from .beacon import Beacon
    from .conftest import Cluster

pytestmark = pytest.mark.integration

# Ignores SIGINT, so stopping it takes the whole stop grace before SIGKILL.
STUBBORN = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nsignal.pause()\n"


def _wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _status(cluster: Cluster, app: str) -> str | None:
    return next((a["Status"] for a in cluster.client.applications() if a["Name"] == app), None)


def _stateless(
    name: str, mode: ActivationMode = ActivationMode.SHARED_PROCESS
) -> ServiceDescription:
    return ServiceDescription(
        name=name, type_name="GuestType", kind=ServiceKind.STATELESS, activation_mode=mode
    )


def _ignores_sigint(proc: psutil.Process) -> bool:
    """Whether the kernel says ``proc`` ignores SIGINT (``SigIgn`` in /proc/<pid>/status)."""
    try:
        status = Path(f"/proc/{proc.pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask, 16) & (1 << (signal.SIGINT - 1)))


def _delete_in_background(cluster: Cluster, app: str) -> tuple[threading.Thread, list[object]]:
    # A guest counts as started once spawned, before its script ran: a SIGINT sent before it
    # ignores the signal would stop it at once, and there would be no delete to act during.
    _wait_until(lambda: all(_ignores_sigint(p) for p in marked_processes(cluster.state_dir)))
    result: list[object] = []

    def delete() -> None:
        try:
            cluster.client.delete_application(app)
            result.append("deleted")
        except Exception as exc:  # reported to the test thread
            result.append(exc)

    thread = threading.Thread(target=delete)
    thread.start()
    _wait_until(lambda: _status(cluster, app) == "Deleting")
    return thread, result


def test_deleting_an_application_terminates_its_singleton_instances(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    cluster.client.start_instance("EternalJob", "e1", {})
    cluster.client.wait_service_ready("fabric:/Jobs/e1", 30)
    cluster.client.delete_application("fabric:/Jobs")
    assert "fabric:/Jobs" not in [a["Name"] for a in cluster.client.applications()]
    status = cluster.client.instance_status("e1")
    assert status is not None
    assert status["runtimeStatus"] == "Terminated"
    assert job_processes(cluster.state_dir, "e1") == []


def test_a_service_deleted_while_its_application_is_deleted_does_not_fail_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=STUBBORN), "fabric:/G")
    slow = _stateless("fabric:/G/Slow", ActivationMode.EXCLUSIVE_PROCESS)
    cluster.client.create_service("fabric:/G", slow, wait=True)
    cluster.client.create_service("fabric:/G", _stateless("fabric:/G/Other"), wait=True)
    thread, result = _delete_in_background(cluster, "fabric:/G")
    try:
        # The application delete is waiting out a stubborn process; delete a service meanwhile.
        # Its services are deleted side by side, so this one may be gone already.
        with contextlib.suppress(NotFoundError):
            cluster.client.delete_service("fabric:/G/Other")
    finally:
        thread.join(timeout=60)
    assert result == ["deleted"]
    assert cluster.client.applications() == []
    assert marked_processes(cluster.state_dir) == []


def test_no_service_is_created_in_an_application_being_deleted(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=STUBBORN), "fabric:/G")
    slow = _stateless("fabric:/G/Slow", ActivationMode.EXCLUSIVE_PROCESS)
    cluster.client.create_service("fabric:/G", slow, wait=True)
    thread, result = _delete_in_background(cluster, "fabric:/G")
    try:
        with pytest.raises(NotFoundError, match="is being deleted") as refused:
            cluster.client.create_service("fabric:/G", _stateless("fabric:/G/Late"))
        assert refused.value.code == "FABRIC_E_APPLICATION_NOT_FOUND"
    finally:
        thread.join(timeout=60)
    assert result == ["deleted"]
    assert marked_processes(cluster.state_dir) == []


def test_an_application_delete_stops_its_services_side_by_side(
    cluster: Cluster, tmp_path: Path, beacon: Beacon
) -> None:
    # Two exclusive processes that ignore SIGINT: each is SIGKILLed only after the stop grace
    # (5 s). One service after another, the second would get its SIGINT only once the first
    # was killed; side by side, both get theirs while both still run.
    package = write_guest_package(tmp_path / "G", script=beacon.guest_script(ignore_sigint=True))
    cluster.client.deploy(package, "fabric:/G")
    for name in ("fabric:/G/A", "fabric:/G/B"):
        cluster.client.create_service(
            "fabric:/G", _stateless(name, ActivationMode.EXCLUSIVE_PROCESS), wait=True
        )
    # Both have installed their SIGINT handler once they said "start".
    started = {beacon.wait("start", timeout=60), beacon.wait("start", timeout=60)}
    result: list[object] = []

    def delete() -> None:
        cluster.client.delete_application("fabric:/G")
        result.append("deleted")

    thread = threading.Thread(target=delete)
    thread.start()
    try:
        first = beacon.wait("sigint", timeout=60)
        second = beacon.wait("sigint", timeout=60)
        assert {first, second} == started
        assert psutil.pid_exists(first), "the first was killed before the second was asked"
    finally:
        thread.join(timeout=60)
    assert result == ["deleted"]
    assert marked_processes(cluster.state_dir) == []
