"""Request bodies are read through ``fabrichost.api._body`` only, with a bound, incrementally.

The reader is driven here through the ASGI seam (a ``receive`` callable that hands out chunks,
as uvicorn does), so the test sees exactly how much of a body was taken before the refusal.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest
from starlette.requests import Request

from fabrichost.api._body import MAX_BODY_BYTES, read_json, read_json_object, stream_body
from fabrichost.errors import ApiError, TooLargeError

if TYPE_CHECKING:
    from starlette.types import Message

pytestmark = pytest.mark.anyio

API: Final = Path(__file__).resolve().parents[2] / "fabrichost" / "api"
CHUNK: Final = 64 * 1024
#: Request methods that read a body; only ``_body.py`` may call them.
_READERS: Final = frozenset({"body", "stream", "json", "form"})


class Chunks:
    """An ASGI ``receive`` that hands out ``count`` chunks of ``data`` and counts the calls."""

    def __init__(self, data: bytes, count: int) -> None:
        self.data = data
        self.left = count
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        self.left -= 1
        return {"type": "http.request", "body": self.data, "more_body": self.left > 0}


def request(receive: Chunks, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": raw, "query_string": b""}
    return Request(scope, receive)


def body_readers(source: str) -> list[int]:
    """Lines of ``source`` that call a body-reading method (``x.body()``, ``x.json()`` ...)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in _READERS
    ]


def test_no_route_reads_a_body_except_through_the_bounded_reader() -> None:
    offenders = {
        path.name: lines
        for path in sorted(API.glob("*.py"))
        if path.name != "_body.py" and (lines := body_readers(path.read_text()))
    }
    assert offenders == {}, "read bodies with fabrichost.api._body.read_json"


def test_the_check_finds_a_direct_read() -> None:
    assert body_readers("async def f(request):\n    return await request.body()\n") == [2]
    assert body_readers("async def f(r):\n    async for c in r.stream():\n        pass\n") == [2]


async def test_a_body_is_refused_as_soon_as_it_passes_the_limit_and_no_more_is_read() -> None:
    receive = Chunks(b" " * CHUNK, count=1600)  # 100 MiB, never sent whole
    with pytest.raises(TooLargeError, match=f"larger than {MAX_BODY_BYTES} bytes"):
        await read_json_object(request(receive))
    assert receive.calls == MAX_BODY_BYTES // CHUNK + 1


async def test_an_announced_length_over_the_limit_is_refused_before_reading() -> None:
    receive = Chunks(b"{}", count=1)
    announced = {"Content-Length": str(100 * 1024 * 1024)}
    with pytest.raises(TooLargeError):
        await read_json(request(receive, announced), limit=1024)
    assert receive.calls == 0


async def test_a_body_at_the_limit_is_read_whole() -> None:
    receive = Chunks(b"[" + b" " * (CHUNK - 2) + b"]", count=1)
    assert await read_json(request(receive), limit=CHUNK) == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[" * 1000 + b"]" * 1000, "nested more than 100 levels"),
        (b'{"Name": "fabric:/A", "Name": "fabric:/B"}', "the key 'Name' appears twice"),
        (b'{"x": NaN}', "NaN is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
    ],
    ids=["deep", "duplicate", "nan", "not-an-object"],
)
async def test_bad_json_is_an_api_error_naming_the_problem(body: bytes, words: str) -> None:
    with pytest.raises(ApiError, match=words) as refused:
        await read_json_object(request(Chunks(body, count=1)))
    assert not isinstance(refused.value, TooLargeError)


async def test_an_empty_body_is_the_default_unless_one_is_required() -> None:
    assert await read_json_object(request(Chunks(b"", count=1))) == {}
    assert await read_json(request(Chunks(b"  ", count=1))) is None
    with pytest.raises(ApiError, match="not valid JSON"):
        await read_json(request(Chunks(b"", count=1)), allow_empty=False)


async def test_a_streamed_upload_is_handed_on_chunk_by_chunk_and_stopped_past_its_limit() -> None:
    receive = Chunks(b"x" * CHUNK, count=1600)  # 100 MiB, never held
    sizes: list[int] = []

    async def consume() -> None:
        async for chunk in stream_body(request(receive), limit=16 * CHUNK):
            sizes.append(len(chunk))  # noqa: PERF401 (kept up to the refusal)

    with pytest.raises(TooLargeError, match="larger than 1048576 bytes"):
        await consume()
    assert sizes == [CHUNK] * 16  # handed on as they came, none gathered into a larger one
    assert receive.calls == 17


async def test_a_streamed_upload_announced_too_large_reads_nothing() -> None:
    receive = Chunks(b"x", count=1)
    chunks = stream_body(request(receive, {"Content-Length": "11"}), limit=10)
    with pytest.raises(TooLargeError):
        await anext(chunks)
    assert receive.calls == 0
