"""One message for many replicas' reasons: counted, bounded, most frequent first."""

from __future__ import annotations

import doctest

from fabrichost.agent import _summary
from fabrichost.agent._summary import MAX_GROUPS, summarize_reasons

CLOSED = "could not be opened: the channel to host 26337 closed"


def test_the_examples_in_the_docstring_hold() -> None:
    assert doctest.testmod(_summary).failed == 0


def test_4000_replicas_failing_alike_are_one_counted_reason_of_bounded_length() -> None:
    message = summarize_reasons(f"replica {n} {CLOSED}" for n in range(1000, 5000))
    assert message == (f"4,000 replicas {CLOSED} (first: replica 1000, 1001, 1002, …)")


def test_one_replica_is_named_as_it_was_reported() -> None:
    assert summarize_reasons([f"replica 7 {CLOSED}"]) == f"replica 7 {CLOSED}"


def test_reasons_not_about_one_replica_are_said_once() -> None:
    keeps = "code package Code keeps failing (last exit code 1)"
    message = summarize_reasons([keeps, keeps, f"replica 3 {CLOSED}"])
    assert message == f"{keeps}; replica 3 {CLOSED}"


def test_the_most_frequent_reasons_come_first_and_the_rest_are_counted() -> None:
    reasons = [f"replica {n} failed to open: error {n % 10}" for n in range(100, 200)]
    reasons += [f"replica {n} {CLOSED}" for n in range(1000, 1050)]
    message = summarize_reasons(reasons)
    assert message.startswith(f"50 replicas {CLOSED}")
    assert message.count("replicas failed to open") == MAX_GROUPS - 1
    assert message.endswith(f"and {10 - (MAX_GROUPS - 1)} other reason(s) for 60 replica(s)")
    assert len(message) < 1000


def test_a_long_reason_is_clipped() -> None:
    message = summarize_reasons(["x" * 10_000])
    assert len(message) == _summary.MAX_REASON
    assert message.endswith("…")
