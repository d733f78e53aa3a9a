"""External events (protocol version 2): ``RaiseEvent`` and ``EventRaised``, bytes in, messages
out."""

from __future__ import annotations

import json

import pytest

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    NEED_DATA,
    SUPPORTED_VERSIONS,
    Connection,
    Error,
    ErrorCode,
    EventRaised,
    Hello,
    RaiseEvent,
    Role,
    RoleChanged,
    Shutdown,
    State,
    Welcome,
    is_event_name,
    message_from_json,
    negotiate_version,
)

from .helpers import PARTITION, frame, opened_pair


def raise_event(conn: Connection, replica_id: int = 1, name: str = "approval") -> RaiseEvent:
    return RaiseEvent(
        id=conn.new_request_id(),
        partition_id=PARTITION,
        replica_id=replica_id,
        name=name,
        data={"approved": True},
    )


def wire(**fields: object) -> bytes:
    obj: dict[str, object] = {
        "type": "RaiseEvent",
        "id": 1,
        "partition_id": PARTITION,
        "replica_id": 7,
        "name": "approval",
        "data": {"by": "ann"},
    }
    obj.update(fields)
    return frame(json.dumps(obj, separators=(",", ":")).encode())


def test_bytes_in_a_raise_event_out() -> None:
    pair = opened_pair()
    host = pair.host
    host.receive_data(wire(id=1, replica_id=7, data=[1, "two", None, 2.5]))
    event = host.next_event()
    assert event == RaiseEvent(
        id=1, partition_id=PARTITION, replica_id=7, name="approval", data=[1, "two", None, 2.5]
    )
    assert host.next_event() is NEED_DATA


def test_a_raise_event_is_answered_by_event_raised_or_error() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    request = pair.exchange(Role.AGENT, raise_event(pair.agent))
    pair.exchange(Role.HOST, EventRaised(re=request.id))  # type: ignore[attr-defined]
    second = pair.exchange(Role.AGENT, raise_event(pair.agent))
    pair.exchange(
        Role.HOST,
        Error(re=second.id, code=ErrorCode.EVENT_BUFFER_FULL, message="full"),  # type: ignore[attr-defined]
    )
    third = pair.exchange(Role.AGENT, raise_event(pair.agent))
    with pytest.raises(LocalProtocolError, match="RoleChanged cannot answer RaiseEvent"):
        pair.host.send(RoleChanged(re=third.id, address=""))  # type: ignore[attr-defined]
    pair.agent.receive_data(frame(b'{"type":"ReplicaClosed","re":%d}' % third.id))  # type: ignore[attr-defined]
    with pytest.raises(RemoteProtocolError, match="ReplicaClosed cannot answer RaiseEvent"):
        pair.agent.next_event()


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "1st"},
        {"name": "a b"},
        {"name": "appr/oval"},
        {"name": "é"},
        {"name": "a" * 129},
        {"name": 5},
        {"name": None},
        {"data": float("nan")},
        {"replica_id": 0},
        {"partition_id": PARTITION.upper()},
        {"extra": 1},
    ],
    ids=str,
)
def test_a_malformed_raise_event_faults_the_sender(fields: dict[str, object]) -> None:
    host = opened_pair().host
    if fields.get("data") != fields.get("data"):  # NaN: json.dumps writes it, JSON forbids it
        host.receive_data(frame(wire()[4:].replace(b'{"by":"ann"}', b"NaN")))
    else:
        host.receive_data(wire(**fields))
    with pytest.raises(RemoteProtocolError, match=r"RaiseEvent|not valid JSON|NaN"):
        host.next_event()
    assert host.state is State.FAULTED


def test_a_raise_event_without_data_is_refused() -> None:
    obj = json.loads(wire()[4:])
    del obj["data"]
    with pytest.raises(RemoteProtocolError, match=r"RaiseEvent: missing fields \['data'\]"):
        message_from_json(obj)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("approval", True),
        ("_x", True),
        ("Order.Shipped-2", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("-x", False),
        (".x", False),
        ("9lives", False),
        ("a:b", False),
        ("ä", False),
    ],
)
def test_the_event_name_rule(name: str, valid: bool) -> None:
    assert is_event_name(name) is valid


def test_the_agent_raises_events_only_for_replicas_open_in_the_host() -> None:
    pair = opened_pair()
    with pytest.raises(LocalProtocolError, match=r"replica 1 .* not open in the host"):
        pair.agent.send(raise_event(pair.agent, replica_id=1))  # never opened
    pair.exchange(Role.AGENT, pair.open_request(replica_id=2))
    with pytest.raises(LocalProtocolError, match=r"replica 2 .* not open in the host"):
        pair.agent.send(raise_event(pair.agent, replica_id=2))  # still opening
    pair.open(replica_id=3)
    pair.exchange(Role.AGENT, raise_event(pair.agent, replica_id=3))


# -- versions -------------------------------------------------------------------------------------


def test_the_agent_chooses_version_2_when_the_host_offers_it() -> None:
    assert SUPPORTED_VERSIONS == (1, 2, 3)
    assert negotiate_version((1, 2)) == 2
    assert negotiate_version((1, 2, 3)) == 3
    assert negotiate_version((1,)) == 1  # a version 1 host (the Node.js one) stays at 1


def test_on_a_version_1_channel_no_event_may_be_sent_either_way() -> None:
    pair = opened_pair(version=1)
    pair.open(replica_id=1)
    with pytest.raises(LocalProtocolError, match="RaiseEvent needs protocol version 2"):
        pair.agent.send(raise_event(pair.agent))
    assert pair.agent.state is State.OPEN  # nothing changed
    pair.host.receive_data(wire(id=pair.agent.new_request_id(), replica_id=1))
    with pytest.raises(RemoteProtocolError, match="RaiseEvent needs protocol version 2"):
        pair.host.next_event()
    assert pair.host.state is State.FAULTED


def test_a_version_1_host_cannot_answer_with_event_raised() -> None:
    pair = opened_pair(version=1)
    pair.agent.receive_data(frame(b'{"type":"EventRaised","re":1}'))
    with pytest.raises(RemoteProtocolError, match="EventRaised needs protocol version 2"):
        pair.agent.next_event()


def test_a_host_that_offers_only_version_1_gets_version_1() -> None:
    agent, host = Connection(Role.AGENT), Connection(Role.HOST, supported_versions=(1,))
    hello = Hello(id=1, versions=host.supported_versions, pid=1, runtime="node")
    agent.receive_data(host.send(hello))
    assert agent.next_event() == hello
    version = negotiate_version(hello.versions, agent.supported_versions)
    host.receive_data(agent.send(Welcome(re=1, version=version or 0, node_name="n")))
    host.next_event()
    assert agent.version == host.version == 1


def test_a_pending_event_is_still_answered_while_closing() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    request = pair.exchange(Role.AGENT, raise_event(pair.agent))
    pair.exchange(Role.AGENT, Shutdown(id=pair.agent.new_request_id()))
    assert pair.agent.state is State.CLOSING
    with pytest.raises(LocalProtocolError, match="RaiseEvent cannot be sent in state CLOSING"):
        pair.agent.send(raise_event(pair.agent))
    pair.exchange(Role.HOST, EventRaised(re=request.id))  # type: ignore[attr-defined]
