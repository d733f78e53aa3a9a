"""The connection state machine: who may send what, when, and about which replica."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    CLOSED,
    NEED_DATA,
    SUPPORTED_VERSIONS,
    AbortReplica,
    ChangeRole,
    CloseReplica,
    Connection,
    Error,
    ErrorCode,
    Fault,
    Hello,
    Message,
    OpenReplica,
    Ping,
    Pong,
    RegisterServiceType,
    ReplicaClosed,
    ReplicaOpened,
    ReplicaRole,
    ReportLoad,
    Role,
    RoleChanged,
    Shutdown,
    ShutdownComplete,
    State,
    Welcome,
    encode_frame,
    encode_payload,
    negotiate_version,
)
from fabrichost.protocol._connection import FORGIVEN_LIMIT

from .helpers import OTHER_PARTITION, PARTITION, ConnectionPair, opened_pair

if TYPE_CHECKING:
    from collections.abc import Callable


def raw(message: Message) -> bytes:
    """The bytes of ``message`` without any connection's checks (to play a rule-breaking peer)."""
    return encode_frame(encode_payload(message.to_json()))


def load(replica_id: int = 1, partition_id: str = PARTITION) -> ReportLoad:
    return ReportLoad(partition_id=partition_id, replica_id=replica_id, metrics={"cpu": 1})


def states(pair: ConnectionPair) -> tuple[State, State]:
    return (pair.agent.state, pair.host.state)


def receive_raw(conn: Connection, message: Message) -> Message:
    conn.receive_data(raw(message))
    event = conn.next_event()
    assert isinstance(event, Message)
    return event


# -- the handshake --------------------------------------------------------------------------------


def test_the_handshake_opens_both_ends_with_the_chosen_version() -> None:
    pair = ConnectionPair()
    assert states(pair) == (State.IDLE, State.IDLE)
    pair.handshake()
    assert states(pair) == (State.OPEN, State.OPEN)
    assert pair.agent.version == pair.host.version == max(SUPPORTED_VERSIONS)


def test_the_agent_cannot_speak_before_hello() -> None:
    pair = ConnectionPair()
    with pytest.raises(LocalProtocolError, match="Ping cannot be sent in state IDLE"):
        pair.agent.send(Ping(id=1))


def test_the_host_must_say_hello_before_anything_else() -> None:
    pair = ConnectionPair()
    with pytest.raises(
        LocalProtocolError, match="RegisterServiceType cannot be sent in state IDLE"
    ):
        pair.host.send(RegisterServiceType(id=1, service_type="T"))
    with pytest.raises(RemoteProtocolError, match="cannot be sent by the host in state IDLE"):
        receive_raw(pair.agent, RegisterServiceType(id=1, service_type="T"))
    assert pair.agent.state is State.FAULTED


def test_the_host_sends_nothing_while_waiting_for_welcome() -> None:
    pair = ConnectionPair()
    pair.exchange(Role.HOST, Hello(id=1, versions=(1,), pid=1, runtime=""))
    with pytest.raises(LocalProtocolError, match="Ping cannot be sent in state HANDSHAKE"):
        pair.host.send(Ping(id=2))


def test_welcome_must_choose_an_offered_version() -> None:
    pair = ConnectionPair()
    pair.exchange(Role.HOST, Hello(id=1, versions=(1,), pid=1, runtime=""))
    with pytest.raises(LocalProtocolError, match="Welcome chose version 2"):
        pair.agent.send(Welcome(re=1, version=2, node_name="n"))
    assert pair.agent.state is State.HANDSHAKE
    with pytest.raises(RemoteProtocolError, match=r"the host offered \[1\]"):
        receive_raw(pair.host, Welcome(re=1, version=2, node_name="n"))


def test_welcome_must_choose_a_version_the_host_speaks() -> None:
    host = Connection(Role.HOST, supported_versions=(1,))
    host.send(Hello(id=1, versions=(1, 2), pid=1, runtime=""))
    with pytest.raises(RemoteProtocolError, match=r"this end speaks \[1\]"):
        receive_raw(host, Welcome(re=1, version=2, node_name="n"))


