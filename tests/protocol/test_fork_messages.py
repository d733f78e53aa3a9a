"""The agent <-> fork server messages: round trips and refusals."""

from __future__ import annotations

import pytest

from fabrichost.errors import ProtocolError
from fabrichost.protocol import (
    Forked,
    ForkFailed,
    ForkRequest,
    ForkServerReady,
    decode_fork_message,
    encode_fork_message,
)


@pytest.mark.parametrize(
    "message",
    [
        ForkServerReady(12, 65536, 1024),
        ForkRequest("pkg.mod", ("a", "b"), "/w", {"A": "1"}, (1, 2, 14, 16), "python3", True),
        Forked(99),
        ForkFailed("FileNotFoundError: /w", 98),
        ForkFailed("cannot fork"),
    ],
)
def test_every_message_survives_a_round_trip(message: object) -> None:
    assert decode_fork_message(encode_fork_message(message)) == message  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[1]",
        b'{"type": "Nope"}',
        b'{"type": "Forked", "pid": "12"}',
        b'{"type": "Forked", "pid": true}',
        b'{"type": "ForkFailed", "error": "x", "pid": "1"}',
        b'{"type": "ForkRequest", "module": "m", "args": [1], "cwd": "/", "env": {},'
        b' "fds": [], "argv0": "p"}',
        b'{"type": "ForkRequest", "module": "m", "args": [], "cwd": "/", "env": {"A": 1},'
        b' "fds": [], "argv0": "p"}',
        b'{"type": "ForkRequest", "module": "m", "args": [], "cwd": "/", "env": {},'
        b' "fds": [0], "argv0": "p"}',
    ],
)
def test_a_malformed_message_is_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_fork_message(data)


def test_a_message_too_large_is_refused_before_it_is_sent() -> None:
    huge = ForkRequest("m", (), "/", {"A": "x" * (1 << 20)}, (), "p")
    with pytest.raises(ProtocolError, match="over"):
        encode_fork_message(huge)
