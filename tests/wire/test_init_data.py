"""InitializationData: SF's REST model sends an array of bytes; fabrichost also takes a string.

Service Fabric's StatelessServiceDescription / StatefulServiceDescription define
``InitializationData`` as an optional array of integers (bytes). Inside fabrichost a service's
initialization data is text (``ServiceContext.init_data``): the bytes are decoded as UTF-8, a byte
that is not UTF-8 becoming U+FFFD. Anything else is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest

from fabrichost.errors import ApiError
from fabrichost.wire import error_answer, parse_service_description, service_description_json


def body(kind: str = "Stateless", **fields: Any) -> dict[str, Any]:
    counts: dict[str, Any] = (
        {"InstanceCount": 1}
        if kind == "Stateless"
        else {"TargetReplicaSetSize": 3, "MinReplicaSetSize": 1}
    )
    return {
        "ServiceKind": kind,
        "ServiceName": "fabric:/App1/S",
        "ServiceTypeName": "MyServiceType",
        **counts,
        **fields,
    }


@pytest.mark.parametrize("kind", ["Stateless", "Stateful"])
def test_an_array_of_bytes_is_taken_as_utf8_text(kind: str) -> None:
    desc = parse_service_description(body(kind, InitializationData=list(b'{"n": 1}')))
    assert desc.init_data == '{"n": 1}'


def test_multibyte_utf8_is_decoded() -> None:
    data = list("héllo ✓".encode())
    assert parse_service_description(body(InitializationData=data)).init_data == "héllo ✓"


def test_bytes_that_are_not_utf8_become_replacement_characters() -> None:
    desc = parse_service_description(body(InitializationData=[104, 255, 105]))
    assert desc.init_data == "h\ufffdi"


def test_an_empty_array_is_empty_data() -> None:
    assert parse_service_description(body(InitializationData=[])).init_data == ""


def test_a_string_is_still_taken() -> None:
    assert parse_service_description(body(InitializationData="seed")).init_data == "seed"


def test_absent_or_null_is_none() -> None:
    assert parse_service_description(body()).init_data is None
    assert parse_service_description(body(InitializationData=None)).init_data is None


@pytest.mark.parametrize(
    "value",
    [
        5,
        1.5,
        True,
        {"a": 1},
        [256],
        [-1],
        [1, "2"],
        [True, False],
        [1.0],
        [[1]],
        [None],
    ],
)
def test_anything_else_is_a_400_naming_the_field(value: object) -> None:
    with pytest.raises(ApiError) as caught:
        parse_service_description(body(InitializationData=value))
    assert error_answer(caught.value)[0] == 400
    assert "InitializationData" in str(caught.value)


def test_bytes_round_trip_through_the_client_json() -> None:
    desc = parse_service_description(body(InitializationData=list(b"abc")))
    again = parse_service_description(service_description_json(desc))
    assert again.init_data == "abc"
