"""A replica address as Service Fabric publishes it, and the endpoints read back from it."""

from __future__ import annotations

import doctest

import pytest

import fabrichost.wire._endpoints
from fabrichost.wire import endpoints_address, endpoints_of, listener_address


def test_an_endpoint_with_a_uri_scheme_is_a_uri_ending_in_its_path_suffix() -> None:
    assert listener_address("127.0.0.1", 30017, "http") == "http://127.0.0.1:30017/"
    assert listener_address("127.0.0.1", 8080, "https", "api/") == "https://127.0.0.1:8080/api/"


def test_an_endpoint_without_a_uri_scheme_is_host_and_port() -> None:
    assert listener_address("127.0.0.1", 30018) == "127.0.0.1:30018"
    assert listener_address("127.0.0.1", 30018, "", "ignored") == "127.0.0.1:30018"


def test_the_published_address_is_service_fabric_s_endpoints_json() -> None:
    address = endpoints_address({"Web": "http://127.0.0.1:30017/", "Raw": "127.0.0.1:1"})
    assert address == ('{"Endpoints": {"Web": "http://127.0.0.1:30017/", "Raw": "127.0.0.1:1"}}')
    assert endpoints_of(address) == {"Web": "http://127.0.0.1:30017/", "Raw": "127.0.0.1:1"}


def test_no_endpoints_publish_the_empty_address() -> None:
    assert endpoints_address({}) == ""
    assert endpoints_of("") == {}


def test_sf_s_own_spelling_reads_back_too() -> None:
    # SF's JSON serializer escapes slashes and adds no spaces.
    assert endpoints_of('{"Endpoints":{"Web":"http:\\/\\/10.0.0.4:8080\\/"}}') == {
        "Web": "http://10.0.0.4:8080/"
    }
    assert endpoints_of('{"Endpoints":{}}') == {}


@pytest.mark.parametrize(
    "address",
    [
        "tcp://127.0.0.1:31001",
        "replica://1/Primary",
        "{not json",
        '{"Other": 1}',
        '{"Endpoints": "x"}',
        '{"Endpoints": {"Web": 1}}',
        "[1, 2]",
    ],
)
def test_anything_else_is_one_plain_address(address: str) -> None:
    assert endpoints_of(address) == {"": address}


def test_the_docstring_examples_hold() -> None:
    result = doctest.testmod(fabrichost.wire._endpoints)
    assert result.attempted > 0
    assert result.failed == 0
