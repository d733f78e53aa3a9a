"""Messages: validated on construction, JSON objects with a ``type`` on the wire."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest

from fabrichost.errors import LocalProtocolError, RemoteProtocolError
from fabrichost.protocol import (
    MESSAGE_TYPES,
    Endpoint,
    HealthState,
    Hello,
    Message,
    OpenReplica,
    ReplicaRole,
    ReportHealth,
    RunCompleted,
    RunStatus,
    ServiceKind,
    decode_payload,
    encode_payload,
    message_from_json,
)

from .helpers import PARTITION
from .samples import SAMPLES

if TYPE_CHECKING:
    from fabrichost.protocol import JSONObject


def test_every_message_type_has_a_sample() -> None:
    assert {type(sample).__name__ for sample in SAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire(message: Message) -> None:
    wire = decode_payload(encode_payload(message.to_json()))
    assert wire["type"] == type(message).__name__
    assert message_from_json(wire) == message


@pytest.mark.parametrize("cls", list(MESSAGE_TYPES.values()), ids=lambda c: c.__name__)
def test_wire_fields_are_exactly_the_dataclass_fields(cls: type[Message]) -> None:
    assert [name for name, _ in cls._FIELDS] == [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


def test_messages_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[0].id = 5  # type: ignore[attr-defined]


def test_wire_spellings_become_enums_and_lists_become_tuples() -> None:
    message = message_from_json(
        {
            "type": "OpenReplica",
            "id": 1,
            "service_name": "fabric:/A/S",
            "service_type": "T",
            "service_kind": "Stateful",
            "partition_id": PARTITION,
            "replica_id": 2,
            "role": "IdleSecondary",
            "init_data": None,
            "endpoints": {"E": {"port": 80, "protocol": "tcp", "type": "Internal"}},
        }
    )
    assert isinstance(message, OpenReplica)
    assert message.role is ReplicaRole.IDLE_SECONDARY
    assert message.service_kind is ServiceKind.STATEFUL
    assert message.endpoints == {"E": Endpoint(port=80)}
    hello = message_from_json({"type": "Hello", "id": 1, "versions": [1], "pid": 3, "runtime": ""})
    assert isinstance(hello, Hello)
    assert hello.versions == (1,)


@pytest.mark.parametrize("kind", ["Nope", 5, None, "message_from_json", "Message"])
def test_an_unknown_type_is_refused(kind: object) -> None:
    with pytest.raises(RemoteProtocolError, match="unknown message type"):
        message_from_json({"type": kind, "id": 1})  # type: ignore[dict-item]


def test_a_missing_type_is_refused() -> None:
    with pytest.raises(RemoteProtocolError, match="unknown message type None"):
        message_from_json({"id": 1})


def test_missing_and_unexpected_fields_are_named() -> None:
    with pytest.raises(
        RemoteProtocolError, match=r"Hello: missing fields \['pid'\], unexpected fields \['pod'\]"
    ):
        message_from_json({"type": "Hello", "id": 1, "versions": [1], "pod": 3, "runtime": ""})


def _hello(**overrides: object) -> JSONObject:
    base: JSONObject = {"type": "Hello", "id": 1, "versions": [1], "pid": 3, "runtime": "py"}
    base.update(overrides)  # type: ignore[arg-type]
    return base


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("id", 0, "Hello.id: expected an integer in 1.."),
        ("id", -1, "Hello.id"),
        ("id", True, "Hello.id"),
        ("id", 1.0, "Hello.id"),
        ("id", "1", "Hello.id"),
        ("id", 2**53, "Hello.id"),
        ("versions", [], "Hello.versions: expected a non-empty list"),
        ("versions", 1, "Hello.versions"),
        ("versions", [1, 1], "Hello.versions: expected distinct versions"),
        ("versions", ["1"], "Hello.versions"),
        ("pid", None, "Hello.pid"),
        ("runtime", 5, "Hello.runtime: expected a string"),
    ],
)
def test_a_wrongly_typed_field_is_refused_with_its_name(
    field: str, value: object, expected: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=expected.replace(".", r"\.")):
        message_from_json(_hello(**{field: value}))


@pytest.mark.parametrize(
    "fields",
    [
        {"partition_id": PARTITION.upper()},
        {"partition_id": PARTITION[:-1]},
        {"partition_id": PARTITION.replace("-", "_")},
        {"partition_id": "g" * 8 + PARTITION[8:]},
        {"partition_id": 5},
        {"role": "Secondary"},
        {"role": 2},
        {"service_kind": "stateful"},
        {"service_name": ""},
        {"init_data": 5},
        {"endpoints": []},
        {"endpoints": {"": {"port": 1, "protocol": "tcp", "type": "Input"}}},
        {"endpoints": {"E": {"port": 0, "protocol": "tcp", "type": "Input"}}},
        {"endpoints": {"E": {"port": 65536, "protocol": "tcp", "type": "Input"}}},
        {"endpoints": {"E": {"port": 1, "protocol": "ftp", "type": "Input"}}},
        {"endpoints": {"E": {"port": 1, "protocol": "tcp", "type": "Public"}}},
        {"endpoints": {"E": {"port": 1, "protocol": "tcp"}}},
        {"endpoints": {"E": 80}},
        {"role": "None"},
    ],
    ids=repr,
)
def test_a_bad_open_replica_is_refused(fields: dict[str, object]) -> None:
    obj = SAMPLES[7].to_json()
    obj.update(fields)  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError, match="OpenReplica"):
        message_from_json(obj)


def test_a_stateless_instance_must_open_with_role_none() -> None:
    obj = SAMPLES[8].to_json()
    obj["role"] = "Primary"
    with pytest.raises(RemoteProtocolError, match="a Stateless instance opens with role None"):
        message_from_json(obj)


@pytest.mark.parametrize(
    ("type_", "fields"),
    [
        ("ReportLoad", {"metrics": {"cpu": -1}}),
        ("ReportLoad", {"metrics": {"": 1}}),
        ("ReportLoad", {"metrics": {"cpu": "1"}}),
        ("ReportHealth", {"state": "Fine"}),
        ("ReportHealth", {"property": ""}),
        ("ConfigChanged", {"settings": {"S": {"K": 1}}}),
        ("ConfigChanged", {"settings": {"S": []}}),
        ("ConfigChanged", {"package": ""}),
        ("Welcome", {"version": 0}),
        ("Error", {"code": ""}),
        ("Fault", {"message": None}),
    ],
)
def test_bad_fields_are_refused_for_every_shape(type_: str, fields: dict[str, object]) -> None:
    obj = next(s for s in SAMPLES if type(s).__name__ == type_).to_json()
    obj.update(fields)  # type: ignore[arg-type]
    with pytest.raises(RemoteProtocolError, match=type_):
        message_from_json(obj)


def test_local_construction_raises_local_protocol_error() -> None:
    with pytest.raises(LocalProtocolError, match=r"Hello\.pid"):
        Hello(id=1, versions=(1,), pid=0, runtime="")


@pytest.mark.parametrize(
    ("status", "output", "error", "expected"),
    [
        (RunStatus.COMPLETED, None, "x", "a Completed run has no error"),
        (RunStatus.FAILED, None, None, "a Failed run has an error"),
        (RunStatus.FAILED, 5, "x", "a Failed run has an error and a null output"),
    ],
)
def test_run_completed_status_error_and_output_agree(
    status: RunStatus, output: object, error: str | None, expected: str
) -> None:
    with pytest.raises(LocalProtocolError, match=expected):
        RunCompleted(
            partition_id=PARTITION,
            replica_id=1,
            status=status,
            output=output,  # type: ignore[arg-type]
            error=error,
        )


@pytest.mark.parametrize(
    "output",
    [float("nan"), float("inf"), {1: "a"}, {"a": {2, 3}}, [object()], (1, 2)],
    ids=["nan", "inf", "int-key", "set", "object", "tuple"],
)
def test_run_output_must_be_json(output: object) -> None:
    with pytest.raises(LocalProtocolError, match=r"RunCompleted\.output"):
        RunCompleted(
            partition_id=PARTITION,
            replica_id=1,
            status=RunStatus.COMPLETED,
            output=output,  # type: ignore[arg-type]
            error=None,
        )


def test_endpoint_defaults_match_the_manifest_defaults() -> None:
    endpoint = Endpoint(port=8080)
    assert endpoint.to_json() == {"port": 8080, "protocol": "tcp", "type": "Internal"}
    with pytest.raises(ValueError, match="port"):
        Endpoint(port=0)


def test_report_health_without_the_later_ttl_fields_is_the_bytes_it_always_was() -> None:
    old: JSONObject = {
        "type": "ReportHealth",
        "partition_id": PARTITION,
        "replica_id": 7,
        "state": "Warning",
        "property": "disk",
        "description": "",
    }
    message = message_from_json(old)
    assert isinstance(message, ReportHealth)
    assert (message.time_to_live_ms, message.remove_when_expired) == (None, None)
    assert message.to_json() == old  # an older agent reads what a new host sends without a TTL


def test_report_health_carries_a_ttl_when_given_and_checks_it() -> None:
    message = ReportHealth(
        partition_id=PARTITION,
        replica_id=7,
        state=HealthState.ERROR,
        property="disk",
        description="full",
        time_to_live_ms=1500,
        remove_when_expired=True,
    )
    wire = message.to_json()
    assert (wire["time_to_live_ms"], wire["remove_when_expired"]) == (1500, True)
    assert message_from_json(wire) == message
    with pytest.raises(RemoteProtocolError, match="time_to_live_ms"):
        message_from_json({**wire, "time_to_live_ms": 0})
    with pytest.raises(RemoteProtocolError, match="remove_when_expired"):
        message_from_json({**wire, "remove_when_expired": "yes"})
    with pytest.raises(RemoteProtocolError, match="unexpected fields"):
        message_from_json({**wire, "ttl": 5})