def test_a_version_mismatch_gets_error_and_ends_the_conversation() -> None:
    pair = ConnectionPair()
    hello = Hello(id=1, versions=(7, 8), pid=1, runtime="future")
    pair.exchange(Role.HOST, hello)
    assert negotiate_version(hello.versions) is None
    pair.exchange(Role.AGENT, Error(re=1, code=ErrorCode.UNSUPPORTED_VERSION, message="speaks [1]"))
    assert states(pair) == (State.DONE, State.DONE)
    with pytest.raises(LocalProtocolError, match="Fault cannot be sent in state DONE"):
        pair.host.send(Fault(code="x", message=""))


def test_negotiation_picks_the_highest_common_version() -> None:
    assert negotiate_version((1, 2, 3), (2, 3, 4)) == 3
    assert negotiate_version((1,), (1,)) == 1


# -- requests and replies -------------------------------------------------------------------------


def test_request_ids_must_increase_per_sender() -> None:
    pair = opened_pair()
    pair.exchange(Role.AGENT, Ping(id=5))
    with pytest.raises(LocalProtocolError, match="id 5, not above the previous request id 5"):
        pair.agent.send(Ping(id=5))
    assert pair.agent.new_request_id() == 6
    with pytest.raises(RemoteProtocolError, match="id 1, not above the previous request id 2"):
        receive_raw(pair.agent, Ping(id=1))


def test_a_reply_to_an_id_never_sent_is_a_violation() -> None:
    pair = opened_pair()
    with pytest.raises(RemoteProtocolError, match="answers request id 99, which was never sent"):
        receive_raw(pair.agent, Pong(re=99))


def test_replying_to_nothing_is_refused_locally() -> None:
    pair = opened_pair()
    with pytest.raises(LocalProtocolError, match="answers request id 99, which is not pending"):
        pair.host.send(Pong(re=99))


def test_a_reply_must_be_of_a_type_that_answers_the_request() -> None:
    pair = opened_pair()
    request = pair.exchange(Role.AGENT, pair.open_request())
    assert isinstance(request, OpenReplica)
    with pytest.raises(LocalProtocolError, match="Pong cannot answer OpenReplica"):
        pair.host.send(Pong(re=request.id))
    with pytest.raises(RemoteProtocolError, match="Pong cannot answer OpenReplica"):
        receive_raw(pair.agent, Pong(re=request.id))


def test_pending_and_unanswered_requests_are_tracked_until_answered() -> None:
    pair = opened_pair()
    ping = pair.exchange(Role.AGENT, Ping(id=pair.agent.new_request_id()))
    assert isinstance(ping, Ping)
    assert dict(pair.agent.pending_requests()) == {ping.id: ping}
    assert dict(pair.host.unanswered_requests()) == {ping.id: ping}
    pair.exchange(Role.HOST, Pong(re=ping.id))
    assert not pair.agent.pending_requests()
    assert not pair.host.unanswered_requests()


def test_a_late_reply_to_an_expired_request_is_dropped_silently() -> None:
    pair = opened_pair()
    ping = Ping(id=pair.agent.new_request_id())
    pair.exchange(Role.AGENT, ping)
    assert pair.agent.expire_request(ping.id) == ping
    assert not pair.agent.pending_requests()
    assert pair.send(Role.HOST, Pong(re=ping.id)) == []
    assert pair.agent.state is State.OPEN
    with pytest.raises(RemoteProtocolError, match="which was never sent"):
        receive_raw(pair.agent, Pong(re=ping.id))  # only one late reply is forgiven


