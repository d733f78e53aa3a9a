"""External events for singleton instances (Durable Functions' raiseEvent), with real processes.

The jobs here are written for the tests (``EVENTS_HOST``): ``Collect`` waits for the events its
input names, in turn, and completes with their data; with ``{"gate": path}`` its ``open`` does
not return until that file exists, which holds the instance Pending for as long as a test needs,
without any timing assumption. ``{"journal": path}`` makes it journal each wait and how it ended.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fabrichost.agent import AgentSettings
from fabrichost.agent import Cluster as AgentCluster
from fabrichost.errors import ApiError, NotFoundError, UnavailableError
from fabrichost.wire import error_answer
from tests.integration.conftest import REPO, job_processes, write_stateless_host_package
from tests.integration.test_singletons import wait_not_pending

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.client import FabricClient
    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

EVENTS_HOST = """
import json, os, time
from fabrichost.runtime import EventWaitCancelled, StatelessService, run_host

def note(path, line):
    if path:
        with open(path, "a") as journal:
            journal.write(line + "\\n")

class Collect(StatelessService):
    def _input(self):
        return json.loads(self.context.init_data or "null") or {}

    def open(self):
        gate = self._input().get("gate")
        while gate and not os.path.exists(gate):  # Pending until the test opens the gate
            time.sleep(0.02)

    async def run(self, cancel):
        spec = self._input()
        received = []
        for name in spec.get("names", []):
            note(spec.get("journal"), f"waiting {name}")
            try:
                received.append(await self.wait_for_event(name))
            except EventWaitCancelled:
                note(spec.get("journal"), "wait-cancelled")
                raise
        return received

