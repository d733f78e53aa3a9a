"""Flow control on the agent's end of a host channel (issue 13, ``docs/protocol.md`` §7b).

Each test runs a real host process, written here: it speaks the protocol over the inherited
socket with the sans-IO ``Connection``, and reads it slowly (a sleep before every small read) or
not at all once its type is registered. The agent's end is the real ``HostChannel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from typing import TYPE_CHECKING

import pytest

from fabrichost.agent._channel import MAX_UNREAD, ChannelLimits, HostChannel
from fabrichost.agent._model import (
    Application,
    Partition,
    PartitionScheme,
    Replica,
    ReplicaRole,
    Service,
    ServiceKind,
)
from fabrichost.errors import ProtocolError
from fabrichost.manifest import ActivationMode

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.anyio

HOST = """
import os, socket, sys, time
from fabrichost.protocol import (
    CLOSED, NEED_DATA, Connection, Hello, OpenReplica, RegisterServiceType, ReplicaOpened, Role,
)

mode, delay = sys.argv[1], float(sys.argv[2])
sock = socket.socket(fileno=int(os.environ["FABRICHOST_CHANNEL_FD"]))
conn = Connection(Role.HOST)


def send(message):
    sock.sendall(conn.send(message))


def receive():
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            time.sleep(delay)  # a busy host: it reads, but slowly
            conn.receive_data(sock.recv(16 * 1024))
        elif event is CLOSED:
            sys.exit(0)
        else:
            return event


send(Hello(id=conn.new_request_id(), versions=(1, 2), pid=os.getpid(), runtime="test"))
receive()  # Welcome
send(RegisterServiceType(id=conn.new_request_id(), service_type="T"))
receive()  # ServiceTypeRegistered
if mode == "deaf":
    time.sleep(3600)  # never reads again (the test kills it)
while True:
    request = receive()
    if isinstance(request, OpenReplica):
        send(ReplicaOpened(re=request.id, partition_id=request.partition_id,
                           replica_id=request.replica_id, address=f"r{request.replica_id}"))
"""

INIT_DATA = "x" * 8000  # each OpenReplica is about 8 KB


class RunningHost:
    def __init__(self, channel: HostChannel, process: asyncio.subprocess.Process) -> None:
        self.channel = channel
        self.process = process
        self.registered = asyncio.Event()
        self.served: asyncio.Task[str] | None = None


@contextlib.asynccontextmanager
async def running_host(
    tmp_path: Path, mode: str, delay: float, limits: ChannelLimits
) -> AsyncIterator[RunningHost]:
    """A host process and the agent's channel to it, past the registration of type ``T``."""
    script = tmp_path / "host.py"
    script.write_text(HOST)
    agent_end, host_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, str(script), mode, str(delay)),
            pass_fds=(host_end.fileno(),),
            env={**os.environ, "FABRICHOST_CHANNEL_FD": str(host_end.fileno())},
        )
    finally:
        host_end.close()
    try:
        registered = asyncio.Event()
        channel = HostChannel(
            agent_end,
            pid=process.pid,
            node_name="_Node_0",
            on_register=lambda _type: registered.set(),
            on_notification=lambda _message: None,
            request_timeout=60.0,
            limits=limits,
        )
        host = RunningHost(channel, process)
        host.registered = registered
        host.served = asyncio.get_running_loop().create_task(channel.serve())
        async with asyncio.timeout(30):
            await registered.wait()
        yield host
    finally:
        agent_end.close()
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _replicas(count: int) -> list[Replica]:
    app = Application("fabric:/A", "AT", "1", "AT_App1", {})
    service = Service(
        "fabric:/A/S",
        app,
        "T",
        ServiceKind.STATELESS,
        "Pkg",
        ActivationMode.SHARED_PROCESS,
        1,
        init_data=INIT_DATA,
    )
    replicas = []
    for _ in range(count):
        partition = Partition(service, PartitionScheme.SINGLETON)
        service.partitions.append(partition)
        replica = Replica(partition, "_Node_0", ReplicaRole.NONE)
        partition.replicas.append(replica)
        replicas.append(replica)
    return replicas


async def test_a_host_that_reads_slowly_is_paced_and_opens_every_replica(tmp_path: Path) -> None:
    # 400 opens of 8 KB are three times MAX_UNREAD: sent at once, they would wait unread in the
    # agent (the old rule faulted the host for it). Paced, the host takes them as it reads.
    replicas = _replicas(400)
    assert len(replicas) * len(INIT_DATA) > 3 * MAX_UNREAD
    limits = ChannelLimits(window=256, stall_timeout=30.0)
    async with running_host(tmp_path, "slow", 0.01, limits) as host:
        async with asyncio.timeout(120):
            addresses = await asyncio.gather(
                *(
                    host.channel.open_replica(r, role=ReplicaRole.NONE, endpoints={})
                    for r in replicas
                )
            )
        assert addresses == [f"r{r.id}" for r in replicas]
        assert host.served is not None
        assert not host.served.done(), host.served.result()  # served on: never faulted
        assert host.process.returncode is None


async def test_a_host_that_never_reads_is_faulted_for_it(tmp_path: Path) -> None:
    limits = ChannelLimits(stall_timeout=1.0)
    async with running_host(tmp_path, "deaf", 0.0, limits) as host:
        opens = [
            asyncio.ensure_future(host.channel.open_replica(r, role=ReplicaRole.NONE, endpoints={}))
            for r in _replicas(50)
        ]
        assert host.served is not None
        async with asyncio.timeout(60):
            reason = await host.served
        assert reason.startswith("the host stopped reading its channel: nothing read for 1 s"), (
            reason
        )
        results = await asyncio.gather(*opens, return_exceptions=True)
        assert all(isinstance(r, ProtocolError) for r in results), results
