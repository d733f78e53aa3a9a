"""Two clusters on one machine, each with its own state directory, never share a port."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import psutil
import pytest

from fabrichost.wire import ServiceDescription, ServiceKind
from tests.integration.conftest import write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # generous: only reached when something is broken

# Binds its endpoint only once the test says so (GREETING names the file), so both clusters
# allocate before either binds: the real bind check alone cannot keep them apart then.
LISTENER = """
import os, pathlib, signal, socket, time
go = pathlib.Path(os.environ["GREETING"])
while not go.exists():
    time.sleep(0.02)
sock = socket.socket()
sock.bind(("127.0.0.1", int(os.environ["Fabric_Endpoint_Web"])))
sock.listen()
signal.pause()
"""


def _listening_port(cluster: Cluster) -> int | None:
    """The port the guest of ``cluster`` listens on, if its process is running and listening."""
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/P")
    pid = code_package["MainEntryPoint"]["ProcessId"]
    if not pid:
        return None
    with contextlib.suppress(psutil.Error):
        for conn in psutil.Process(int(pid)).net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                return int(conn.laddr.port)
    return None


@pytest.mark.timeout(120)
def test_two_clusters_give_their_services_different_ports_and_both_run(
    cluster: Cluster, other_cluster: Cluster, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    package = write_guest_package(tmp_path / "App", script=LISTENER)
    web = ServiceDescription(
        name="fabric:/P/Web", type_name="GuestType", kind=ServiceKind.STATELESS, instance_count=1
    )
    for c in (cluster, other_cluster):
        c.client.deploy(package, "fabric:/P", {"Greeting": str(go)})
        c.client.create_service("fabric:/P", web, wait=True, wait_timeout=30)
    ports = [
        int(psutil.Process(_main_pid(c)).environ()["Fabric_Endpoint_Web"])
        for c in (cluster, other_cluster)
    ]
    assert ports[0] != ports[1]
    go.touch()
    end = time.monotonic() + DEADLINE
    while [_listening_port(c) for c in (cluster, other_cluster)] != ports:
        assert time.monotonic() < end, "both services did not come to listen on their ports"
        time.sleep(0.05)


def _main_pid(cluster: Cluster) -> int:
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/P")
    return int(code_package["MainEntryPoint"]["ProcessId"])
