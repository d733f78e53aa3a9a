"""External events through a real runtime host process (protocol version 2)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING

import pytest

from fabrichost.protocol import (
    CloseReplica,
    Error,
    ErrorCode,
    EventRaised,
    RaiseEvent,
    ReplicaClosed,
    ReplicaOpened,
    RunCompleted,
    RunStatus,
    encode_frame,
    encode_payload,
)

from .agent_side import error_text
from .test_lifecycle import open_replica, wait_for_event

if TYPE_CHECKING:
    from pathlib import Path

    from .agent_side import AgentSide

KINDS = ["EventJobType", "SyncEventJobType"]


def start_job(host: AgentSide, kind: str, names: list[str]) -> str:
    partition = str(uuid.uuid4())
    opened = open_replica(host, kind, partition_id=partition, init_data=json.dumps(names))
    assert isinstance(opened, ReplicaOpened), error_text(opened)
    return partition


def raise_event(host: AgentSide, partition: str, name: str, data: object) -> None:
    reply = host.request(RaiseEvent, partition_id=partition, replica_id=1, name=name, data=data)
    assert isinstance(reply, EventRaised), error_text(reply)


def test_the_python_host_speaks_version_2_or_later(host: AgentSide) -> None:
    assert host.conn.version is not None
    assert host.conn.version >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_events_raised_before_the_wait_are_buffered_and_come_in_order(
    host: AgentSide, tmp_path: Path, kind: str
) -> None:
    partition = start_job(host, kind, ["first", "next", "next"])
    wait_for_event(tmp_path, "1 waiting first")
    # "next" twice while the job waits for "first": both are buffered, in order.
    raise_event(host, partition, "next", {"n": 1})
    raise_event(host, partition, "next", {"n": 2})
    raise_event(host, partition, "first", "go")
    done = host.receive(RunCompleted)
    assert (done.status, done.error) == (RunStatus.COMPLETED, None)
    assert done.output == ["go", {"n": 1}, {"n": 2}]


@pytest.mark.parametrize("kind", KINDS)
def test_closing_the_replica_wakes_a_waiting_run(
    host: AgentSide, tmp_path: Path, kind: str
) -> None:
    partition = start_job(host, kind, ["never"])
    wait_for_event(tmp_path, "1 waiting never")
    closed = host.request(CloseReplica, partition_id=partition, replica_id=1)
    assert isinstance(closed, ReplicaClosed), error_text(closed)
    # Woken by the inbox, not cancelled as a task (or abandoned) after the 10 s run grace.
    assert wait_for_event(tmp_path, "1 wait-cancelled")
    assert not any(isinstance(m, RunCompleted) for m in host.backlog)


def test_an_event_for_a_replica_the_host_does_not_have_is_refused(host: AgentSide) -> None:
    partition = start_job(host, "EventJobType", ["x"])
    closed = host.request(CloseReplica, partition_id=partition, replica_id=1)
    assert isinstance(closed, ReplicaClosed)
    # The agent's connection refuses to send it for a closed replica (a real agent reaches this
    # only through a race with the close): write it past that check, and record it as pending
    # so that the connection accepts the reply.
    request = RaiseEvent(
        id=host.conn.new_request_id(), partition_id=partition, replica_id=1, name="x", data=1
    )
    host.conn._ours[request.id] = request
    host.conn._last_sent_id = request.id
    host.send_raw(encode_frame(encode_payload(request.to_json())))
    reply = host.reply_to(request.id)
    assert isinstance(reply, Error)
    assert reply.code == ErrorCode.REPLICA_DOES_NOT_EXIST


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_after_the_run_returned_is_refused(host: AgentSide, kind: str) -> None:
    # Accepting it would answer 202 for an event nobody will ever take: the instance is over.
    partition = start_job(host, kind, ["x"])
    raised = host.request(RaiseEvent, partition_id=partition, replica_id=1, name="x", data=1)
    assert isinstance(raised, EventRaised), error_text(raised)
    host.receive(RunCompleted)
    late = host.request(RaiseEvent, partition_id=partition, replica_id=1, name="y", data=2)
    assert isinstance(late, Error)
    assert late.code == ErrorCode.REPLICA_DOES_NOT_EXIST
