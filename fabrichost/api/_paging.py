"""Service Fabric's paged lists and query filters, as every list route reads them.

A paged list answers ``{"ContinuationToken": "...", "Items": [...]}``. Items are in a stable
order (each route gives every item a sort key, unique in its list); a page holds at most
``MaxResults`` of them (0 or absent: no limit), and its token names the last key it returned,
so the next page starts after it even when items came or went meanwhile. The token is opaque
to clients (base64 of a versioned key); one this agent did not give out is a 400.

Strategy: keys are compared before anything is rendered, so a page costs the sort of the keys
and the rendering of what it returns, not of the whole list.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from fabrichost.errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

T = TypeVar("T")
Json = dict[str, Any]

_TOKEN_PREFIX: Final = "fh1:"  # a version, so a token's format can change


@dataclass(frozen=True)
class PageRequest:
    """What one request asks of a paged list: at most ``max_results`` items (0: all of them),
    starting after the item whose key is ``after`` (None: from the first)."""

    max_results: int = 0
    after: str | None = None


def encode_token(key: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + key).encode()).decode().rstrip("=")


def decode_token(token: str) -> str:
    """The key a continuation token names; ApiError for one this agent did not give out."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    if not raw.startswith(_TOKEN_PREFIX):
        raise ApiError(
            f"ContinuationToken {token!r} is not a token this agent returned; "
            "pass the ContinuationToken of the previous page as it was"
        )
    return raw[len(_TOKEN_PREFIX) :]


def int_param(query: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        number = minimum - 1
    if number < minimum:
        raise ApiError(f"query parameter {name} must be an integer >= {minimum}, not {value!r}")
    return number


def bool_param(query: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = query.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise ApiError(f"query parameter {name} must be true or false, not {value!r}")
    return value.lower() == "true"


def page_request(query: Mapping[str, str]) -> PageRequest:
    """``MaxResults`` and ``ContinuationToken`` of a request's query."""
    token = query.get("ContinuationToken") or None
    return PageRequest(
        max_results=int_param(query, "MaxResults", 0),
        after=decode_token(token) if token is not None else None,
    )


def paged(
    items: Iterable[T],
    key: Callable[[T], str],
    render: Callable[[T], Json],
    request: PageRequest,
) -> Json:
    """One page of ``items`` in ``key`` order, each rendered with ``render``."""
    keyed = sorted(((key(item), item) for item in items), key=lambda pair: pair[0])
    if request.after is not None:
        keyed = [pair for pair in keyed if pair[0] > request.after]
    token = ""
    if request.max_results and len(keyed) > request.max_results:
        keyed = keyed[: request.max_results]
        token = encode_token(keyed[-1][0])
    return {"ContinuationToken": token, "Items": [render(item) for _, item in keyed]}


def ordinal_key(number: int) -> str:
    """A key that sorts numbers (ids, indexes >= 0) as numbers."""
    return f"{number:020d}"


# -- filters ------------------------------------------------------------------------------------

NODE_STATUS_FILTERS: Final = (
    "default",
    "all",
    "up",
    "down",
    "enabling",
    "disabling",
    "disabled",
    "unknown",
    "removed",
)


def node_status_filter(query: Mapping[str, str]) -> Callable[[str], bool]:
    """``NodeStatusFilter`` (SF's values, any case) as a test of a node's ``NodeStatus``."""
    value = (query.get("NodeStatusFilter") or "default").lower()
    if value not in NODE_STATUS_FILTERS:
        raise ApiError(
            f"NodeStatusFilter must be one of {', '.join(NODE_STATUS_FILTERS)}, not {value!r}"
        )
    if value in ("default", "all"):  # default: all but Unknown and Removed, which never occur
        return lambda status: True
    return lambda status: status.lower() == value


def definition_kind_filter(query: Mapping[str, str], name: str) -> bool:
    """Whether an ``ApplicationTypeDefinitionKindFilter``/``ApplicationDefinitionKindFilter``
    flag set lets Service Fabric application packages through (the only kind fabrichost has:
    flag 1; 0 is Default and 65535 All; Compose, 2, matches nothing here)."""
    flags = int_param(query, name, 0)
    return flags in (0, 65535) or bool(flags & 1)


def equals_filter(query: Mapping[str, str], name: str) -> Callable[[str], bool]:
    """An optional exact-match filter: everything passes when ``name`` is absent."""
    wanted = query.get(name) or None
    return lambda value: wanted is None or value == wanted
