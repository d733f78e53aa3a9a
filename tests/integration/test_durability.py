"""`kill -9` of the agent loses nothing and never duplicates anything (SPEC §5, §6).

Each test kills the real agent daemon with SIGKILL — at a random moment, or at a named crash
point (``FABRICHOST_CRASH_AT``) — starts a new agent on the same state directory, and checks what
the kernel shows: which processes live, what the jobs journaled.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest

from fabrichost.agent._crash import ENV as CRASH_ENV
from fabrichost.agent._crash import POINTS
from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from fabrichost.store import ProcessRow, Store
from fabrichost.wire import AgentRecord, PartitionScheme, ServiceDescription, ServiceKind
from sample_services.jobs import read_journal
from tests.integration.conftest import (
    MANIFESTS,
    job_processes,
    marked_processes,
    write_guest_package,
)
from tests.integration.test_singletons import wait_for_starts, wait_not_pending

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def _kill_agent(state_dir: Path) -> None:
    record = AgentRecord.read(state_dir)
    assert record is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.AgentProcessId, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(record.AgentProcessId).wait(10)


@contextlib.contextmanager
def _restarted(state_dir: Path, nodes: int = 1) -> Iterator[FabricClient]:
    record = start_background(state_dir, nodes=nodes, port=0)
    with FabricClient(record.Endpoint, timeout=60) as client:
        yield client


def test_kill_9_of_the_agent_loses_nothing(cluster3: Cluster, tmp_path: Path) -> None:
    client = cluster3.client
    client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    client.create_service(
        "fabric:/App1",
        ServiceDescription(
            name="fabric:/App1/ServiceA",
            type_name="MyServiceType",
            kind=ServiceKind.STATEFUL,
            partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
            partition_count=2,
            low_key=0,
            high_key=99,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
    )
    client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    client.create_service(
        "fabric:/G",
        ServiceDescription(
            name="fabric:/G/Web",
            type_name="GuestType",
            kind=ServiceKind.STATELESS,
            instance_count=-1,
        ),
        wait=True,
    )
    before = {
        p["PartitionInformation"]["Id"]: sorted(
            r["ReplicaId"] for r in client.replicas(p["PartitionInformation"]["Id"])
        )
        for p in client.partitions("fabric:/App1/ServiceA")
    }
    old_pids = {p.pid for p in marked_processes(cluster3.state_dir)}
    assert len(old_pids) == 6  # 3 runtime hosts + 3 guests

    _kill_agent(cluster3.state_dir)
    with _restarted(cluster3.state_dir, nodes=3) as again:
        again.wait_service_ready("fabric:/App1/ServiceA", 60)
        again.wait_service_ready("fabric:/G/Web", 60)
        assert {a["Name"] for a in again.applications()} == {"fabric:/App1", "fabric:/G"}
        after = {
            p["PartitionInformation"]["Id"]: sorted(
                r["ReplicaId"] for r in again.replicas(p["PartitionInformation"]["Id"])
            )
            for p in again.partitions("fabric:/App1/ServiceA")
        }
        assert after == before, "the same partitions and replicas, by id"
        live = marked_processes(cluster3.state_dir)
        assert len(live) == 6, "one process per node and application again, none duplicated"
        assert not {p.pid for p in live} & old_pids, "the earlier run's processes were fenced"


@pytest.mark.parametrize("point", [p for p in POINTS if p != "application-committed"])
def test_a_crash_at_each_point_of_a_create_then_a_retry_gets_one_instance(
    cluster: Cluster, tmp_path: Path, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    journal = tmp_path / "journal"
    _kill_agent(cluster.state_dir)
    monkeypatch.setenv(CRASH_ENV, point)
    with _restarted(cluster.state_dir) as doomed, pytest.raises(httpx.HTTPError):
        httpx.post(
            f"{doomed.endpoint}/orchestrators/EternalJob/job-c",
            timeout=30,
            json={"journal": str(journal)},
            headers={"Idempotency-Key": "k1"},
        )
    monkeypatch.delenv(CRASH_ENV)
    _kill_agent(cluster.state_dir)  # it killed itself: wait until it is gone
    with _restarted(cluster.state_dir) as client:
        retry = httpx.post(
            f"{client.endpoint}/orchestrators/EternalJob/job-c",
            timeout=30,
            json={"journal": str(journal)},
            headers={"Idempotency-Key": "k1"},
        )
        assert retry.status_code in (200, 202), retry.text
        status = client.instance_status("job-c")
        assert status["runtimeStatus"] in ("Pending", "Running")
        client.wait_service_ready("fabric:/Jobs/job-c", 60)
        wait_for_starts(journal, 1)
        assert len(job_processes(cluster.state_dir, "job-c")) == 1
        again = httpx.post(
            f"{client.endpoint}/orchestrators/EternalJob/job-c",
            timeout=30,
            json={"journal": str(journal)},
            headers={"Idempotency-Key": "k1"},
        )
        assert again.status_code == 200
        assert client.instance_status("job-c")["generation"] == status["generation"]


def test_a_singleton_whose_host_died_while_the_agent_was_down_comes_back_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    client = cluster.client
    client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    journal = tmp_path / "journal"
    client.start_instance("EternalJob", "job-9", {"journal": str(journal)})
    wait_for_starts(journal, 1)
    generation = client.instance_status("job-9")["generation"]
    (host,) = job_processes(cluster.state_dir, "job-9")
    _kill_agent(cluster.state_dir)
    _, alive = psutil.wait_procs([host], timeout=15)  # EOF on its channel: it exits
    assert not alive
    with _restarted(cluster.state_dir) as again:
        wait_for_starts(journal, 2)
        status = wait_not_pending(again, "job-9")
        assert status["runtimeStatus"] == "Running"
        assert status["generation"] == generation
        assert len(job_processes(cluster.state_dir, "job-9")) == 1
    events = read_journal(journal)
    starts = [t for e, _, t in events if e == "start"]
    ends = [t for e, _, t in events if e == "end"]
    assert len(starts) == 2, "it came back exactly once"
    assert ends
    assert ends[0] < starts[1], "the two lifetimes did not overlap"


def test_a_pid_reused_by_an_unrelated_process_is_never_signalled(
    cluster: Cluster, tmp_path: Path
) -> None:
    stranger = subprocess.Popen(["sleep", "300"])
    try:
        _kill_agent(cluster.state_dir)
        with Store.open(cluster.state_dir / "state.db") as store:
            store.record_process(
                ProcessRow(
                    "_Node_0",
                    "fabric:/Gone",
                    "Pkg",
                    "",
                    "Code",
                    stranger.pid,
                    psutil.Process(stranger.pid).create_time() - 100.0,
                    str(tmp_path / "unheld.lock"),
                    1,
                )
            )
        with _restarted(cluster.state_dir) as again:
            assert again.nodes()
            assert stranger.poll() is None, "an unrelated process was signalled"
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.timeout(240)  # 50 agent restarts: ~35 s alone, much more on a loaded machine
def test_randomized_kill_loop_finds_no_duplicate_and_no_orphan(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    rng = random.Random(20261121)
    rounds = int(os.environ.get("FABRICHOST_KILL_ROUNDS", "50"))
    answers: dict[str, Any] = {}
    for n in range(rounds):
        instance, journal = f"job-{n}", tmp_path / f"journal-{n}"
        record = AgentRecord.read(cluster.state_dir)
        assert record is not None
        url = f"{record.Endpoint}/orchestrators/EternalJob/{instance}"
        body = {"journal": str(journal)}

        def start(url: str = url, body: dict[str, str] = body, n: int = n) -> None:
            with contextlib.suppress(httpx.HTTPError):
                answers[f"r{n}"] = httpx.post(
                    url, json=body, timeout=30, headers={"Idempotency-Key": f"k{n}"}
                ).status_code

        thread = threading.Thread(target=start)
        thread.start()
        time.sleep(rng.uniform(0.0, 0.25))  # the kill lands at a random point of the create
        _kill_agent(cluster.state_dir)
        thread.join(30)
        record = start_background(cluster.state_dir, nodes=1, port=0)
        with FabricClient(record.Endpoint, timeout=60) as client:
            retry = httpx.post(
                f"{record.Endpoint}/orchestrators/EternalJob/{instance}",
                json=body,
                headers={"Idempotency-Key": f"k{n}"},
                timeout=30,
            )
            assert retry.status_code in (200, 202), (n, retry.text)
            client.wait_service_ready(f"fabric:/Jobs/{instance}", 60)
            wait_for_starts(journal, 1)
            jobs = job_processes(cluster.state_dir, instance)
            assert len(jobs) == 1, f"round {n}: {len(jobs)} processes run {instance}"
            client.terminate_instance(instance)
            assert job_processes(cluster.state_dir, instance) == []
            leftovers = [
                p
                for p in marked_processes(cluster.state_dir)
                if "Fabric_ServiceName" in p.environ()
            ]
            assert leftovers == [], f"round {n}: orphans {leftovers}"
        starts = [e for e in read_journal(journal) if e[0] == "start"]
        ends = [e for e in read_journal(journal) if e[0] == "end"]
        assert len(ends) == len(starts), f"round {n}: an incarnation never ended"


def test_an_instance_follows_its_replica_when_its_node_stops(tmp_path: Path) -> None:
    state = (tmp_path / "state").resolve()
    record = start_background(state, nodes=2, port=0)
    try:
        with FabricClient(record.Endpoint, timeout=60) as client:
            client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
            journal = tmp_path / "journal"
            client.start_instance("EternalJob", "moving", {"journal": str(journal)})
            client.wait_service_ready("fabric:/Jobs/moving", 30)
            wait_for_starts(journal, 1)
            (node,) = [
                n["Name"]
                for n in client.nodes()
                if client.deployed_replicas(n["Name"], "fabric:/Jobs")
            ]
            client.stop_node(node)
            client.wait_service_ready("fabric:/Jobs/moving", 30)
            wait_for_starts(journal, 2)
            assert client.instance_status("moving")["runtimeStatus"] == "Running"
            assert len(job_processes(state, "moving")) == 1
            client.terminate_instance("moving")
            assert client.instance_status("moving")["runtimeStatus"] == "Terminated"
            assert job_processes(state, "moving") == []
    finally:
        stop_background(state)
    assert marked_processes(state) == []


def test_a_type_whose_image_store_copy_was_lost_can_be_provisioned_again(
    cluster: Cluster, tmp_path: Path
) -> None:
    package = write_guest_package(tmp_path / "G", script=SLEEPER)
    cluster.client.provision(package)
    stop_background(cluster.state_dir)
    shutil.rmtree(cluster.state_dir / "ImageStore")  # e.g. cleaned by hand
    with _restarted(cluster.state_dir) as client:
        assert client.application_types() == []  # it cannot be restored without its files
        client.provision(package)
        assert [(t["Name"], t["Version"]) for t in client.application_types()] == [
            ("GuestAppType", "1.0.0")
        ]
    stop_background(cluster.state_dir)
    with _restarted(cluster.state_dir) as client:  # and it is there after the next restart
        assert [t["Name"] for t in client.application_types()] == ["GuestAppType"]


def test_a_partition_restored_on_fewer_nodes_still_has_a_primary(cluster3: Cluster) -> None:
    cluster3.client.deploy(MANIFESTS / "MyApp", "fabric:/App1")
    cluster3.client.create_service(
        "fabric:/App1",
        ServiceDescription(
            name="fabric:/App1/S",
            type_name="MyServiceType",
            kind=ServiceKind.STATEFUL,
            partition_count=1,
            target_replica_set_size=3,
            min_replica_set_size=2,
        ),
        wait=True,
    )
    (partition,) = cluster3.client.partitions("fabric:/App1/S")
    pid = partition["PartitionInformation"]["Id"]
    primary = next(r for r in cluster3.client.replicas(pid) if r["ReplicaRole"] == "Primary")
    _kill_agent(cluster3.state_dir)
    # Restarting with fewer nodes drops the replicas of nodes that no longer exist.
    nodes = 2 if primary["NodeName"] == "_Node_2" else 1
    with _restarted(cluster3.state_dir, nodes=nodes) as client:
        client.wait_service_ready("fabric:/App1/S", 30)
        roles = [r["ReplicaRole"] for r in client.replicas(pid)]
        assert roles.count("Primary") == 1, roles
