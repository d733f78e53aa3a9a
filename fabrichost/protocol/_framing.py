"""Frames: a 4-byte big-endian length, then that many bytes of one UTF-8 JSON object.

Use :class:`FrameDecoder` on the receiving side (``feed`` bytes as they arrive, then take
``next_frame()`` until it returns ``None``) and :func:`encode_frame` on the sending side.
:func:`decode_payload` and :func:`encode_payload` turn a frame's payload into a JSON object and
back. Nothing here does IO or keeps a clock.

Every problem with received bytes raises :class:`~fabrichost.errors.RemoteProtocolError` with a
message that says what was wrong, so a faulted host's log explains itself.
"""

from __future__ import annotations

import json
import struct
from typing import Final, TypeAlias

from fabrichost.errors import LocalProtocolError, RemoteProtocolError

#: A JSON value as :func:`json.loads` returns it.
JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
#: A JSON object: what every frame carries.
JSONObject: TypeAlias = "dict[str, JSON]"

HEADER_SIZE: Final = 4
DEFAULT_MAX_FRAME_SIZE: Final = 1024 * 1024
_HEADER: Final = struct.Struct(">I")
# The largest length a 4-byte header can express; a max_frame_size above it would be meaningless.
_LIMIT: Final = 0xFFFFFFFF

# Strategy: keep one bytearray and a read offset instead of deleting each consumed frame from the
# front, which would copy the rest of the buffer once per frame and make a burst of 1000 coalesced
# frames quadratic. The consumed prefix is dropped once it is at least half of the buffer.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _refuse_constant(name: str) -> float:
    # NaN and Infinity are not JSON; Python's json accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


def check_max_frame_size(max_frame_size: int) -> int:
    """Return ``max_frame_size`` if it is usable, else raise :class:`ValueError`."""
    if type(max_frame_size) is not int or not 1 <= max_frame_size <= _LIMIT:
        raise ValueError(
            f"max_frame_size must be an integer in 1..{_LIMIT}, got {max_frame_size!r}"
        )
    return max_frame_size


class FrameDecoder:
    """Splits a byte stream into frame payloads.

    Example::

        decoder = FrameDecoder()
        decoder.feed(b"\\x00\\x00\\x00\\x02{}")
        assert decoder.next_frame() == b"{}"
        assert decoder.next_frame() is None

    A header announcing length 0 or more than ``max_frame_size`` raises
    :class:`~fabrichost.errors.RemoteProtocolError` as soon as the 4 header bytes are in, before
    any of the body is buffered, so an oversized frame costs no memory.
    """

    __slots__ = ("_buffer", "_max_frame_size", "_start")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._max_frame_size = check_max_frame_size(max_frame_size)
        self._buffer = bytearray()
        self._start = 0

    @property
    def buffered(self) -> int:
        """How many received bytes are not yet returned as frames."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """Return the next complete payload, or ``None`` if more bytes are needed."""
        buffer = self._buffer
        start = self._start
        if len(buffer) - start < HEADER_SIZE:
            return None
        (length,) = _HEADER.unpack_from(buffer, start)
        if length == 0:
            raise RemoteProtocolError("frame of length 0: a frame carries one JSON object")
        if length > self._max_frame_size:
            raise RemoteProtocolError(
                f"frame of {length} bytes exceeds the maximum frame size of "
                f"{self._max_frame_size} bytes"
            )
        end = start + HEADER_SIZE + length
        if len(buffer) < end:
            return None
        payload = bytes(buffer[start + HEADER_SIZE : end])
        if end == len(buffer):
            buffer.clear()
            self._start = 0
        elif end * 2 >= len(buffer):
            del buffer[:end]
            self._start = 0
        else:
            self._start = end
        return payload


def encode_frame(payload: bytes, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> bytes:
    """Return ``payload`` with its length header.

    Raises:
        LocalProtocolError: the payload is empty or longer than ``max_frame_size``; the peer
            would refuse it, so it is better not to send it.
    """
    length = len(payload)
    if length == 0 or length > max_frame_size:
        raise LocalProtocolError(
            f"cannot send a frame of {length} bytes: frames must hold 1..{max_frame_size} bytes"
        )
    return _HEADER.pack(length) + payload


def decode_payload(payload: bytes) -> JSONObject:
    """Parse one payload: strict UTF-8, strict JSON (no NaN), and an object at the top."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError(f"frame is not valid UTF-8: {exc}") from exc
    try:
        value: object = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError, and so is _refuse_constant's
        raise RemoteProtocolError(f"frame is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise RemoteProtocolError("frame is not acceptable JSON: nested too deeply") from exc
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"frame must hold a JSON object, got a JSON {_json_kind(value)}")
    return value


def encode_payload(obj: JSONObject) -> bytes:
    """Serialise one JSON object compactly (ASCII, no spaces)."""
    try:
        return _ENCODER.encode(obj).encode("ascii")
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(f"message cannot be encoded as JSON: {exc}") from exc


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"
