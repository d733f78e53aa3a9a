"""One ID, one instance: concurrent creates, idempotent retries and create policies (SPEC §5).

Every storm runs against a real agent; the assertions are about what the kernel saw (processes,
the job's journal), not only about what the API answered.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import watchfiles

from fabrichost.cli import main
from fabrichost.errors import NotFoundError
from fabrichost.wire import ServiceDescription, ServiceKind
from sample_services.jobs import read_journal
from tests.integration.conftest import MANIFESTS, job_processes, write_guest_package

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.client import FabricClient
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration
SLEEPER = "import signal\nsignal.pause()\n"


def _starts(journal: Path) -> list[int]:
    if not journal.exists():
        return []
    return [pid for event, pid, _ in read_journal(journal) if event == "start"]


def wait_for_starts(journal: Path, count: int, timeout: float = 30.0) -> None:
    """Wait (on file events, with a deadline) until the journal shows ``count`` starts."""
    deadline = time.monotonic() + timeout
    if len(_starts(journal)) >= count:
        return
    for _ in watchfiles.watch(journal.parent, rust_timeout=200, yield_on_timeout=True):
        if len(_starts(journal)) >= count:
            return
        assert time.monotonic() < deadline, f"{count} start(s) not journaled in {timeout} s"


def wait_not_pending(client: FabricClient, instance_id: str, timeout: float = 30.0) -> Any:
    """The instance's status once it is past Pending. The API long-polls only until an instance
    finishes, so this polls, with a short interval and a deadline."""
    deadline = time.monotonic() + timeout
    while (status := client.instance_status(instance_id))["runtimeStatus"] == "Pending":
        assert time.monotonic() < deadline, f"{instance_id} still Pending after {timeout} s"
        time.sleep(0.05)
    return status


@pytest.mark.timeout(180)  # 25 command-line processes start on 2 loaded cores
def test_fifty_concurrent_creates_of_one_service_name_one_wins(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    body = {
        "ServiceKind": "Stateless",
        "ServiceName": "fabric:/G/One",
        "ServiceTypeName": "GuestType",
        "InstanceCount": 1,
    }
    url = f"{cluster.client.endpoint}/Applications/G/$/GetServices/$/Create"
    barrier = threading.Barrier(25)

    def http_create(_: int) -> int:
        barrier.wait(timeout=30)
        return httpx.post(url, json=body, timeout=60).status_code

    cli = [
        sys.executable,
        "-m",
        "fabrichost",
        "service",
        "create",
        "fabric:/G/One",
        "--type",
        "GuestType",
        "--stateless",
        "--state-dir",
        str(cluster.state_dir),
    ]
    procs = [
        subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(25)
    ]
    try:
        with ThreadPoolExecutor(25) as pool:
            statuses = list(pool.map(http_create, range(25)))
        exit_codes = [p.wait(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            if p.stderr is not None:
                p.stderr.close()
    wins = statuses.count(202) + exit_codes.count(0)  # SF answers 202 to a service create
    conflicts = statuses.count(409) + exit_codes.count(3)
    assert (wins, conflicts) == (1, 49), (statuses, exit_codes)
    cluster.client.wait_service_ready("fabric:/G/One", timeout=30)
    (replica,) = cluster.client.deployed_replicas("_Node_0", "fabric:/G")
    (code_package,) = cluster.client.deployed_code_packages("_Node_0", "fabric:/G")
    stats = code_package["MainEntryPoint"]["CodePackageEntryPointStatistics"]
    assert stats["ActivationCount"] == "1", "exactly one process ever hosted it"
    assert replica["HostProcessId"] == code_package["MainEntryPoint"]["ProcessId"]


@pytest.fixture
def jobs(cluster: Cluster) -> Cluster:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    return cluster


def _start(
    jobs: Cluster, instance: str, payload: Any, *, key: str | None = None, if_exists: str = "fail"
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(
        f"{jobs.client.endpoint}/orchestrators/EternalJob/{instance}",
        params={"ifExists": if_exists},
        json=payload,
        headers=headers,
        timeout=60,
    )


def test_thirty_concurrent_starts_of_job_42_one_instance(jobs: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    barrier = threading.Barrier(30)

    def start(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return _start(jobs, "job-42", {"journal": str(journal)})

    with ThreadPoolExecutor(30) as pool:
        responses = list(pool.map(start, range(30)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] + [409] * 29
    for r in responses:
        if r.status_code == 409:
            assert r.json()["Error"]["Message"] == "An instance with ID 'job-42' already exists."
    winner = next(r for r in responses if r.status_code == 202).json()
    assert winner["id"] == "job-42"
    assert winner["statusQueryGetUri"].endswith("/runtime/webhooks/durabletask/instances/job-42")
    status = jobs.client.instance_status("job-42")
    assert status["runtimeStatus"] in ("Pending", "Running")
    wait_for_starts(journal, 1)
    jobs.client.terminate_instance("job-42")
    assert len(_starts(journal)) == 1, "exactly one process ever ran job-42"


def test_twenty_retries_with_one_request_id_create_once(jobs: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    barrier = threading.Barrier(20)

    def start(_: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return _start(jobs, "job-7", {"journal": str(journal)}, key="req-7")

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(start, range(20)))
    assert sorted(r.status_code for r in responses) == [200] * 19 + [202]
    assert len({json.dumps(r.json(), sort_keys=True) for r in responses}) == 1
    generation = jobs.client.instance_status("job-7")["generation"]
    again = _start(jobs, "job-7", {"journal": str(journal)}, key="req-7")
    assert again.status_code == 200
    assert jobs.client.instance_status("job-7")["generation"] == generation
    different = _start(jobs, "job-7", {"journal": "elsewhere"}, key="req-7")
    assert different.status_code == 400
    assert "already used for a different request" in different.json()["Error"]["Message"]
    wait_for_starts(journal, 1)
    jobs.client.terminate_instance("job-7")
    assert len(_starts(journal)) == 1


def test_use_existing_returns_the_running_instance(jobs: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    first = _start(jobs, "job-1", {"journal": str(journal)})
    assert first.status_code == 202
    generation = jobs.client.instance_status("job-1")["generation"]
    second = _start(jobs, "job-1", {"other": "input"}, if_exists="use-existing")
    assert second.status_code == 200
    assert second.json() == first.json()
    assert jobs.client.instance_status("job-1")["generation"] == generation
    wait_for_starts(journal, 1)
    jobs.client.terminate_instance("job-1")
    assert len(_starts(journal)) == 1


def test_a_replace_storm_never_overlaps_two_lifetimes(jobs: Cluster, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    barrier = threading.Barrier(10)

    def replace(i: int) -> httpx.Response:
        barrier.wait(timeout=30)
        return _start(jobs, "job-r", {"journal": str(journal), "n": i}, if_exists="replace")

    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(replace, range(10)))
    assert all(r.status_code == 202 for r in responses)
    final = jobs.client.instance_status("job-r", wait=False)
    assert final["runtimeStatus"] in ("Pending", "Running")
    assert final["input"]["n"] in range(10)
    # An incarnation replaced before its run() began journals nothing; the last one runs.
    wait_for_starts(journal, 1)
    jobs.client.terminate_instance("job-r")

    events = read_journal(journal)
    starts = sorted(((t, pid) for event, pid, t in events if event == "start"))
    ends = {pid: t for event, pid, t in events if event == "end"}
    assert 1 <= len(starts) <= 10
    assert len({pid for _, pid in starts}) == len(starts), "one process per incarnation"
    for (_, pid), (next_start, _) in itertools.pairwise(starts):
        assert pid in ends, f"incarnation {pid} never ended"
        assert ends[pid] < next_start, "two lifetimes overlapped"
    assert starts[-1][1] in ends
    assert final["generation"] > 0


def test_cli_create_policies_and_request_ids(cluster: Cluster, tmp_path: Path) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    base = [
        "service",
        "create",
        "fabric:/G/S",
        "--type",
        "GuestType",
        "--stateless",
        "--state-dir",
        str(cluster.state_dir),
    ]
    assert main([*base, "--request-id", "r1"]) == 0
    assert main([*base, "--request-id", "r1"]) == 0, "a retry with the same request id"
    assert main(base) == 3, "the name is taken"
    assert main([*base, "--if-exists", "use-existing"]) == 0
    before = cluster.client.partitions("fabric:/G/S")[0]["PartitionInformation"]["Id"]
    assert main([*base, "--if-exists", "replace", "--wait"]) == 0
    after = cluster.client.partitions("fabric:/G/S")[0]["PartitionInformation"]["Id"]
    assert before != after, "replace made a new service"
    assert len(cluster.client.deployed_replicas("_Node_0", "fabric:/G")) == 1


def test_a_held_incarnation_lock_keeps_the_next_process_from_starting(
    cluster: Cluster, tmp_path: Path
) -> None:
    cluster.client.deploy(write_guest_package(tmp_path / "G", script=SLEEPER), "fabric:/G")
    (deployed,) = [a for a in cluster.client.applications() if a["Name"] == "fabric:/G"]
    app_id = f"{deployed['TypeName']}_App1"  # the first application of a fresh state dir
    lock = cluster.state_dir / "locks" / "_Node_0" / f"{app_id}.GuestPkg.shared.Code.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a+") as held:  # as if an earlier incarnation still lived
        fcntl.flock(held, fcntl.LOCK_EX)
        cluster.client.create_service(
            "fabric:/G",
            ServiceDescription(
                name="fabric:/G/S", type_name="GuestType", kind=ServiceKind.STATELESS
            ),
        )
        with pytest.raises(Exception, match="still locked by a live process"):
            cluster.client.wait_service_ready("fabric:/G/S", timeout=3)
        assert cluster.client.deployed_replicas("_Node_0", "fabric:/G")[0]["HostProcessId"] == "0"
    cluster.client.wait_service_ready("fabric:/G/S", timeout=30)  # released: it starts


def test_issue_review_terminate_while_the_instance_is_being_activated(jobs: Cluster) -> None:
    # A terminate that lands while the instance's process is still being activated must
    # leave no process behind (it did: the process outlived a terminate that said "gone").
    for round_ in range(8):
        instance = f"race-{round_}"  # a fresh ID: a finished one would answer terminate at once
        base = f"{jobs.client.endpoint}/runtime/webhooks/durabletask/instances/{instance}"
        starter = ThreadPoolExecutor(1)
        start = starter.submit(
            httpx.post,
            f"{jobs.client.endpoint}/orchestrators/EternalJob/{instance}",
            json={},
            timeout=30,
        )
        deadline = time.monotonic() + 30
        while (terminate := httpx.post(f"{base}/terminate", timeout=30)).status_code == 404:
            assert time.monotonic() < deadline, f"round {round_}: the instance never appeared"
        started = start.result(timeout=30)
        starter.shutdown()
        assert started.status_code == 202, started.text  # created, then terminated
        assert terminate.status_code in (200, 202)
        assert jobs.client.instance_status(instance)["runtimeStatus"] == "Terminated"
        assert [p.pid for p in job_processes(jobs.state_dir, instance)] == [], (
            f"round {round_}: a terminated instance runs"
        )
    jobs.client.start_instance("EternalJob", "race-0", {})
    jobs.client.wait_service_ready("fabric:/Jobs/race-0", 30)
    assert len(job_processes(jobs.state_dir, "race-0")) == 1


def test_issue_review_replace_of_a_service_cannot_delete_an_instance(jobs: Cluster) -> None:
    jobs.client.start_instance("EternalJob", "e1", {})
    body = {
        "ServiceKind": "Stateless",
        "ServiceName": "fabric:/Jobs/e1",
        "ServiceTypeName": "EchoJob",
        "InstanceCount": 1,
    }
    response = httpx.post(
        f"{jobs.client.endpoint}/Applications/Jobs/$/GetServices/$/Create",
        params={"IfExists": "replace"},
        json=body,
        timeout=30,
    )
    assert response.status_code == 400
    assert "terminate the instance" in response.json()["Error"]["Message"]
    assert jobs.client.instance_status("e1")["runtimeStatus"] in ("Pending", "Running")
    jobs.client.terminate_instance("e1")


@pytest.mark.parametrize(
    "body",
    [
        b"NaN",
        b"[Infinity]",
        b'{"x": -Infinity}',
        b"1e400",  # Python reads it as inf: stored, it broke the instance list (500)
        b"[" * 101 + b"]" * 101,
        b"[" * 5000 + b"]" * 5000,
    ],
    ids=["nan", "infinity", "minus-infinity", "overflow", "deep", "too-deep-to-parse"],
)
def test_a_start_whose_input_is_not_json_is_refused_and_starts_nothing(
    jobs: Cluster, body: bytes
) -> None:
    # Python's json reads NaN and Infinity; JSON has neither, and the status could not show them.
    response = httpx.post(
        f"{jobs.client.endpoint}/orchestrators/EchoJob/nan-1", content=body, timeout=60
    )
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.text
    with pytest.raises(NotFoundError):
        jobs.client.instance_status("nan-1")
    assert jobs.client.instances() == []  # the list still answers


def test_a_retried_start_without_an_instance_id_names_the_same_instance(cluster: Cluster) -> None:
    cluster.client.deploy(MANIFESTS / "SingletonJobs", "fabric:/Jobs")
    url = f"{cluster.client.endpoint}/orchestrators/EternalJob"
    first = httpx.post(url, json={}, headers={"Idempotency-Key": "k"}, timeout=30)
    second = httpx.post(url, json={}, headers={"Idempotency-Key": "k"}, timeout=30)
    assert (first.status_code, second.status_code) == (202, 200)
    assert first.json()["id"] == second.json()["id"]
    cluster.client.terminate_instance(first.json()["id"])
