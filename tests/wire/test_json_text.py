"""User JSON (request bodies, ``--input``, ``--data``): a key named twice in one object is
refused naming the key, at any depth, instead of the last one silently winning."""

from __future__ import annotations

import pytest

from fabrichost.wire import parse_json_text


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('{"Name": "fabric:/A", "Name": "fabric:/B"}', "Name"),
        ('{"a": 1, "b": {"c": 1, "c": 1}}', "c"),  # the same value twice is still ambiguous
        ('[{"x": 1}, {"y": [{"z": 1, "z": 2}]}]', "z"),
    ],
)
def test_a_key_named_twice_in_one_object_is_refused_naming_it(text: str, key: str) -> None:
    with pytest.raises(ValueError, match=f"the key '{key}' appears twice"):
        parse_json_text(text)


def test_the_same_key_in_different_objects_is_fine() -> None:
    assert parse_json_text('[{"a": 1}, {"a": 2}, {"b": {"a": 3}}]') == [
        {"a": 1},
        {"a": 2},
        {"b": {"a": 3}},
    ]


def test_bytes_are_read_as_utf8_and_keys_keep_their_order() -> None:
    assert list(parse_json_text('{"z": 1, "é": 2, "a": 3}'.encode())) == ["z", "é", "a"]  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["[" * 101 + "]" * 101, "[" * 1000 + "]" * 1000])
def test_deep_nesting_is_refused_as_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="nested more than 100 levels deep"):
        parse_json_text(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1e400", "a number too large for JSON (1e400)"),
        ('{"InstanceCount": 1e400}', "(1e400) in InstanceCount"),
        ('{"a": [1, {"b": -1e999}]}', "(-1e999) in a[1].b"),
    ],
)
def test_a_number_too_large_for_json_is_refused_saying_where(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="a number too large for JSON") as refused:
        parse_json_text(text)
    assert words in str(refused.value)
