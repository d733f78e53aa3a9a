"""fabrichost's own scenarios for ``bench/run.py`` (no peer does these): one agent, started with
zero restart backoff (``--restart-delay 0``), runs them one after another.

* ``crash_restart``: a guest code package's process is SIGKILLed; the time from the kill to the
  agent's new process for it existing (restart *begun*), per crash, p50 and max;
* ``open_round_trip``: one singleton stateful replica created into the running SharedProcess
  host, from the REST call to the answer of the wait for Ready (placement, the host's
  OpenReplica round trip, the REST answer), p50 and p99 over many;
* ``shared_1000``: 1,000 replicas (one service of 1,000 singleton partitions) into that host:
  wall time to all Ready and the host's resident memory per replica;
* ``tradeoff``: the same service at 1, 10 and 100 replicas, SharedProcess against
  ExclusiveProcess: processes, their total PSS, time to all Ready, how many replicas one
  host's crash takes down and the time until all are Ready again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from peers import CHILD, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fabrichost.client import FabricClient

REPO = Path(__file__).resolve().parents[1]
NODE = "_Node_0"


@contextlib.contextmanager
def zero_backoff_agent(state: Path) -> Iterator[FabricClient]:
    """An agent for ``state`` with restart backoff off, and a client of it."""
    from fabrichost.client import FabricClient
    from fabrichost.daemon import stop_background
    from fabrichost.wire import AgentRecord

    state.mkdir(parents=True)
    log = (state / "bench-agent.out").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fabrichost.daemon",
            "--state-dir",
            str(state),
            "--port",
            "0",
            "--restart-delay",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for("agent serving", lambda: _serving(state, proc), deadline=60)
        record = AgentRecord.read(state)
        assert record is not None
        with FabricClient(record.Endpoint, timeout=300) as client:
            yield client
    finally:
        stop_background(state)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()


def _serving(state: Path, proc: subprocess.Popen[bytes]) -> bool:
    from fabrichost.client import FabricClient
    from fabrichost.errors import FabricHostError

    if proc.poll() is not None:
        raise RuntimeError(f"the agent exited ({proc.returncode}): see {state}/bench-agent.out")
    try:
        with FabricClient.for_state_dir(state, timeout=5) as client:
            client.status()
    except FabricHostError:
        return False
    return True


def _stateful(name: str, partitions: int = 1, exclusive: bool = False) -> Any:
    from fabrichost.wire import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind

    extra: dict[str, Any] = {}
    if partitions > 1:
        extra = {
            "partition_scheme": PartitionScheme.UNIFORM_INT64_RANGE,
            "partition_count": partitions,
            "low_key": 0,
            "high_key": partitions - 1,
        }
    if exclusive:
        extra["activation_mode"] = ActivationMode.EXCLUSIVE_PROCESS
    return ServiceDescription(
        name=name,
        type_name="MyServiceType",
        kind=ServiceKind.STATEFUL,
        target_replica_set_size=1,
        **extra,
    )


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def crash_restart(client: FabricClient, root: Path, crashes: int) -> dict[str, float]:
    """Kill a guest's process ``crashes`` times; seconds from each kill to its new process."""
    package = root / "Crash"
    code = package / "CrashPkg" / "C"
    code.mkdir(parents=True)
    (code / "child.py").write_text(CHILD)
    (code / "run.sh").write_text(f'#!/bin/sh\nexec "{sys.executable}" child.py\n')
    (code / "run.sh").chmod(0o755)
    (package / "CrashPkg" / "ServiceManifest.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ServiceManifest xmlns="http://schemas.microsoft.com/2011/01/fabric" Name="CrashPkg" '
        'Version="1.0.0"><ServiceTypes><StatelessServiceType ServiceTypeName="CrashType" '
        'UseImplicitHost="true" /></ServiceTypes><CodePackage Name="C" Version="1.0.0">'
        "<EntryPoint><ExeHost><Program>run.sh</Program><WorkingFolder>CodePackage"
        "</WorkingFolder></ExeHost></EntryPoint></CodePackage></ServiceManifest>\n"
    )
    (package / "ApplicationManifest.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ApplicationManifest xmlns="http://schemas.microsoft.com/2011/01/fabric" '
        'ApplicationTypeName="CrashAppType" ApplicationTypeVersion="1.0.0">'
        '<ServiceManifestImport><ServiceManifestRef ServiceManifestName="CrashPkg" '
        'ServiceManifestVersion="1.0.0" /></ServiceManifestImport><DefaultServices>'
        '<Service Name="Crash"><StatelessService ServiceTypeName="CrashType" InstanceCount="1">'
        "<SingletonPartition /></StatelessService></Service></DefaultServices>"
        "</ApplicationManifest>\n"
    )
    client.deploy(package, "fabric:/Crash")
    agent = psutil.Process(int(client.status()["AgentProcessId"]))
    times = []
    pid = _guest_pid(agent, {0})
    for _ in range(crashes):
        killed = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        new = _guest_pid(agent, {pid})
        times.append(time.perf_counter() - killed)
        pid = new
        time.sleep(0.2)  # the new process runs its interpreter: a bench, not a test
    client.delete_application("fabric:/Crash")
    return {
        "crashes": crashes,
        "restart_begun_p50_s": statistics.median(times),
        "restart_begun_max_s": max(times),
    }


