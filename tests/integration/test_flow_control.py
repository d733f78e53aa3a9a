"""A busy host is paced, not faulted (issue 13, ``docs/protocol.md`` §7b).

The host here is the Python runtime with a sleep in its read loop (its program slows
``StreamReader.read`` down: 8 KiB at most per read, 5 ms before each). A create of 300 replicas
with 8 KB of initialization data each sends it 2.4 MB of ``OpenReplica``: the agent used to
queue them all at once and fault the host for falling 1 MiB behind (then the next one, and the
next). Paced, the one host opens them all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent import AgentSettings
from fabrichost.agent import Cluster as AgentCluster
from fabrichost.wire import PartitionScheme, ServiceDescription, ServiceKind
from tests.integration.conftest import write_runtime_package

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.beacon import Beacon
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

REPLICAS = 300

SLOW_READER = """
import asyncio
from fabrichost.runtime import StatefulService, run_host

_read = asyncio.StreamReader.read


async def slow_read(self, n=-1):
    await asyncio.sleep(0.005)  # a busy host: it reads its channel late, but it reads
    return await _read(self, 8192 if n < 0 else min(n, 8192))


asyncio.StreamReader.read = slow_read


class Svc(StatefulService):
    def open(self):
        return f"replica://{self.context.replica_id}"


run_host({"SlowType": Svc})
"""


def test_issue_13_a_host_that_reads_slowly_is_paced_and_opens_every_replica(
    cluster: Cluster, tmp_path: Path
) -> None:
    pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("SlowType", SLOW_READER)})
    cluster.client.deploy(pkg, "fabric:/Slow")
    description = ServiceDescription(
        name="fabric:/Slow/S",
        type_name="SlowType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=1,
        partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
        partition_count=REPLICAS,
        low_key=0,
        high_key=REPLICAS - 1,
        init_data="x" * 8000,
    )
    cluster.client.create_service("fabric:/Slow", description, wait=True, wait_timeout=180)

    replicas = cluster.client.deployed_replicas("_Node_0", "fabric:/Slow")
    assert len(replicas) == REPLICAS
    assert {r["ReplicaStatus"] for r in replicas} == {"Ready"}
    assert len({r["HostProcessId"] for r in replicas}) == 1  # one host, never replaced
    log = (cluster.state_dir / "agent.log").read_text(errors="replace")
    assert "faulting host" not in log


# Its first replica's open (a coroutine: it runs on the host's event loop) blocks that loop after
# telling the beacon: from then on the host reads nothing.
HANGS = """
import os, socket, time
from fabrichost.runtime import StatefulService, run_host


class Svc(StatefulService):
    async def open(self):
        if self.context.service_name.endswith("/Hang"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect({address!r})
            s.sendall(f"hung {{os.getpid()}}\\n".encode())
            s.close()
            time.sleep(3600)
        return "replica://open"


run_host({{"HangType": Svc}})
"""


@pytest.mark.anyio
async def test_issue_13_a_host_that_stopped_reading_is_faulted_saying_so(
    tmp_path: Path, beacon: Beacon, caplog: pytest.LogCaptureFixture
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = AgentCluster(state_dir, AgentSettings(host_stall_timeout=1.0))
    try:
        script = HANGS.format(address=beacon.address)
        pkg = write_runtime_package(tmp_path / "pkg", {"Code": ("HangType", script)})
        ptype = await cluster.types.provision(pkg)
        await cluster.catalog.create_application("fabric:/H", ptype.name, ptype.version, {})
        one = ServiceDescription(
            name="fabric:/H/Hang", type_name="HangType", kind=ServiceKind.STATEFUL
        )
        await cluster.catalog.create_service("fabric:/H", one)
        (activation,) = cluster.state.nodes["_Node_0"].activations.values()
        (host,) = activation.hosts.values()
        first = await asyncio.to_thread(beacon.wait, "hung", 60)
        assert host.supervisor.pid == first
        deadline = asyncio.get_running_loop().time() + 60
        # The hung host has read its open; these are written to it and never read.
        many = dataclasses.replace(
            one,
            name="fabric:/H/More",
            partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
            partition_count=20,
            low_key=0,
            high_key=19,
        )
        with caplog.at_level(logging.WARNING, logger="fabrichost.agent"):
            await cluster.catalog.create_service("fabric:/H", many)
            while host.supervisor.pid == first:  # faulted: killed, then restarted
                changed = cluster.state.changes.next()
                async with asyncio.timeout_at(deadline):
                    await changed.wait()
        faults = [r.getMessage() for r in caplog.records if "faulting host" in r.getMessage()]
        assert any(
            f"faulting host {first} of Code: the host stopped reading its channel: nothing read "
            "for 1 s" in message
            for message in faults
        ), faults
    finally:
        await cluster.shutdown()
