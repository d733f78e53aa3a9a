"""A singleton instance is stopping until its process is gone: races around that window.

An instance's status says Terminated (or Completed, Failed) as soon as that is decided, as in
Durable Functions, but its process may take seconds more to close. Until it is gone the ID stays
taken: a start (any policy, with or without a request id), a ``replace``, a second terminate and
a purge wait for it. And a finished instance whose service removal was lost in a crash does not
run again after a restart. Each test journals the job's lifetimes (``start``/``end`` with the
system-wide monotonic clock) and checks what the kernel saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest

from fabrichost.agent import Cluster as AgentCluster
from fabrichost.agent import ServicePackageActivation
from fabrichost.client import FabricClient
from fabrichost.daemon import start_background, stop_background
from sample_services.jobs import read_journal
from tests.integration.conftest import (
    MANIFESTS,
    job_processes,
    marked_processes,
    write_stateless_host_package,
)
from tests.integration.test_singletons import wait_for_starts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

# SlowJob runs until cancelled, QuickJob returns at once; their close() is the window in which
# the instance is finished but its process still runs. With a ``gate`` in the input it lasts
# until the test creates that file (capped below the agent's 30 s close request timeout, so a
# gate nobody opens still ends in a clean close), else ``close_delay`` seconds.
HOST = """
import json, os, time
from fabrichost.runtime import StatelessService, run_host
from sample_services.jobs import append_journal

def journal(event, data):
    append_journal(data["journal"], event)

class SlowJob(StatelessService):
    async def run(self, cancel):
        journal("start", json.loads(self.context.init_data))
        await cancel.wait_cancelled()

    def close(self):
        data = json.loads(self.context.init_data)
        if "gate" in data:
            deadline = time.monotonic() + 25
            while not os.path.exists(data["gate"]) and time.monotonic() < deadline:
                time.sleep(0.02)
        else:
            time.sleep(data.get("close_delay", 0))
        journal("end", data)

class QuickJob(SlowJob):
    async def run(self, cancel):
        data = json.loads(self.context.init_data)
        journal("start", data)
        return data.get("n")

run_host({"SlowJob": SlowJob, "QuickJob": QuickJob})
"""
CLOSE_DELAY = 2.0  # long enough for a request to land in the window, short enough for CI
# A request made in a gated window gets this long to be answered (wrongly) while the gate is
# still shut; a product that waits for the process answers only after the gate opens.
OPEN_GATE_AFTER = 1.0


def _write_package(root: Path) -> Path:
    return write_stateless_host_package(
        root,
        script=HOST,
        types=("SlowJob", "QuickJob"),
        app_type="RaceAppType",
        package="RacePkg",
    )


@pytest.fixture
def races(cluster: Cluster, tmp_path: Path) -> Cluster:
    cluster.client.deploy(_write_package(tmp_path / "pkg"), "fabric:/Race")
    return cluster


def _start(
    cluster: Cluster,
    instance: str,
    payload: Any,
    *,
    function: str = "SlowJob",
    if_exists: str = "fail",
    key: str | None = None,
) -> httpx.Response:
    return httpx.post(
        f"{cluster.client.endpoint}/orchestrators/{function}/{instance}",
        params={"ifExists": if_exists},
        json=payload,
        headers={"Idempotency-Key": key} if key else {},
        timeout=30,
    )


def _instance_url(cluster: Cluster, instance: str) -> str:
    return f"{cluster.client.endpoint}/runtime/webhooks/durabletask/instances/{instance}"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _lifetimes(journal: Path) -> list[tuple[int, float, float | None]]:
    """(pid, start, end or None) of each incarnation, in start order."""
    events = read_journal(journal)
    ends = {pid: t for event, pid, t in events if event == "end"}
    return sorted(
        ((pid, t, ends.get(pid)) for event, pid, t in events if event == "start"),
        key=lambda lifetime: lifetime[1],
    )


def _assert_no_overlap(journal: Path) -> None:
    lives = _lifetimes(journal)
    for (pid, _, end), (_, next_start, _) in itertools.pairwise(lives):
        assert end is not None, f"incarnation {pid} never ended, yet another one started"
        assert end < next_start, f"two lifetimes overlapped: {lives}"


@pytest.fixture
def gates(races: Cluster, tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Gate files by name; all are opened at teardown, before the cluster is stopped, so no
    close() is left waiting on one whatever the test did."""
    made: list[Path] = []

    def gate(name: str) -> Path:
        made.append(tmp_path / f"gate-{name}")
        return made[-1]

    try:
        yield gate
    finally:
        for path in made:
            path.touch()


def _open_soon(gate: Path) -> None:
    """Open ``gate`` in OPEN_GATE_AFTER seconds, while the caller makes a request that must
    not be answered before the gated process is gone."""
    timer = threading.Timer(OPEN_GATE_AFTER, gate.touch)
    timer.daemon = True
    timer.start()


