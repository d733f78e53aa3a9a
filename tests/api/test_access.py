"""The access rule of the API, and the kernel lookup of who is at the other end of a connection."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from fabrichost.api import AccessPolicy, uid_of
from fabrichost.api._access import AccessCheck, same_origin
from fabrichost.api._peer import diag_request, owner_in_reply, tcp_peer_uid

if TYPE_CHECKING:
    from collections.abc import Iterator, MutableMapping

SERVER = ("127.0.0.1", 19080)
CLIENT = ("127.0.0.1", 45000)


def _scope(headers: dict[str, str] | None = None, client: Any = CLIENT) -> dict[str, Any]:
    return {
        "type": "http",
        "client": client,
        "server": SERVER,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


def _policy(peer: int | None, token: str | None = "s3cret") -> AccessPolicy:
    return AccessPolicy(uids=frozenset({1000, 0}), token=token, peer_uid=lambda c, s: peer)


def test_the_agents_user_and_root_are_served() -> None:
    assert _policy(1000).refusal(_scope()) is None
    assert _policy(0).refusal(_scope()) is None


def test_another_user_is_refused_with_who_is_served_and_how_to_allow() -> None:
    reason = _policy(4242).refusal(_scope())
    assert reason is not None
    assert "uid 4242" in reason
    assert "uid 1000" in reason
    assert "--allow-user" in reason


def test_a_connection_whose_user_is_unknown_is_refused() -> None:
    reason = _policy(None).refusal(_scope())
    assert reason is not None
    assert "token" in reason
    assert _policy(1000).refusal(_scope(client=None)) is not None  # no peer address at all


def test_the_token_lets_anyone_in_and_a_wrong_one_is_refused() -> None:
    assert _policy(4242).refusal(_scope({"Authorization": "Bearer s3cret"})) is None
    wrong = _policy(4242).refusal(_scope({"Authorization": "Bearer guess"}))
    assert wrong is not None
    assert "not this agent's token" in wrong
    # A stale token (the agent restarted) does not refuse a user the kernel vouches for.
    assert _policy(1000).refusal(_scope({"Authorization": "Bearer guess"})) is None
    # An agent without a token lets no token in, not even an empty one.
    assert _policy(4242, token=None).refusal(_scope({"Authorization": "Bearer "})) is not None


def test_another_authorization_scheme_is_ignored() -> None:
    assert _policy(1000).refusal(_scope({"Authorization": "Basic dXNlcjpwdw=="})) is None
    assert _policy(4242).refusal(_scope({"Authorization": "Basic dXNlcjpwdw=="})) is not None


def test_only_the_agents_own_origin_is_its_own() -> None:
    scope = _scope()
    assert same_origin("http://127.0.0.1:19080", scope)
    for other in (
        "http://[::1]:19080",  # whatever holds [::1]:19080 is not the agent
        "http://localhost:19080",  # which a browser may resolve to [::1]
        "http://127.0.0.1:8080",
        "https://127.0.0.1:19080",
        "http://127.0.0.1:19080/page",
        "http://127.0.0.1:99999",
        "null",
    ):
        assert not same_origin(other, scope), other


def test_only_plain_http_is_served() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("reached the application")

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    check = AccessCheck(app, _policy(1000))
    asyncio.run(check({**_scope(), "type": "websocket"}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_users_are_named_or_numbered() -> None:
    assert uid_of("root") == 0
    assert uid_of("1234") == 1234
    with pytest.raises(ValueError, match="no-such-user"):
        uid_of("no-such-user")


# -- the kernel lookup --------------------------------------------------------------------------


@pytest.fixture
def connection() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        try:
            yield listener, client, accepted
        finally:
            client.close()
            accepted.close()


def test_the_owner_of_a_connections_client_socket_is_found(
    connection: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    _, client, accepted = connection
    assert tcp_peer_uid(accepted.getpeername(), accepted.getsockname()) == os.geteuid()
    # The listening end is looked up by the same rule from the other side.
    assert tcp_peer_uid(client.getpeername(), client.getsockname()) == os.geteuid()


def test_a_client_socket_closed_by_its_owner_has_no_owner(
    connection: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    # A client can send a request and close at once, leaving an orphan that the kernel reports
    # with uid 0: were it taken for root, anyone's request would be served while queued.
    _, client, accepted = connection
    peer, server = accepted.getpeername(), accepted.getsockname()
    client.close()
    assert tcp_peer_uid(peer, server) is None


def test_a_listening_socket_is_not_taken_for_a_connection(
    connection: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    # With no connection at the four-tuple asked about, the kernel may answer with a listener
    # bound to the address: it is not the client.
    listener, _, _ = connection
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        assert tcp_peer_uid(other.getsockname(), listener.getsockname()) is None


def test_a_closed_connection_has_no_owner(
    connection: tuple[socket.socket, socket.socket, socket.socket],
) -> None:
    listener, client, accepted = connection
    peer, server = accepted.getpeername(), accepted.getsockname()
    client.close()
    accepted.close()
    # The client's socket lingers in TIME_WAIT, where the kernel reports uid 0 for any owner:
    # that must not pass for root. The close reaches it promptly; a deadline, not a pause.
    deadline = time.monotonic() + 30
    while tcp_peer_uid(peer, server) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tcp_peer_uid(peer, server) is None
    assert tcp_peer_uid(("127.0.0.1", 1), listener.getsockname()) is None  # never existed


def test_the_query_and_the_answer_follow_the_kernels_layout() -> None:
    message = diag_request(("127.0.0.1", 0x1234), ("127.0.0.1", 0x5678), sequence=7)
    assert len(message) == 16 + 56  # nlmsghdr + inet_diag_req_v2
    assert message[16:18] == bytes([socket.AF_INET, socket.IPPROTO_TCP])
    assert message[24:28] == bytes.fromhex("12345678")  # ports, big-endian
    assert message[28:32] == socket.inet_aton("127.0.0.1")
    with pytest.raises(ValueError, match="mixed"):
        diag_request(("127.0.0.1", 1), ("::1", 2))
    assert owner_in_reply(b"", message) is None
    assert owner_in_reply(b"\x00" * 15, message) is None
