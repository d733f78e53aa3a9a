"""Frames: a 4-byte big-endian length, then one UTF-8 JSON object."""

from __future__ import annotations

import pytest

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import FrameDecoder, decode_payload, encode_frame, encode_payload
from fabrichost.protocol._framing import check_max_frame_size

from .helpers import frame


def test_a_whole_frame_yields_its_payload_then_nothing() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(b"{}"))
    assert decoder.next_frame() == b"{}"
    assert decoder.next_frame() is None
    assert decoder.buffered == 0


def test_a_frame_split_byte_by_byte_yields_once_complete() -> None:
    data = frame(b'{"type":"Ping","id":1}')
    decoder = FrameDecoder()
    for index, byte in enumerate(data):
        assert decoder.next_frame() is None
        decoder.feed(bytes([byte]))
        assert decoder.buffered == index + 1
    assert decoder.next_frame() == b'{"type":"Ping","id":1}'


def test_coalesced_frames_come_out_in_order_from_one_feed() -> None:
    payloads = [b'{"n":%d}' % n for n in range(1000)]
    decoder = FrameDecoder()
    decoder.feed(b"".join(frame(p) for p in payloads))
    out = []
    while (payload := decoder.next_frame()) is not None:
        out.append(payload)
    assert out == payloads
    assert decoder.buffered == 0


def test_a_partial_second_frame_stays_buffered() -> None:
    decoder = FrameDecoder()
    decoder.feed(frame(b"{}") + frame(b'{"a":1}')[:5])
    assert decoder.next_frame() == b"{}"
    assert decoder.next_frame() is None
    assert decoder.buffered == 5
    decoder.feed(frame(b'{"a":1}')[5:])
    assert decoder.next_frame() == b'{"a":1}'


def test_consumed_prefix_is_kept_while_small_then_dropped() -> None:
    # Three frames: after the first, most of the buffer is still unread (offset kept); after
    # the second, the consumed part dominates and is dropped.
    decoder = FrameDecoder()
    decoder.feed(frame(b"{}") + frame(b'{"a":1}') + frame(b'{"long":"' + b"x" * 100 + b'"}'))
    assert decoder.next_frame() == b"{}"
    assert decoder.next_frame() == b'{"a":1}'
    assert decoder.next_frame() is not None
    assert decoder.buffered == 0


def test_zero_length_is_refused() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(RemoteProtocolError, match="length 0"):
        decoder.next_frame()


def test_oversized_length_is_refused_from_the_header_alone() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    decoder.feed((17).to_bytes(4, "big"))
    with pytest.raises(RemoteProtocolError, match="17 bytes exceeds the maximum frame size of 16"):
        decoder.next_frame()


def test_a_frame_of_exactly_the_maximum_is_accepted() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    payload = b'{"a":"' + b"x" * 8 + b'"}'
    assert len(payload) == 16
    decoder.feed(frame(payload))
    assert decoder.next_frame() == payload


@pytest.mark.parametrize("size", [0, -1, 2**32, 1.5, True])
def test_max_frame_size_must_be_a_usable_integer(size: object) -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        check_max_frame_size(size)  # type: ignore[arg-type]


def test_encode_frame_prefixes_the_length() -> None:
    assert encode_frame(b"{}") == b"\x00\x00\x00\x02{}"


@pytest.mark.parametrize("payload", [b"", b"x" * 17])
def test_encode_frame_refuses_what_the_peer_would_refuse(payload: bytes) -> None:
    with pytest.raises(LocalProtocolError, match=r"frames must hold 1\.\.16 bytes"):
        encode_frame(payload, max_frame_size=16)


def test_payload_round_trip_is_compact_ascii_json() -> None:
    payload = encode_payload({"type": "Ping", "id": 1, "text": "é"})
    assert payload == b'{"type":"Ping","id":1,"text":"\\u00e9"}'
    assert decode_payload(payload) == {"type": "Ping", "id": 1, "text": "é"}


def test_encode_payload_refuses_what_is_not_json() -> None:
    with pytest.raises(LocalProtocolError, match="cannot be encoded as JSON"):
        encode_payload({"x": float("nan")})


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="not valid UTF-8"):
        decode_payload(b'{"a":"\xff"}')


@pytest.mark.parametrize("payload", [b"{", b"{'a':1}", b'{"a":NaN}', b'{"a":Infinity}', b"{} {}"])
def test_invalid_json_is_refused(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid JSON"):
        decode_payload(payload)


def test_deeply_nested_json_is_refused_not_crashed() -> None:
    with pytest.raises(RemoteProtocolError, match="JSON"):
        decode_payload(b"[" * 100_000 + b"]" * 100_000)


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"[]", "array"),
        (b'"x"', "string"),
        (b"null", "null"),
        (b"true", "boolean"),
        (b"1.5", "number"),
    ],
)
def test_a_payload_that_is_not_an_object_is_refused(payload: bytes, kind: str) -> None:
    with pytest.raises(RemoteProtocolError, match=f"must hold a JSON object, got a JSON {kind}"):
        decode_payload(payload)
