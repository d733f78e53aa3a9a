"""Every message type in every state, for both ends: the table and the code agree."""

from __future__ import annotations

import pytest

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    Hello,
    Message,
    Role,
    Shutdown,
    ShutdownComplete,
    State,
    encode_frame,
    encode_payload,
)
from fabrichost.protocol._state import SENDABLE

from .helpers import ConnectionPair, opened_pair
from .samples import SAMPLES

LIVE_STATES = (State.IDLE, State.HANDSHAKE, State.OPEN, State.CLOSING, State.DONE)


def pair_in(state: State) -> ConnectionPair:
    """A fresh pair whose two ends are both in ``state``."""
    if state is State.IDLE:
        return ConnectionPair()
    if state is State.HANDSHAKE:
        pair = ConnectionPair()
        pair.exchange(Role.HOST, Hello(id=1, versions=(1,), pid=1, runtime=""))
        return pair
    pair = opened_pair()
    if state is State.OPEN:
        return pair
    shutdown = Shutdown(id=pair.agent.new_request_id())
    pair.exchange(Role.AGENT, shutdown)
    if state is State.DONE:
        pair.exchange(Role.HOST, ShutdownComplete(re=shutdown.id))
    return pair


def cases(allowed: bool) -> list[tuple[State, Role, Message]]:
    return [
        (state, role, sample)
        for state in LIVE_STATES
        for role in Role
        for sample in SAMPLES
        if (type(sample).__name__ in SENDABLE[(role, state)]) is allowed
    ]


def case_id(case: tuple[State, Role, Message]) -> str:
    state, role, sample = case
    return f"{state.name}-{role.value}-{type(sample).__name__}"


@pytest.mark.parametrize("case", cases(allowed=False), ids=case_id)
def test_an_out_of_turn_message_is_refused_by_sender_and_receiver(
    case: tuple[State, Role, Message],
) -> None:
    state, role, sample = case
    pair = pair_in(state)
    assert pair.agent.state is pair.host.state is state
    sender, receiver = pair.side(role), pair.side(role.peer)
    name = type(sample).__name__
    with pytest.raises(LocalProtocolError, match=f"^{name} cannot be sent in state {state.name}$"):
        sender.send(sample)
    assert sender.state is state
    receiver.receive_data(encode_frame(encode_payload(sample.to_json())))
    with pytest.raises(RemoteProtocolError, match=f"cannot be sent by the {role.value} in state"):
        receiver.next_event()
    assert receiver.state is State.FAULTED


@pytest.mark.parametrize("case", cases(allowed=True), ids=case_id)
def test_a_message_the_table_allows_is_not_refused_for_its_state(
    case: tuple[State, Role, Message],
) -> None:
    # It may still break another rule (a reply to nothing, an unknown replica), never this one.
    state, role, sample = case
    sender = pair_in(state).side(role)
    try:
        sender.send(sample)
    except LocalProtocolError as exc:
        refusal = str(exc)
    else:
        refusal = ""
    assert "cannot be sent in state" not in refusal


@pytest.mark.parametrize("role", list(Role))
def test_nothing_can_be_sent_after_eof(role: Role) -> None:
    pair = opened_pair()
    conn = pair.side(role)
    conn.receive_data(b"")
    conn.next_event()
    assert conn.state is State.CLOSED
    for sample in SAMPLES:
        with pytest.raises(LocalProtocolError, match="cannot be sent in state CLOSED"):
            conn.send(sample)
