"""JSON text from users (HTTP bodies, ``--input``, ``--data``), held to RFC 8259 and a depth.

Python's ``json`` reads more than JSON: ``NaN`` and ``Infinity``, and numbers like ``1e400`` that
overflow to infinity. Stored as they are, they make every later answer that shows them fail (a
JSON response cannot hold them). Deep nesting exhausts the interpreter's recursion limit when
the value is encoded again. An object that names a key twice is ambiguous (Python keeps the
last, other readers the first), so it is refused instead of silently losing a value. So the
agent, the client and the command line parse with this.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fabrichost.protocol import JSON

#: Nesting deeper than this is refused (instance inputs and event data are small documents).
MAX_DEPTH: Final = 100


def parse_json_text(text: str | bytes) -> JSON:
    """The JSON value ``text`` holds.

    Raises:
        ValueError: ``text`` is not JSON, holds a number JSON cannot carry, names a key twice
            in one object, or nests deeper than :data:`MAX_DEPTH`; the message says which.
    """
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    _check_value(value)
    return cast("JSON", value)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return value


class _Overflow(float):
    """A number no float can hold (it reads as infinity), kept until the walk says where it is."""

    text: str

    def __new__(cls, text: str) -> _Overflow:
        number = super().__new__(cls, "inf")
        number.text = text
        return number


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):  # e.g. 1e400: valid JSON text, but no float can hold it
        return _Overflow(text)
    return number


def _check_value(value: object) -> None:
    """Refuse nesting deeper than MAX_DEPTH and a number that overflowed, naming where it is."""
    # An explicit stack: the value may be nested too deep for recursion. Scalars other than an
    # overflow are not pushed, so a long flat list costs no paths.
    stack: list[tuple[object, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, _Overflow):
            where = f" in {path}" if path else ""
            raise ValueError(f"a number too large for JSON ({item.text}){where}")
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
        stack.extend(
            (child, depth + 1, at)
            for at, child in _children(item, path)
            if isinstance(child, dict | list | _Overflow)
        )


def _children(item: object, path: str) -> Iterator[tuple[str, object]]:
    """``item``'s members with their paths (``a.b``, ``a[0]``); none for a scalar."""
    if isinstance(item, dict):
        return ((f"{path}.{key}" if path else str(key), child) for key, child in item.items())
    if isinstance(item, list):
        return ((f"{path}[{index}]", child) for index, child in enumerate(item))
    return iter(())