def _guest_pid(agent: psutil.Process, not_these: set[int]) -> int:
    """The agent's child running the crash package (via run.sh's exec), not one of
    ``not_these``; polled as fast as psutil reads the process table."""
    found: list[int] = []

    def look() -> bool:
        for child in agent.children():
            with contextlib.suppress(psutil.Error):
                if child.pid not in not_these and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child.pid)
                    return True
        return False

    wait_for("the guest's new process", look, deadline=60)
    return found[0]


def open_round_trip(client: FabricClient, samples: int) -> dict[str, float]:
    """Create ``samples`` singleton replicas one at a time into the running shared host."""
    client.deploy(REPO / "manifests" / "MyApp", "fabric:/Open")
    client.create_service("fabric:/Open", _stateful("fabric:/Open/Warm"), wait=True)
    times = []
    for i in range(samples):
        start = time.perf_counter()
        client.create_service("fabric:/Open", _stateful(f"fabric:/Open/S{i}"), wait=True)
        times.append(time.perf_counter() - start)
    client.delete_application("fabric:/Open")
    return {
        "samples": samples,
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * _percentile(times, 99),
    }


def shared_1000(client: FabricClient, replicas: int = 1000) -> dict[str, float]:
    client.deploy(REPO / "manifests" / "MyApp", "fabric:/Many")
    client.create_service("fabric:/Many", _stateful("fabric:/Many/Warm"), wait=True)
    (warm,) = client.deployed_replicas(NODE, "fabric:/Many")
    host = psutil.Process(int(warm["HostProcessId"]))
    rss_before = host.memory_info().rss
    start = time.perf_counter()
    client.create_service(
        "fabric:/Many", _stateful("fabric:/Many/All", replicas), wait=True, wait_timeout=300
    )
    place_s = time.perf_counter() - start
    kib = (host.memory_info().rss - rss_before) / 1024 / replicas
    hosts = {r["HostProcessId"] for r in client.deployed_replicas(NODE, "fabric:/Many")}
    assert hosts == {warm["HostProcessId"]}, "all replicas must share the one host"
    client.delete_application("fabric:/Many")
    return {"replicas": replicas, "place_s": place_s, "host_kib_per_replica": kib}


def tradeoff(client: FabricClient, counts: list[int]) -> dict[str, dict[str, Any]]:
    """The same service at each count, in each activation mode, in turn."""
    client.provision(REPO / "manifests" / "MyApp", reuse_existing=True)
    figures: dict[str, dict[str, Any]] = {}
    for count in counts:
        for exclusive in (False, True):
            mode = "ExclusiveProcess" if exclusive else "SharedProcess"
            figures[f"{mode} x{count}"] = _one_tradeoff(client, count, exclusive)
    return figures


def _one_tradeoff(client: FabricClient, count: int, exclusive: bool) -> dict[str, Any]:
    app = f"fabric:/Trade{'X' if exclusive else 'S'}{count}"
    client.create_application(app, "MyAppType", "1.0.0")
    start = time.perf_counter()
    client.create_service(
        app, _stateful(f"{app}/Svc", count, exclusive), wait=True, wait_timeout=600
    )
    ready_s = time.perf_counter() - start
    replicas = client.deployed_replicas(NODE, app)
    pids = sorted({int(r["HostProcessId"]) for r in replicas})
    pss = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            pss += psutil.Process(pid).memory_full_info().pss
    # One crash: the host of the first replica is killed; every replica it held goes down.
    victim = int(replicas[0]["HostProcessId"])
    taken_down = sum(1 for r in replicas if int(r["HostProcessId"]) == victim)
    crashed = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    wait_for(
        "all Ready again after the crash",
        lambda: _all_ready_elsewhere(client, app, count, victim),
        deadline=600,
    )
    recovered_s = time.perf_counter() - crashed
    client.delete_application(app)
    return {
        "replicas": count,
        "processes": len(pids),
        "total_pss_mib": pss / 2**20,
        "ready_s": ready_s,
        "one_crash_takes_down": taken_down,
        "all_ready_again_s": recovered_s,
    }


def _all_ready_elsewhere(client: FabricClient, app: str, count: int, dead: int) -> bool:
    replicas = client.deployed_replicas(NODE, app)
    ready = [
        r for r in replicas if r["ReplicaStatus"] == "Ready" and int(r["HostProcessId"]) != dead
    ]
    return len(ready) == count