def test_only_the_most_recent_expired_requests_are_remembered() -> None:
    # A host that never answers must not make the agent's memory grow without bound.
    agent = opened_pair().agent
    pings = [Ping(id=agent.new_request_id()) for _ in range(FORGIVEN_LIMIT + 1)]
    for ping in pings:
        agent.send(ping)
        agent.expire_request(ping.id)
    assert len(agent._expired) == FORGIVEN_LIMIT
    agent.receive_data(raw(Pong(re=pings[-1].id)))
    assert agent.next_event() is NEED_DATA  # recent: still forgiven
    with pytest.raises(RemoteProtocolError, match="which was never sent"):
        receive_raw(agent, Pong(re=pings[0].id))  # forgotten long ago


def test_expiring_what_is_not_pending_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="request id 3 is not pending"):
        opened_pair().agent.expire_request(3)


def test_registration_is_recorded_on_both_ends() -> None:
    pair = opened_pair()
    assert pair.agent.registered_types == pair.host.registered_types == {"MyServiceType"}


def test_a_refused_registration_is_not_recorded() -> None:
    pair = opened_pair()
    request = RegisterServiceType(id=pair.host.new_request_id(), service_type="Other")
    pair.exchange(Role.HOST, request)
    pair.exchange(Role.AGENT, Error(re=request.id, code="ServiceTypeNotRegistered", message=""))
    assert "Other" not in pair.agent.registered_types


def test_opening_a_replica_of_an_unregistered_type_is_refused_on_both_ends() -> None:
    pair = opened_pair()
    request = pair.open_request(service_type="Unregistered")
    with pytest.raises(LocalProtocolError, match="'Unregistered', which the host has not"):
        pair.agent.send(request)
    with pytest.raises(RemoteProtocolError, match="'Unregistered', which the host has not"):
        receive_raw(pair.host, request)


# -- replica ownership (agent end) ----------------------------------------------------------------


def test_reports_about_an_owned_replica_are_delivered() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    assert pair.agent.owned_replicas() == {(PARTITION, 1)}
    pair.exchange(Role.HOST, load(1))


def test_reports_about_a_replica_still_opening_are_delivered() -> None:
    pair = opened_pair()
    pair.exchange(Role.AGENT, pair.open_request(replica_id=3))
    pair.exchange(Role.HOST, load(3))


@pytest.mark.parametrize(
    ("replica_id", "partition_id"), [(2, PARTITION), (1, OTHER_PARTITION)], ids=["id", "partition"]
)
def test_a_report_naming_a_replica_the_host_does_not_own_faults_it(
    replica_id: int, partition_id: str
) -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    with pytest.raises(RemoteProtocolError, match="which this host does not own"):
        receive_raw(pair.agent, load(replica_id, partition_id))
    assert pair.agent.state is State.FAULTED


def test_a_closed_replica_is_no_longer_owned() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    close = CloseReplica(id=pair.agent.new_request_id(), partition_id=PARTITION, replica_id=1)
    pair.exchange(Role.AGENT, close)
    pair.exchange(Role.HOST, load(1))  # still owned while closing
    pair.exchange(Role.HOST, ReplicaClosed(re=close.id))
    assert pair.agent.owned_replicas() == frozenset()
    with pytest.raises(RemoteProtocolError, match="does not own"):
        receive_raw(pair.agent, load(1))


def test_a_failed_close_leaves_the_replica_owned() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    close = CloseReplica(id=pair.agent.new_request_id(), partition_id=PARTITION, replica_id=1)
    pair.exchange(Role.AGENT, close)
    pair.exchange(Role.HOST, Error(re=close.id, code="ServiceFailed", message=""))
    assert pair.agent.owned_replicas() == {(PARTITION, 1)}


def test_reports_that_cross_an_abort_on_the_wire_are_dropped_silently() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    pair.send(Role.AGENT, AbortReplica(partition_id=PARTITION, replica_id=1))
    assert pair.agent.owned_replicas() == frozenset()
    assert pair.send(Role.HOST, load(1)) == []
    assert pair.agent.state is State.OPEN