@contextlib.contextmanager
def _terminating(cluster: Cluster, instance: str, gate: Path | None = None) -> Iterator[Any]:
    """Terminate ``instance`` in the background; inside, its status already says Terminated.

    Its ``gate`` is opened on the way out at the latest (also when the body failed), so the
    background terminate, which returns once the process is gone, is not held up by it.
    """
    with ThreadPoolExecutor(1) as pool:
        terminated = pool.submit(
            httpx.post, f"{_instance_url(cluster, instance)}/terminate", timeout=30
        )
        try:
            status = cluster.client.instance_status(instance, wait=True, timeout=10)
            assert status["runtimeStatus"] == "Terminated", status
            yield terminated
        finally:
            if gate is not None:
                gate.touch()
        assert terminated.result(timeout=30).status_code == 202


def _running_job(cluster: Cluster, instance: str, journal: Path, gate: Path | None = None) -> int:
    """Start a SlowJob ``instance`` whose close() waits for ``gate`` (without one, takes
    CLOSE_DELAY seconds); its pid once its run() has begun (the journal may already hold
    earlier jobs: this one is the latest start)."""
    earlier = len(_lifetimes(journal)) if journal.exists() else 0
    closing = {"gate": str(gate)} if gate is not None else {"close_delay": CLOSE_DELAY}
    first = _start(cluster, instance, {"journal": str(journal), **closing})
    assert first.status_code == 202, first.text
    wait_for_starts(journal, earlier + 1, timeout=20)
    lives = _lifetimes(journal)
    assert len(lives) == earlier + 1, lives
    return lives[-1][0]


@pytest.mark.parametrize(
    ("if_exists", "key"),
    [("fail", None), ("use-existing", None), ("replace", None), ("fail", "retry-1")],
)
def test_a_start_while_the_instance_terminates_waits_for_its_process_to_be_gone(
    races: Cluster,
    gates: Callable[[str], Path],
    tmp_path: Path,
    if_exists: str,
    key: str | None,
) -> None:
    journal = tmp_path / "journal"
    gate = gates("x")
    old = _running_job(races, "x", journal, gate)
    with _terminating(races, "x", gate):
        assert _alive(old), "the window: Terminated, the process still closing"
        _open_soon(gate)
        again = _start(races, "x", {"journal": str(journal)}, if_exists=if_exists, key=key)
        assert not _alive(old), "a start was answered while the old process still ran"
    assert again.status_code == 202, again.text
    wait_for_starts(journal, 2, timeout=20)
    _assert_no_overlap(journal)
    assert races.client.instance_status("x")["runtimeStatus"] in ("Pending", "Running")
    races.client.terminate_instance("x")
    assert job_processes(races.state_dir, "x") == []


