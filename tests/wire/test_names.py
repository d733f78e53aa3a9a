"""Names are URIs: a ``.`` or ``..`` segment, also percent-encoded, is found (and refused by the
agent and the command line), since anything that normalises the URI would resolve it away."""

from __future__ import annotations

import pytest

from fabrichost.wire import dot_segment


@pytest.mark.parametrize(
    ("name", "segment"),
    [
        ("fabric:/..", ".."),
        ("fabric:/../..", ".."),
        ("fabric:/a/b/../c", ".."),
        ("fabric:/a/./b", "."),
        ("fabric:/.", "."),
        ("fabric:/%2e%2e", "%2e%2e"),
        ("fabric:/a/%2E", "%2E"),
        ("fabric:/a/.%2e/b", ".%2e"),
    ],
)
def test_a_dot_segment_is_found_in_any_form(name: str, segment: str) -> None:
    assert dot_segment(name) == segment


@pytest.mark.parametrize(
    "name",
    ["fabric:/App1", "fabric:/a.b/c", "fabric:/.../x", "fabric:/a/.hidden", "fabric:/%252e%252e"],
)
def test_dots_inside_a_segment_are_not_a_dot_segment(name: str) -> None:
    # "%252e" is the text "%2e" once decoded, and "..." or ".hidden" are ordinary names.
    assert dot_segment(name) is None