def test_only_the_most_recently_aborted_replicas_are_remembered() -> None:
    pair = opened_pair()
    for replica_id in range(1, FORGIVEN_LIMIT + 2):
        pair.open(replica_id=replica_id)
        pair.send(Role.AGENT, AbortReplica(partition_id=PARTITION, replica_id=replica_id))
    assert len(pair.agent._aborted) == FORGIVEN_LIMIT
    assert pair.send(Role.HOST, load(FORGIVEN_LIMIT + 1)) == []  # recent: dropped silently
    with pytest.raises(RemoteProtocolError, match="which this host does not own"):
        receive_raw(pair.agent, load(1))  # forgotten long ago


def test_a_failed_open_leaves_the_replica_unowned() -> None:
    pair = opened_pair()
    request = pair.exchange(Role.AGENT, pair.open_request(replica_id=1))
    assert isinstance(request, OpenReplica)
    pair.exchange(Role.HOST, Error(re=request.id, code="ServiceFailed", message="boom"))
    assert pair.agent.owned_replicas() == frozenset()


def test_the_reply_to_an_open_aborted_meanwhile_is_still_delivered() -> None:
    pair = opened_pair()
    request = pair.exchange(Role.AGENT, pair.open_request(replica_id=1))
    assert isinstance(request, OpenReplica)
    pair.send(Role.AGENT, AbortReplica(partition_id=PARTITION, replica_id=1))
    opened = ReplicaOpened(re=request.id, partition_id=PARTITION, replica_id=1, address="")
    pair.exchange(Role.HOST, opened)
    assert pair.agent.owned_replicas() == frozenset()


def test_a_replica_can_be_opened_again_after_an_abort() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    pair.send(Role.AGENT, AbortReplica(partition_id=PARTITION, replica_id=1))
    pair.open(replica_id=1)
    pair.exchange(Role.HOST, load(1))


def test_replica_opened_must_name_the_replica_that_was_opened() -> None:
    pair = opened_pair()
    request = pair.exchange(Role.AGENT, pair.open_request(replica_id=1))
    assert isinstance(request, OpenReplica)
    wrong = ReplicaOpened(re=request.id, partition_id=PARTITION, replica_id=2, address="")
    with pytest.raises(LocalProtocolError, match="but request 1 opened replica 1"):
        pair.host.send(wrong)
    with pytest.raises(RemoteProtocolError, match="names replica 2"):
        receive_raw(pair.agent, wrong)


def test_the_agent_cannot_open_a_replica_twice() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    with pytest.raises(LocalProtocolError, match="which the host already owns"):
        pair.agent.send(pair.open_request(replica_id=1))


@pytest.mark.parametrize("kind", [ChangeRole, CloseReplica])
def test_the_agent_changes_and_closes_only_open_replicas(kind: Callable[..., Message]) -> None:
    pair = opened_pair()
    pair.exchange(Role.AGENT, pair.open_request(replica_id=1))  # still opening
    fields: dict[str, object] = {"partition_id": PARTITION, "replica_id": 1}
    if kind is ChangeRole:
        fields["role"] = ReplicaRole.ACTIVE_SECONDARY
    with pytest.raises(LocalProtocolError, match="which is not open in the host"):
        pair.agent.send(kind(id=pair.agent.new_request_id(), **fields))


def test_change_role_round_trip() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    change = ChangeRole(
        id=pair.agent.new_request_id(),
        partition_id=PARTITION,
        replica_id=1,
        role=ReplicaRole.ACTIVE_SECONDARY,
    )
    pair.exchange(Role.AGENT, change)
    pair.exchange(Role.HOST, RoleChanged(re=change.id, address="x"))
    assert pair.agent.owned_replicas() == {(PARTITION, 1)}


def test_the_agent_cannot_abort_a_replica_it_never_gave() -> None:
    with pytest.raises(LocalProtocolError, match="which the host does not own"):
        opened_pair().agent.send(AbortReplica(partition_id=PARTITION, replica_id=9))


def test_the_host_end_does_not_track_ownership() -> None:
    pair = opened_pair()
    pair.host.send(load(5))  # the agent would refuse it; the host's end lets its owner decide
    assert pair.host.owned_replicas() == frozenset()


