"""Hosts are not trusted, and hosts do not outlive their agent (SPEC §4)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import runtime_host_script, write_runtime_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

# A host that says hello properly and then sends a frame whose length is absurd.
GARBAGE_HOST = """
import json, os, socket, struct, signal
sock = socket.socket(fileno=int(os.environ["FABRICHOST_CHANNEL_FD"]))
hello = json.dumps({"type": "Hello", "id": 1, "versions": [1], "pid": os.getpid(),
                    "runtime": "garbage"}).encode()
sock.sendall(struct.pack(">I", len(hello)) + hello)
sock.sendall(struct.pack(">I", 2**31) + b"garbage")
signal.pause()
"""


def _stateful(name: str, type_name: str) -> ServiceDescription:
    return ServiceDescription(
        name=name, type_name=type_name, kind=ServiceKind.STATEFUL, target_replica_set_size=1
    )


def _host_pid(cluster: Cluster, service: str) -> int:
    (replica,) = [
        r
        for r in cluster.client.deployed_replicas("_Node_0", "fabric:/Rt")
        if r["ServiceName"] == service
    ]
    return int(replica["HostProcessId"])


def test_a_host_sending_garbage_is_faulted_alone(cluster: Cluster, tmp_path: Path) -> None:
    package = write_runtime_package(
        tmp_path / "Rt",
        {
            "Good": ("GoodType", runtime_host_script("GoodType")),
            "Bad": ("BadType", GARBAGE_HOST),
        },
    )
    cluster.client.deploy(package, "fabric:/Rt")
    cluster.client.create_service(
        "fabric:/Rt", _stateful("fabric:/Rt/Good", "GoodType"), wait=True, wait_timeout=30
    )
    good_pid = _host_pid(cluster, "fabric:/Rt/Good")

    def bad_entry_point() -> dict[str, object]:
        cps = cluster.client.deployed_code_packages("_Node_0", "fabric:/Rt")
        (bad,) = [cp for cp in cps if cp["Name"] == "Bad"]
        return dict(bad["MainEntryPoint"])

    # The bad host is faulted (killed) and restarted, again and again: wait on each incarnation
    # to end until two have, with a deadline.
    deadline = time.monotonic() + 30
    while True:
        entry = bad_entry_point()
        stats = entry["CodePackageEntryPointStatistics"]
        assert isinstance(stats, dict)
        if int(stats["ExitCount"]) >= 2:
            break
        assert time.monotonic() < deadline, f"the bad host was not faulted: {entry}"
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, ValueError):
            psutil.Process(int(str(entry["ProcessId"]))).wait(timeout=5)
    # ... while the good host and its replica are untouched, and the agent still serves.
    cluster.client.wait_service_ready("fabric:/Rt/Good", timeout=10)
    assert _host_pid(cluster, "fabric:/Rt/Good") == good_pid
    assert psutil.Process(good_pid).is_running()
    log = (cluster.state_dir / "agent.log").read_text()
    assert "protocol violation" in log


def test_runtime_hosts_exit_when_their_agent_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    package = write_runtime_package(
        tmp_path / "Rt",
        {
            "Good": ("GoodType", runtime_host_script("GoodType")),
        },
    )
    cluster.client.deploy(package, "fabric:/Rt")
    cluster.client.create_service(
        "fabric:/Rt", _stateful("fabric:/Rt/Good", "GoodType"), wait=True, wait_timeout=30
    )
    host = psutil.Process(_host_pid(cluster, "fabric:/Rt/Good"))
    os.kill(cluster.agent_pid, signal.SIGKILL)
    _, alive = psutil.wait_procs([host], timeout=15)
    assert not alive, "a runtime host must exit when its channel reaches EOF"


def test_a_faulted_host_counts_as_a_failure_and_backs_off(cluster: Cluster, tmp_path: Path) -> None:
    package = write_runtime_package(tmp_path / "Rt", {"Bad": ("BadType", GARBAGE_HOST)})
    cluster.client.deploy(package, "fabric:/Rt")
    cluster.client.create_service("fabric:/Rt", _stateful("fabric:/Rt/Bad", "BadType"))
    deadline = time.monotonic() + 30
    while True:
        (bad,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/Rt")
        stats = bad["MainEntryPoint"]["CodePackageEntryPointStatistics"]
        if int(stats["ExitFailureCount"]) >= 2:
            break
        assert time.monotonic() < deadline, stats
        pid = int(bad["MainEntryPoint"]["ProcessId"])
        with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired, ValueError):
            psutil.Process(pid).wait(timeout=5)
    assert bad["HealthState"] in ("Warning", "Error"), "a faulted host is not healthy"
    # Backoff: 0.5 s, then 1 s, ... so a handful of starts, not hundreds.
    assert int(stats["ActivationCount"]) <= 6, stats
