"""Request bodies, read with a size limit and parsed as strict JSON: the only way routes read one.

Every route that takes a body reads it through :func:`read_json` (or :func:`read_json_object`),
so none can forget a bound: the body is refused with 413 as soon as it passes the route's
limit (at once when ``Content-Length`` announces more), before the rest is read, and its JSON
is held to :func:`fabrichost.wire.parse_json_text` (RFC 8259 numbers, a depth, no key twice in
one object), a 400 naming the problem. ``tests/api/test_body.py`` checks that no module of the
API reads a body any other way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fabrichost.errors import ApiError, TooLargeError
from fabrichost.protocol import DEFAULT_MAX_FRAME_SIZE
from fabrichost.wire import parse_json_text

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request

    from fabrichost.protocol import JSON

#: Service Fabric's own bodies (provision, unprovision, application and service descriptions,
#: code package restart) are small JSON documents. At this size a service's InitializationData
#: (bytes or text) still fits in the frame that takes it to its process: escaped as JSON it
#: grows at most threefold.
MAX_BODY_BYTES: Final = 256 * 1024
#: An instance's input and an event's data are delivered in one pipe frame, so a larger body
#: could never be delivered; the agent then checks the exact size each takes in its frame.
MAX_PAYLOAD_BODY_BYTES: Final = DEFAULT_MAX_FRAME_SIZE


def _too_large(what: str, limit: int) -> TooLargeError:
    return TooLargeError(f"{what} is larger than {limit} bytes, the most this route accepts")


def _announced_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def read_body(request: Request, *, limit: int, what: str = "the request body") -> bytes:
    """The request's body, at most ``limit`` bytes.

    Raises:
        TooLargeError: the body is (or is announced to be) longer than ``limit``; what was
            read so far is dropped and the rest is never read.
    """
    announced = _announced_length(request)
    if announced is not None and announced > limit:
        raise _too_large(what, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(what, limit)
    return bytes(body)


async def stream_body(
    request: Request, *, limit: int, what: str = "the request body"
) -> AsyncIterator[bytes]:
    """The request's body, chunk by chunk as it arrives, for bodies too large to hold (an
    image store upload): at most ``limit`` bytes in all.

    Raises:
        TooLargeError: the body is (or is announced to be) longer than ``limit``: raised before
            the first chunk when ``Content-Length`` says so, else as soon as it passes it.
    """
    announced = _announced_length(request)
    if announced is not None and announced > limit:
        raise _too_large(what, limit)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(what, limit)
        if chunk:
            yield chunk


async def read_json(
    request: Request,
    *,
    limit: int = MAX_BODY_BYTES,
    what: str = "the request body",
    empty: JSON = None,
    allow_empty: bool = True,
) -> JSON:
    """The request's body as a JSON value; ``empty`` if it is empty (or blank) and allowed.

    Raises:
        TooLargeError: the body is longer than ``limit`` (413).
        ApiError: the body is not JSON, holds a number JSON cannot carry, names a key twice
            in one object or nests too deep (400); the message starts with ``what``.
    """
    raw = await read_body(request, limit=limit, what=what)
    if allow_empty and not raw.strip():
        return empty
    try:
        return parse_json_text(raw)
    except ValueError as exc:
        raise ApiError(f"{what} is not valid JSON: {exc}") from exc


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object (Service Fabric's bodies); an empty body is ``{}``.

    Raises:
        TooLargeError: the body is longer than :data:`MAX_BODY_BYTES` (413).
        ApiError: the body is not a JSON object, or not acceptable JSON (400).
    """
    data = await read_json(request, empty={})
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    return data
