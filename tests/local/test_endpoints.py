"""A published address read as named endpoints (the contract of wire.endpoints_of)."""

from __future__ import annotations

import json

from fabrichost.local._endpoints import endpoints_of


def test_sf_endpoints_json_gives_its_map() -> None:
    address = json.dumps({"Endpoints": {"Web": "http://127.0.0.1:30017", "Admin": "tcp://x:1"}})
    assert endpoints_of(address) == {"Web": "http://127.0.0.1:30017", "Admin": "tcp://x:1"}


def test_a_plain_address_is_the_unnamed_endpoint() -> None:
    assert endpoints_of("tcp://127.0.0.1:5000") == {"": "tcp://127.0.0.1:5000"}


def test_json_that_is_not_an_endpoints_map_is_a_plain_address() -> None:
    assert endpoints_of('{"Web": "x"}') == {"": '{"Web": "x"}'}
    assert endpoints_of("42") == {"": "42"}


def test_no_address_gives_no_endpoints() -> None:
    assert endpoints_of("") == {}