def test_a_second_terminate_and_a_purge_return_once_the_process_is_gone(
    races: Cluster, gates: Callable[[str], Path], tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    gate = gates("x")
    old = _running_job(races, "x", journal, gate)
    with _terminating(races, "x", gate):
        assert _alive(old), "the window: Terminated, the process still closing"
        _open_soon(gate)
        second = httpx.post(f"{_instance_url(races, 'x')}/terminate", timeout=30)
        assert not _alive(old), "a second terminate answered while the process still ran"
        assert second.status_code == 200, second.text
    gate = gates("y")
    old = _running_job(races, "y", journal, gate)
    with _terminating(races, "y", gate):
        assert _alive(old), "the window: Terminated, the process still closing"
        _open_soon(gate)
        purged = httpx.delete(_instance_url(races, "y"), timeout=30)
        assert not _alive(old), "a purge answered while the process still ran"
        assert purged.status_code == 200, purged.text
    assert job_processes(races.state_dir, "y") == []
    _assert_no_overlap(journal)


def test_a_replace_racing_a_terminate_never_overlaps_two_lifetimes(
    races: Cluster, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    old = _running_job(races, "x", journal)
    with _terminating(races, "x"):
        replaced = _start(races, "x", {"journal": str(journal)}, if_exists="replace")
        assert not _alive(old)
    assert replaced.status_code == 202, replaced.text
    wait_for_starts(journal, 2, timeout=20)
    _assert_no_overlap(journal)
    races.client.terminate_instance("x")


def test_a_completed_instance_started_again_at_once_never_overlaps(
    races: Cluster, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    payload = {"journal": str(journal), "close_delay": CLOSE_DELAY, "n": 1}
    assert _start(races, "q", payload, function="QuickJob").status_code == 202
    status = races.client.instance_status("q", wait=True, timeout=20)
    assert status["runtimeStatus"] == "Completed", status
    ((old, _, _),) = _lifetimes(journal)
    again = _start(races, "q", {"journal": str(journal), "n": 2}, function="QuickJob")
    assert not _alive(old), "a start was answered while the completed run still closed"
    assert again.status_code == 202, again.text
    assert races.client.instance_status("q", wait=True, timeout=20)["output"] == 2
    _assert_no_overlap(journal)


def test_a_finished_instance_whose_service_removal_was_lost_does_not_run_again(
    races: Cluster, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    _running_job(races, "y", journal)
    # kill -9 of the agent, leaving what a crash between run_completed's commit of the final
    # status and the commit of its service's removal leaves: a Completed instance whose
    # service is still in the store. The host exits when its channel ends.
    hosts = job_processes(races.state_dir, "y")
    os.kill(races.agent_pid, signal.SIGKILL)
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(races.agent_pid).wait(10)
    _, alive = psutil.wait_procs(hosts, timeout=15)
    assert not alive
    db = sqlite3.connect(races.state_dir / "state.db")
    try:
        with db:
            db.execute(
                "UPDATE instances SET status = 'Completed', output_json = 'null' "
                "WHERE instance_id = 'y'"
            )
    finally:
        db.close()
    record = start_background(races.state_dir, nodes=1, port=0)
    try:
        with FabricClient(record.Endpoint, timeout=30) as client:
            assert client.instance_status("y")["runtimeStatus"] == "Completed"
            assert job_processes(races.state_dir, "y") == [], "a Completed instance runs"
            assert all(s["ServiceName"] != "fabric:/Race/y" for s in _services(client))
            restarted = httpx.post(
                f"{record.Endpoint}/orchestrators/SlowJob/y",
                json={"journal": str(journal)},
                timeout=30,
            )
            assert restarted.status_code == 202, restarted.text
            wait_for_starts(journal, 2, timeout=20)
            assert len(_lifetimes(journal)) == 2, "the finished run did not come back"
            assert len(job_processes(races.state_dir, "y")) == 1
            client.terminate_instance("y")
    finally:
        stop_background(races.state_dir)
    assert marked_processes(races.state_dir) == []


def _services(client: FabricClient) -> list[dict[str, Any]]:
    return [s for app in client.applications() for s in client.services(app["Name"])]


def test_terminate_then_start_storm_one_process_at_a_time(races: Cluster, tmp_path: Path) -> None:
    # Terminates and starts of one ID from many threads: whatever the interleaving, the
    # journal never shows two lifetimes at once.
    journal = tmp_path / "journal"
    payload = {"journal": str(journal), "close_delay": 0.3}
    assert _start(races, "s", payload).status_code == 202
    wait_for_starts(journal, 1, timeout=20)
    barrier = threading.Barrier(8)

    def act(i: int) -> int:
        barrier.wait(timeout=20)
        if i % 2:
            return httpx.post(f"{_instance_url(races, 's')}/terminate", timeout=30).status_code
        return _start(races, "s", payload, if_exists="use-existing").status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(act, range(8)))
    assert all(code in (200, 202) for code in codes), codes
    races.client.terminate_instance("s")
    _assert_no_overlap(journal)
    assert job_processes(races.state_dir, "s") == []


def test_a_start_while_its_application_is_deleted_never_overlaps(
    races: Cluster, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    old = _running_job(races, "x", journal)
    with ThreadPoolExecutor(1) as pool:
        deleting = pool.submit(races.client.delete_application, "fabric:/Race")
        status = races.client.instance_status("x", wait=True, timeout=10)
        assert status["runtimeStatus"] == "Terminated", status
        again = _start(races, "x", {"journal": str(journal)})
        assert not _alive(old), "a start was answered while the old process still ran"
        deleting.result(timeout=30)
    assert again.status_code == 404, again.text  # its application is gone
    assert job_processes(races.state_dir, "x") == []
    _assert_no_overlap(journal)
    assert len(_lifetimes(journal)) == 1


class _HeldExclusive(ServicePackageActivation):
    """An exclusive activation that waits for the test before it starts its real processes."""

    held = asyncio.Event()
    release = asyncio.Event()

    async def activate(self) -> None:
        if self.identity.service_name:
            type(self).held.set()
            await type(self).release.wait()
        await super().activate()


@pytest.mark.anyio
async def test_a_start_cut_short_leaves_nothing_a_plain_delete_cannot_remove(
    tmp_path: Path,
) -> None:
    """A start cancelled after its service was committed (before its process started) is
    undone; the service it left has no instance behind it, so deleting it works, as it did
    before services carried their owner."""
    _HeldExclusive.held, _HeldExclusive.release = asyncio.Event(), asyncio.Event()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = AgentCluster(state_dir, activation_factory=_HeldExclusive)
    try:
        ptype = await cluster.types.provision(MANIFESTS / "SingletonJobs")
        await cluster.catalog.create_application("fabric:/Jobs", ptype.name, ptype.version, {})
        start = asyncio.create_task(cluster.instances.start("EternalJob", "cut", "null"))
        async with asyncio.timeout(30):
            await _HeldExclusive.held.wait()
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        assert "cut" not in cluster.instances.instances
        await cluster.catalog.delete_service("fabric:/Jobs/cut")
        assert cluster.state.find_service("fabric:/Jobs/cut") is None
        assert [row.name for row in cluster.persist.service_rows()] == []
    finally:
        _HeldExclusive.release.set()
        await cluster.shutdown()