run_host({"Collect": Collect})
"""


@pytest.fixture
def events_app(cluster: Cluster, tmp_path: Path) -> FabricClient:
    package = write_stateless_host_package(
        tmp_path / "Ev", script=EVENTS_HOST, types=["Collect"], app_type="EventsAppType"
    )
    cluster.client.deploy(package, "fabric:/Ev")
    return cluster.client


def wait_for_line(journal: Path, line: str, timeout: float = 30.0) -> None:
    """Wait until the job journaled ``line``: the job's process has nothing to notify us with,
    so this looks every 20 ms, up to a deadline."""
    deadline = time.monotonic() + timeout
    while not (journal.exists() and line in journal.read_text().splitlines()):
        assert time.monotonic() < deadline, f"{line!r} not journaled in {timeout} s"
        time.sleep(0.02)


def final_status(client: FabricClient, instance_id: str) -> Any:
    status = client.instance_status(instance_id, wait=True, timeout=30)
    assert status["runtimeStatus"] in ("Completed", "Failed", "Terminated"), status
    return status


def test_an_event_raised_before_the_code_waits_for_it_is_buffered(
    events_app: FabricClient, tmp_path: Path
) -> None:
    client = events_app
    journal = tmp_path / "journal"
    client.start_instance("Collect", "c-1", {"names": ["first", "second"], "journal": str(journal)})
    wait_for_line(journal, "waiting first")
    client.raise_event("c-1", "second", {"n": 2})  # nobody waits for it yet: buffered
    client.raise_event("c-1", "first", "one")
    status = final_status(client, "c-1")
    assert (status["runtimeStatus"], status["output"]) == ("Completed", ["one", {"n": 2}])


def test_events_of_one_name_arrive_in_the_order_they_were_raised(
    events_app: FabricClient,
) -> None:
    client = events_app
    client.start_instance("Collect", "c-2", {"names": ["tick"] * 5})
    for n in range(5):
        client.raise_event("c-2", "tick", n)
    assert final_status(client, "c-2")["output"] == [0, 1, 2, 3, 4]


def test_an_event_for_a_pending_instance_is_delivered_once_it_runs(
    events_app: FabricClient, tmp_path: Path
) -> None:
    client = events_app
    gate = tmp_path / "gate"
    client.start_instance("Collect", "c-3", {"names": ["go"], "gate": str(gate)})
    assert client.instance_status("c-3")["runtimeStatus"] == "Pending"  # held by the gate
    with ThreadPoolExecutor(1) as pool:
        raised = pool.submit(client.raise_event, "c-3", "go", {"approved": True}, timeout=60)
        gate.touch()
        raised.result(timeout=90)  # 202 once the replica opened and its host has the event
    status = final_status(client, "c-3")
    assert (status["runtimeStatus"], status["output"]) == ("Completed", [{"approved": True}])


@pytest.mark.anyio
async def test_an_event_waiting_for_a_pending_instance_is_answered_when_the_agent_stops(
    tmp_path: Path,
) -> None:
    # In-process, so that the stop lands while the event is known to wait (it holds the
    # instance's event lock); the processes are real.
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cluster = AgentCluster(state_dir, AgentSettings(node_count=1))
    try:
        package = write_stateless_host_package(
            tmp_path / "Ev", script=EVENTS_HOST, types=["Collect"], app_type="EventsAppType"
        )
        ptype = await cluster.types.provision(package)
        await cluster.catalog.create_application("fabric:/Ev", ptype.name, ptype.version, {})
        held = json.dumps({"names": ["go"], "gate": str(tmp_path / "gate")})  # stays Pending
        await cluster.instances.start("Collect", "c-5", held)
        instance = cluster.instances.get("c-5")
        raising = asyncio.create_task(cluster.events.raise_event("c-5", "go", 1, within=600))
        await asyncio.sleep(0)  # one turn: it takes the lock and waits for the instance
        assert instance.event_lock.locked()
        await cluster.shutdown()
        with pytest.raises(UnavailableError) as refused:
            await asyncio.wait_for(raising, 30)
        assert error_answer(refused.value)[0] == 503
        assert "shutting down" in str(refused.value)
    finally:
        if not cluster.state.closing:
            await cluster.shutdown()


def test_an_event_for_an_instance_still_pending_at_its_timeout_is_503(
    events_app: FabricClient, tmp_path: Path
) -> None:
    client = events_app
    gate = tmp_path / "gate"
    client.start_instance("Collect", "c-4", {"names": ["go"], "gate": str(gate)})
    with pytest.raises(ApiError, match="not ready to receive events") as refused:
        client.raise_event("c-4", "go", timeout=0.2)
    assert refused.value.status == 503
    gate.touch()  # the instance runs on; the refused event was not delivered
    wait_not_pending(client, "c-4")
    client.raise_event("c-4", "go", "late")
    assert final_status(client, "c-4")["output"] == ["late"]


def test_unknown_finished_and_malformed_requests_are_refused(events_app: FabricClient) -> None:
    client = events_app
    with pytest.raises(NotFoundError):
        client.raise_event("nobody", "go")
    client.start_instance("Collect", "done", {"names": []})
    assert final_status(client, "done")["runtimeStatus"] == "Completed"
    with pytest.raises(ApiError, match="is Completed and cannot process any raised events") as gone:
        client.raise_event("done", "go", 1)
    assert gone.value.status == 410
    client.terminate_instance("done")  # still finished: still 410
    with pytest.raises(ApiError) as again:
        client.raise_event("done", "go", 1)
    assert again.value.status == 410

    client.start_instance("Collect", "live", {"names": ["go"]})
    url = f"{client.endpoint}/runtime/webhooks/durabletask/instances/live/raiseEvent"
    for name, body in [
        ("go", b"{not json"),
        ("go", b""),
        ("go", b"NaN"),
        ("go", b"1e400"),  # Python reads it as inf; JSON has no such number
        ("go", b"[" * 101 + b"]" * 101),  # deeper than any event needs
        ("go", b"[" * 5000 + b"]" * 5000),  # deeper than Python's parser can go
        ("bad%20name", b"1"),
        ("9lives", b"1"),
        ("x" * 129, b"1"),
    ]:
        response = httpx.post(f"{url}/{name}", content=body, timeout=30)
        assert response.status_code == 400, (name, body, response.text)
        assert response.json()["Error"]["Code"] == "FABRIC_E_INVALID_ARGUMENT"
    huge = json.dumps("x" * (1024 * 1024)).encode()
    response = httpx.post(f"{url}/go", content=huge, timeout=30)
    assert response.status_code == 413
    # None of that reached the job: the next event is the first it gets.
    assert httpx.post(f"{url}/go", content=b'"ok"', timeout=30).status_code == 202
    assert final_status(client, "live")["output"] == ["ok"]


def test_terminate_while_the_code_waits_for_an_event_ends_it_terminated(
    events_app: FabricClient, cluster: Cluster, tmp_path: Path
) -> None:
    client = events_app
    journal = tmp_path / "journal"
    client.start_instance("Collect", "c-5", {"names": ["never"], "journal": str(journal)})
    wait_for_line(journal, "waiting never")
    client.raise_event("c-5", "other", 1)  # buffered under another name, never consumed
    status = client.terminate_instance("c-5")  # returns once the process is gone
    assert status is not None
    assert status["runtimeStatus"] == "Terminated"
    assert job_processes(cluster.state_dir, "c-5") == []
    # The wait was woken by the close, not left hanging until the process was killed.
    assert "wait-cancelled" in journal.read_text().splitlines()
    with pytest.raises(ApiError) as gone:
        client.raise_event("c-5", "never", 1)
    assert gone.value.status == 410


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_a_version_1_host_is_never_sent_an_event(cluster: Cluster, tmp_path: Path) -> None:
    """The Node.js test host offers protocol version 1 only: the agent answers 501 instead of
    sending it a message type it does not know, and the host keeps running."""
    echo_host = REPO / "tests/runtime/hosts/echo_host.js"
    package = write_stateless_host_package(
        tmp_path / "Node",
        script=(f"import os, sys\nos.execv({NODE!r}, [{NODE!r}, {str(echo_host)!r}, 'NodeJob'])\n"),
        types=["NodeJob"],
        app_type="NodeAppType",
    )
    cluster.client.deploy(package, "fabric:/Node")
    cluster.client.start_instance("NodeJob", "n-1")
    assert wait_not_pending(cluster.client, "n-1")["runtimeStatus"] == "Running"
    with pytest.raises(ApiError, match="protocol version 1") as refused:
        cluster.client.raise_event("n-1", "go", 1)
    assert refused.value.status == 501
    assert cluster.client.instance_status("n-1")["runtimeStatus"] == "Running"
    (process,) = job_processes(cluster.state_dir, "n-1")
    assert process.is_running()