# -- shutdown, EOF and faults ---------------------------------------------------------------------


def test_shutdown_allows_only_replies_and_reports_then_done() -> None:
    pair = opened_pair()
    pair.open(replica_id=1)
    ping = Ping(id=pair.host.new_request_id())
    pair.exchange(Role.HOST, ping)
    shutdown = Shutdown(id=pair.agent.new_request_id())
    pair.exchange(Role.AGENT, shutdown)
    assert states(pair) == (State.CLOSING, State.CLOSING)
    with pytest.raises(LocalProtocolError, match="OpenReplica cannot be sent in state CLOSING"):
        pair.agent.send(pair.open_request(replica_id=2))
    with pytest.raises(LocalProtocolError, match="Ping cannot be sent in state CLOSING"):
        pair.host.send(Ping(id=pair.host.new_request_id()))
    pair.exchange(Role.AGENT, Pong(re=ping.id))
    pair.exchange(Role.HOST, load(1))
    pair.exchange(Role.HOST, ShutdownComplete(re=shutdown.id))
    assert states(pair) == (State.DONE, State.DONE)
    with pytest.raises(LocalProtocolError, match="cannot be sent in state DONE"):
        pair.host.send(load(1))


def test_eof_closes_after_the_messages_before_it() -> None:
    pair = opened_pair()
    pair.agent.receive_data(raw(Ping(id=10)) + raw(Ping(id=11)))
    pair.agent.receive_data(b"")
    assert [pair.agent.next_event(), pair.agent.next_event()] == [Ping(id=10), Ping(id=11)]
    assert pair.agent.next_event() is CLOSED
    assert pair.agent.next_event() is CLOSED
    assert pair.agent.state is State.CLOSED
    with pytest.raises(LocalProtocolError, match="Pong cannot be sent in state CLOSED"):
        pair.agent.send(Pong(re=10))


def test_eof_in_the_middle_of_a_frame_is_a_violation() -> None:
    conn = Connection(Role.AGENT)
    conn.receive_data(raw(Hello(id=1, versions=(1,), pid=1, runtime=""))[:10])
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match=r"in the middle of a frame \(10 bytes"):
        conn.next_event()


def test_feeding_after_eof_is_a_local_error() -> None:
    conn = Connection(Role.AGENT)
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError, match="after EOF"):
        conn.receive_data(b"x")


def test_need_data_until_a_frame_is_complete() -> None:
    conn = Connection(Role.AGENT)
    data = raw(Hello(id=1, versions=(1,), pid=1, runtime=""))
    for byte in data[:-1]:
        conn.receive_data(bytes([byte]))
        assert conn.next_event() is NEED_DATA
    conn.receive_data(data[-1:])
    assert isinstance(conn.next_event(), Hello)


def test_a_faulted_connection_stays_faulted_and_may_send_one_fault() -> None:
    conn = Connection(Role.AGENT)
    conn.receive_data(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError, match="length 0"):
        conn.next_event()
    assert conn.state is State.FAULTED
    conn.receive_data(b"ignored")
    with pytest.raises(RemoteProtocolError, match="the connection is faulted: frame of length 0"):
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="Welcome cannot be sent in state FAULTED"):
        conn.send(Welcome(re=1, version=1, node_name="n"))
    assert conn.send(Fault(code="ProtocolViolation", message="length 0"))
    with pytest.raises(LocalProtocolError, match="Fault cannot be sent in state FAULTED"):
        conn.send(Fault(code="ProtocolViolation", message="again"))


def test_a_fault_ends_the_conversation_on_both_ends() -> None:
    pair = opened_pair()
    pair.exchange(Role.HOST, Fault(code="ProtocolViolation", message="you sent garbage"))
    assert states(pair) == (State.DONE, State.DONE)


def test_sentinels_read_well_in_test_output() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert repr(CLOSED) == "CLOSED"
