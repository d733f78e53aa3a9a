"""The largest instance input is what one pipe frame can carry to the instance's process."""

from __future__ import annotations

import json
import uuid

import pytest

from fabrichost.errors import TooLargeError
from fabrichost.protocol import (
    DEFAULT_MAX_FRAME_SIZE,
    Endpoint,
    OpenReplica,
    ReplicaRole,
    ServiceKind,
    encode_payload,
)
from fabrichost.wire import MAX_INSTANCE_INPUT_BYTES, check_instance_input, instance_input_size


def open_replica(init_data: str) -> OpenReplica:
    """The message that carries an instance's input, with the largest names it can have."""
    return OpenReplica(
        id=1,
        service_name="fabric:/" + "a" * 1015 + "/" + "i" * 256,
        service_type="T" * 256,
        service_kind=ServiceKind.STATELESS,
        partition_id=str(uuid.UUID(int=0)),
        replica_id=9007199254740991,
        role=ReplicaRole.NONE,
        init_data=init_data,
        endpoints={f"Endpoint{n}": Endpoint(port=65535) for n in range(100)},
    )


@pytest.mark.parametrize(
    "value",
    ["x" * 10, '"quoted" \\ back', "é ☃ \U0001f600", "\x00\x1f"],
    ids=["ascii", "escaped", "beyond-ascii", "control"],
)
def test_the_size_is_what_the_input_takes_in_its_frame(value: str) -> None:
    input_json = json.dumps({"v": value})
    empty = len(encode_payload(open_replica("").to_json())) - len('""')
    assert len(encode_payload(open_replica(input_json).to_json())) - empty == (
        instance_input_size(input_json)
    )


def test_the_largest_input_fits_in_a_frame_with_the_largest_envelope() -> None:
    # "xx…x" takes 6 bytes more in the frame: its two quotes, escaped, inside two quotes.
    input_json = json.dumps("x" * (MAX_INSTANCE_INPUT_BYTES - 6))
    assert instance_input_size(input_json) == MAX_INSTANCE_INPUT_BYTES
    check_instance_input(input_json)
    assert len(encode_payload(open_replica(input_json).to_json())) <= DEFAULT_MAX_FRAME_SIZE


def test_one_byte_more_is_refused_giving_both_sizes() -> None:
    input_json = json.dumps("x" * (MAX_INSTANCE_INPUT_BYTES - 5))
    with pytest.raises(TooLargeError) as refused:
        check_instance_input(input_json)
    assert f"{MAX_INSTANCE_INPUT_BYTES + 1} bytes" in refused.value.message
    assert f"at most {MAX_INSTANCE_INPUT_BYTES}" in refused.value.message


def test_escaping_counts_an_input_that_looks_small_is_refused() -> None:
    # 400 000 characters, 800 000 bytes of UTF-8, but 7 ASCII bytes each in the frame.
    input_json = json.dumps("é" * 400_000)
    assert instance_input_size(input_json) > MAX_INSTANCE_INPUT_BYTES
    with pytest.raises(TooLargeError):
        check_instance_input(input_json)
