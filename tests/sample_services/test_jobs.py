"""The singleton jobs of ``manifests/SingletonJobs``, in a real host over a real channel.

Each test opens a stateless instance the way the agent opens a singleton (role ``None``, the
input as ``init_data``) and checks what the host reports: ``RunCompleted`` for ``EchoJob``,
nothing until it is closed or aborted for ``EternalJob``.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from typing import TYPE_CHECKING

import pytest

from fabrichost.protocol import (
    AbortReplica,
    CloseReplica,
    EventRaised,
    OpenReplica,
    Ping,
    Pong,
    RaiseEvent,
    ReplicaClosed,
    ReplicaOpened,
    ReplicaRole,
    RunCompleted,
    RunStatus,
    ServiceKind,
    Shutdown,
    ShutdownComplete,
)
from sample_services.jobs import read_journal
from tests.runtime.agent_side import error_text

from .conftest import LAUNCHER

if TYPE_CHECKING:
    from pathlib import Path

    from tests.runtime.agent_side import AgentSide


def open_job(side: AgentSide, service_type: str, data: object = None, replica_id: int = 7) -> str:
    """Open one instance of ``service_type`` with ``data`` as its input; its partition id."""
    partition = str(uuid.uuid4())
    opened = side.request(
        OpenReplica,
        service_name=f"fabric:/Jobs/{service_type}-{replica_id}",
        service_type=service_type,
        service_kind=ServiceKind.STATELESS,
        partition_id=partition,
        replica_id=replica_id,
        role=ReplicaRole.NONE,
        init_data=None if data is None else json.dumps(data),
        endpoints={},
    )
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    return partition


def test_the_launcher_is_an_executable_shell_script() -> None:
    assert os.stat(LAUNCHER).st_mode & stat.S_IXUSR
    with LAUNCHER.open("rb") as script:
        assert script.readline() == b"#!/bin/sh\n"


@pytest.mark.parametrize(
    "data",
    [None, {"n": 1, "tags": ["a", "b"]}, [1, 2, 3], "text", 3.5, True, {"fail": None}],
    ids=["null", "object", "array", "string", "number", "bool", "fail-not-a-string"],
)
def test_echo_job_completes_with_its_input_as_output(jobs_host: AgentSide, data: object) -> None:
    partition = open_job(jobs_host, "EchoJob", data)
    done = jobs_host.receive(RunCompleted)
    assert (done.partition_id, done.replica_id) == (partition, 7)
    assert done.status is RunStatus.COMPLETED
    assert done.output == data
    assert done.error is None


def test_echo_job_fails_with_the_message_its_input_asks_for(jobs_host: AgentSide) -> None:
    open_job(jobs_host, "EchoJob", {"fail": "boom"})
    done = jobs_host.receive(RunCompleted)
    assert done.status is RunStatus.FAILED
    assert done.output is None
    assert done.error == "RuntimeError: boom"


def test_a_failed_echo_job_leaves_the_host_serving(jobs_host: AgentSide) -> None:
    open_job(jobs_host, "EchoJob", {"fail": "first"}, replica_id=1)
    assert jobs_host.receive(RunCompleted).status is RunStatus.FAILED
    open_job(jobs_host, "EchoJob", {"ok": True}, replica_id=2)
    done = jobs_host.receive(RunCompleted)
    assert (done.replica_id, done.output) == (2, {"ok": True})


def test_eternal_job_runs_until_closed_and_journals_its_lifetime(
    jobs_host: AgentSide, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    partition = open_job(jobs_host, "EternalJob", {"journal": str(journal)})
    # Still running: a ping round trip goes through and no RunCompleted came before it.
    assert isinstance(jobs_host.request(Ping), Pong)
    assert not [m for m in jobs_host.backlog if isinstance(m, RunCompleted)]
    closed = jobs_host.request(CloseReplica, partition_id=partition, replica_id=7)
    assert isinstance(closed, ReplicaClosed), error_text(closed)
    events = read_journal(journal)
    assert [(event, pid) for event, pid, _ in events] == [
        ("start", jobs_host.process.pid),
        ("end", jobs_host.process.pid),
    ]
    assert events[0][2] <= events[1][2]
    # Cancelled by the agent: not a completion, so nothing is reported.
    assert isinstance(jobs_host.request(Ping), Pong)
    assert not [m for m in jobs_host.backlog if isinstance(m, RunCompleted)]


def test_eternal_job_journals_its_end_when_aborted(jobs_host: AgentSide, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    partition = open_job(jobs_host, "EternalJob", {"journal": str(journal)})
    assert isinstance(jobs_host.request(Ping), Pong)
    jobs_host.send(AbortReplica(partition_id=partition, replica_id=7))
    # The abort is not answered and the run task ends after it in its own time: the host's
    # exit (after Shutdown) is the point by which the end must be in the journal.
    assert isinstance(jobs_host.request(Shutdown), ShutdownComplete)
    jobs_host.expect_eof()
    assert jobs_host.wait_exit() == 0
    assert [event for event, _, _ in read_journal(journal)] == ["start", "end"]


def test_eternal_job_without_a_journal_runs_until_closed(jobs_host: AgentSide) -> None:
    partition = open_job(jobs_host, "EternalJob", {"other": 1})
    closed = jobs_host.request(CloseReplica, partition_id=partition, replica_id=7)
    assert isinstance(closed, ReplicaClosed), error_text(closed)
    assert not [m for m in jobs_host.backlog if isinstance(m, RunCompleted)]


def test_each_eternal_incarnation_journals_one_start(jobs_host: AgentSide, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    for replica_id in (1, 2, 3):
        partition = open_job(jobs_host, "EternalJob", {"journal": str(journal)}, replica_id)
        closed = jobs_host.request(CloseReplica, partition_id=partition, replica_id=replica_id)
        assert isinstance(closed, ReplicaClosed), error_text(closed)
    events = [event for event, _, _ in read_journal(journal)]
    assert events == ["start", "end"] * 3
    stamps = [stamp for _, _, stamp in read_journal(journal)]
    assert stamps == sorted(stamps)  # lifetimes one after the other, never overlapping


def test_approval_job_completes_with_the_approval_events_data(jobs_host: AgentSide) -> None:
    partition = open_job(jobs_host, "ApprovalJob")
    raised = jobs_host.request(
        RaiseEvent, partition_id=partition, replica_id=7, name="approval", data={"by": "ann"}
    )
    assert isinstance(raised, EventRaised), error_text(raised)
    done = jobs_host.receive(RunCompleted)
    assert (done.status, done.output, done.error) == (RunStatus.COMPLETED, {"by": "ann"}, None)


def test_approval_job_ignores_other_events(jobs_host: AgentSide) -> None:
    partition = open_job(jobs_host, "ApprovalJob")
    for name, data in (("reminder", 1), ("approval", "yes")):
        raised = jobs_host.request(
            RaiseEvent, partition_id=partition, replica_id=7, name=name, data=data
        )
        assert isinstance(raised, EventRaised), error_text(raised)
    assert jobs_host.receive(RunCompleted).output == "yes"


def test_approval_job_fails_when_no_approval_comes_in_time(jobs_host: AgentSide) -> None:
    open_job(jobs_host, "ApprovalJob", {"timeout": 0.05})
    done = jobs_host.receive(RunCompleted)
    assert done.status is RunStatus.FAILED
    assert done.error == "TimeoutError: no approval within 0.05 s"
