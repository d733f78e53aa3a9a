"""A service whose close() raises: its replica is aborted, as in Service Fabric, and dropped.

The host answers the CloseReplica with ``Error``. That must not escape the delete of the service:
the replica is aborted and dropped all the same, its activation deactivated and its process
stopped. Before, a terminate of such a singleton instance never returned, every later start of
its ID hung, and an application delete left the application half-deleted ("Deleting" in memory
with its store row gone) and its processes running.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from fabrichost.wire import ActivationMode, ServiceDescription, ServiceKind
from tests.integration.conftest import (
    job_processes,
    marked_processes,
    write_stateless_host_package,
)
from tests.integration.test_singletons import wait_for_starts, wait_not_pending

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.integration.conftest import Cluster

pytestmark = pytest.mark.integration

DEADLINE = 30.0  # far above a normal stop (stop grace included), far below "hangs for ever"

HOST = """
import json
from fabrichost.runtime import StatelessService, run_host
from sample_services.jobs import append_journal

def journal(event, data):
    append_journal(data["journal"], event)

class GoodJob(StatelessService):
    async def run(self, cancel):
        journal("start", json.loads(self.context.init_data))
        await cancel.wait_cancelled()

class BadCloseJob(GoodJob):
    def close(self):
        raise RuntimeError("close failed")

class BadCloseService(StatelessService):
    def open(self):
        return "bad://close"

    def close(self):
        raise RuntimeError("close failed")

run_host({"GoodJob": GoodJob, "BadCloseJob": BadCloseJob, "BadCloseService": BadCloseService})
"""


def _write_package(root: Path) -> Path:
    return write_stateless_host_package(
        root,
        script=HOST,
        types=("GoodJob", "BadCloseJob", "BadCloseService"),
        app_type="CloseAppType",
        package="ClosePkg",
    )


def _start(cluster: Cluster, function: str, instance: str, payload: Any) -> httpx.Response:
    return httpx.post(
        f"{cluster.client.endpoint}/orchestrators/{function}/{instance}",
        json=payload,
        timeout=DEADLINE,
    )


def _terminate(cluster: Cluster, instance: str) -> httpx.Response:
    url = f"{cluster.client.endpoint}/runtime/webhooks/durabletask/instances/{instance}/terminate"
    return httpx.post(url, timeout=DEADLINE)


def _wait_until(condition: Callable[[], bool], within: float = DEADLINE) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _in_background(action: Callable[[], None]) -> tuple[threading.Thread, list[object]]:
    """Run ``action`` in a daemon thread: a hang fails the test, not the whole run."""
    result: list[object] = []

    def run() -> None:
        try:
            action()
            result.append("done")
        except Exception as exc:  # reported to the test thread
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.fixture
def deployed(cluster: Cluster, tmp_path: Path) -> Cluster:
    cluster.client.deploy(_write_package(tmp_path / "pkg"), "fabric:/Close")
    return cluster


def test_terminate_of_a_job_whose_close_raises_returns_and_the_id_starts_again(
    deployed: Cluster, tmp_path: Path
) -> None:
    cluster = deployed
    journal = tmp_path / "journal"
    started = _start(cluster, "BadCloseJob", "bad", {"journal": str(journal)})
    assert started.status_code == 202, started.text
    wait_for_starts(journal, 1, timeout=DEADLINE)
    assert job_processes(cluster.state_dir, "bad")

    began = time.monotonic()
    try:
        terminated = _terminate(cluster, "bad")
    except httpx.TimeoutException:
        pytest.fail(f"terminate did not return in {DEADLINE} s")
    assert terminated.status_code == 202, terminated.text
    assert time.monotonic() - began < DEADLINE
    assert terminated.json()["runtimeStatus"] == "Terminated"
    assert job_processes(cluster.state_dir, "bad") == []  # it returned once the process was gone

    # The ID is free: a new start of it runs (another function, so its close works).
    again = _start(cluster, "GoodJob", "bad", {"journal": str(journal)})
    assert again.status_code == 202, again.text
    wait_for_starts(journal, 2, timeout=DEADLINE)
    # The host journals its start right after it answers the open; the agent marks the
    # instance Running when it reads that answer, a moment later.
    status = wait_not_pending(cluster.client, "bad", DEADLINE)
    assert status["runtimeStatus"] == "Running"
    assert status["generation"] == json.loads(terminated.text)["generation"] + 1
    assert _terminate(cluster, "bad").status_code == 202
    assert job_processes(cluster.state_dir, "bad") == []


def test_deleting_an_application_with_services_whose_close_raises_completes(
    deployed: Cluster, tmp_path: Path
) -> None:
    cluster = deployed
    journal = tmp_path / "journal"
    assert _start(cluster, "BadCloseJob", "job", {"journal": str(journal)}).status_code == 202
    wait_for_starts(journal, 1, timeout=DEADLINE)
    for name, mode in (
        ("fabric:/Close/Shared", ActivationMode.SHARED_PROCESS),
        ("fabric:/Close/Exclusive", ActivationMode.EXCLUSIVE_PROCESS),
    ):
        description = ServiceDescription(
            name=name,
            type_name="BadCloseService",
            kind=ServiceKind.STATELESS,
            activation_mode=mode,
        )
        cluster.client.create_service("fabric:/Close", description, wait=True)
    assert marked_processes(cluster.state_dir)

    thread, result = _in_background(lambda: cluster.client.delete_application("fabric:/Close"))
    thread.join(timeout=DEADLINE)
    assert result == ["done"], "the application delete did not complete in time"
    assert cluster.client.applications() == []
    _wait_until(lambda: marked_processes(cluster.state_dir) == [])
    assert cluster.client.instance_status("job")["runtimeStatus"] == "Terminated"

    # Nothing of it is left half-deleted: the same name deploys again, the ID starts again.
    cluster.client.deploy(_write_package(tmp_path / "pkg2"), "fabric:/Close")
    assert _start(cluster, "GoodJob", "job", {"journal": str(journal)}).status_code == 202
    wait_for_starts(journal, 2, timeout=DEADLINE)
    assert _terminate(cluster, "job").status_code == 202
