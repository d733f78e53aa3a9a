"""Paged lists: stable order, opaque tokens, MaxResults, and the filters' parsing."""

from __future__ import annotations

import pytest

from fabrichost.api._paging import (
    PageRequest,
    bool_param,
    decode_token,
    definition_kind_filter,
    encode_token,
    node_status_filter,
    ordinal_key,
    page_request,
    paged,
)
from fabrichost.errors import ApiError

ITEMS = [f"item{i:02d}" for i in (5, 1, 9, 3, 7)]


def _walk(max_results: int) -> list[list[str]]:
    pages, after = [], None
    while True:
        page = paged(ITEMS, str, lambda s: {"N": s}, PageRequest(max_results, after))
        pages.append([i["N"] for i in page["Items"]])
        if not page["ContinuationToken"]:
            return pages
        after = decode_token(page["ContinuationToken"])


def test_all_items_in_key_order_without_max_results() -> None:
    assert _walk(0) == [sorted(ITEMS)]


def test_pages_hold_max_results_and_cover_everything_once() -> None:
    pages = _walk(2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [item for page in pages for item in page] == sorted(ITEMS)


def test_a_full_last_page_has_no_token() -> None:
    assert _walk(5) == [sorted(ITEMS)]


def test_only_the_returned_page_is_rendered() -> None:
    rendered: list[str] = []

    def render(item: str) -> dict[str, str]:
        rendered.append(item)
        return {"N": item}

    paged(ITEMS, str, render, PageRequest(2, None))
    assert rendered == ["item01", "item03"]


def test_a_page_after_an_item_that_went_away_starts_after_its_key() -> None:
    page = paged(["a", "c", "d"], str, lambda s: {"N": s}, PageRequest(0, "b"))
    assert [i["N"] for i in page["Items"]] == ["c", "d"]


def test_tokens_are_opaque_and_round_trip() -> None:
    token = encode_token("fabric:/App~1")
    assert "fabric" not in token
    assert decode_token(token) == "fabric:/App~1"


@pytest.mark.parametrize("token", ["garbage!!", "Zm9v", encode_token("x")[:-3] + "@@@"])
def test_a_token_this_agent_did_not_give_is_refused(token: str) -> None:
    with pytest.raises(ApiError, match="ContinuationToken") as info:
        page_request({"ContinuationToken": token})
    assert info.value.code == "FABRIC_E_INVALID_ARGUMENT"


@pytest.mark.parametrize("value", ["-1", "many", "1.5"])
def test_max_results_must_be_a_count(value: str) -> None:
    with pytest.raises(ApiError, match="MaxResults"):
        page_request({"MaxResults": value})


def test_page_request_reads_both_parameters() -> None:
    request = page_request({"MaxResults": "3", "ContinuationToken": encode_token("k")})
    assert request == PageRequest(3, "k")
    assert page_request({}) == PageRequest(0, None)


def test_ordinal_keys_sort_as_numbers() -> None:
    assert sorted([ordinal_key(10), ordinal_key(2)]) == [ordinal_key(2), ordinal_key(10)]


def test_node_status_filter() -> None:
    assert node_status_filter({})("Down")
    assert node_status_filter({"NodeStatusFilter": "All"})("Up")
    up = node_status_filter({"NodeStatusFilter": "up"})
    assert up("Up")
    assert not up("Down")
    with pytest.raises(ApiError, match="NodeStatusFilter"):
        node_status_filter({"NodeStatusFilter": "sideways"})


def test_definition_kind_filter() -> None:
    name = "ApplicationTypeDefinitionKindFilter"
    assert definition_kind_filter({}, name)
    assert definition_kind_filter({name: "65535"}, name)
    assert definition_kind_filter({name: "1"}, name)
    assert not definition_kind_filter({name: "2"}, name)


def test_bool_param() -> None:
    assert bool_param({"X": "True"}, "X")
    assert not bool_param({}, "X")
    with pytest.raises(ApiError, match="X must be true or false"):
        bool_param({"X": "yes"}, "X")
