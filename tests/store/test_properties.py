"""Properties over generated rows: any instance row round-trips; fencing matches a model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fabrichost.store import InstanceRow, InstanceStatus, Store

if TYPE_CHECKING:
    from collections.abc import Iterator

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
# SQLite stores NaN as NULL, so a timestamp must be a number; infinities are fine.
TIMES = st.floats(allow_nan=False)

instance_rows = st.builds(
    InstanceRow,
    instance_id=st.text(max_size=40),
    function_name=st.text(max_size=20),
    application=st.text(max_size=20),
    service_name=st.text(max_size=20),
    status=st.sampled_from(InstanceStatus),
    input_json=st.text(max_size=200),
    output_json=st.none() | st.text(max_size=200),
    error=st.none() | st.text(max_size=200),
    generation=INT64,
    created_at=TIMES,
    updated_at=TIMES,
    request_id=st.none() | st.text(max_size=40),
)


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    # Module-scoped: hypothesis runs many examples per test and must not share a
    # function-scoped fixture between them; each example cleans up after itself instead.
    with Store.open(tmp_path_factory.mktemp("props") / "state.db") as store:
        yield store


@settings(max_examples=150)
@given(row=instance_rows)
def test_any_instance_row_round_trips(shared_store: Store, row: InstanceRow) -> None:
    shared_store.add_instance(row)
    try:
        assert shared_store.get_instance(row.instance_id) == row
        assert shared_store.instances() == [row]
    finally:
        shared_store.remove_instance(row.instance_id)


updates = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # the generation the writer believes in
        st.sampled_from(InstanceStatus),
        st.none() | st.text(max_size=10),
    ),
    max_size=12,
)


@settings(max_examples=80)
@given(current=st.integers(min_value=0, max_value=3), steps=updates)
def test_only_the_current_generation_changes_an_instance(
    shared_store: Store, current: int, steps: list[tuple[int, InstanceStatus, str | None]]
) -> None:
    expected = InstanceRow(
        "fenced", "F", "fabric:/A", "fabric:/A/S", InstanceStatus.PENDING,
        "null", None, None, current, 1.0, 1.0,
    )  # fmt: skip
    shared_store.add_instance(expected)
    try:
        for tick, (generation, status, output) in enumerate(steps, start=2):
            changed = shared_store.update_instance(
                "fenced", generation, status=status, output_json=output, updated_at=float(tick)
            )
            assert changed == (generation == current)
            if changed:
                expected = InstanceRow(
                    "fenced", "F", "fabric:/A", "fabric:/A/S", status,
                    "null", output, None, current, 1.0, float(tick),
                )  # fmt: skip
            assert shared_store.get_instance("fenced") == expected
    finally:
        shared_store.remove_instance("fenced")
