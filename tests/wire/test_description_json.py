"""Service Fabric's ServiceDescription JSON: every field strictly typed, bounded, consistent.

A bad body is a 400 (``ApiError``, FABRIC_E_INVALID_ARGUMENT) that names the field; nothing
else escapes the parser (an OverflowError used to become a plain-text 500).
"""

from __future__ import annotations

from typing import Any

import pytest

from fabrichost.errors import ApiError
from fabrichost.wire import (
    PartitionScheme,
    ServiceDescription,
    ServiceKind,
    error_answer,
    parse_service_description,
    service_description_json,
)

INT64_MAX = 2**63 - 1


def stateful(**fields: Any) -> dict[str, Any]:
    return {
        "ServiceKind": "Stateful",
        "ServiceName": "fabric:/App1/S",
        "ServiceTypeName": "MyServiceType",
        "TargetReplicaSetSize": 3,
        "MinReplicaSetSize": 1,
        **fields,
    }


def stateless(**fields: Any) -> dict[str, Any]:
    return {
        "ServiceKind": "Stateless",
        "ServiceName": "fabric:/App1/S",
        "ServiceTypeName": "MyServiceType",
        "InstanceCount": 1,
        **fields,
    }


def uniform(count: Any = 2, low: Any = "0", high: Any = "9") -> dict[str, Any]:
    return {"PartitionScheme": "UniformInt64Range", "Count": count, "LowKey": low, "HighKey": high}


def named(names: Any, **fields: Any) -> dict[str, Any]:
    return {"PartitionScheme": "Named", "Names": names, **fields}


def refused(body: Any, field: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_service_description(body)
    assert error_answer(caught.value)[0] == 400
    assert caught.value.code == "FABRIC_E_INVALID_ARGUMENT"
    assert field in caught.value.message, caught.value.message
    return caught.value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (stateful(TargetReplicaSetSize=1e400), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=float("nan")), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=3.0), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize="3"), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=True), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=99999999999999999999), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=0, MinReplicaSetSize=0), "TargetReplicaSetSize"),
        (stateful(TargetReplicaSetSize=-1), "TargetReplicaSetSize"),
        (stateful(MinReplicaSetSize=0), "MinReplicaSetSize"),
        (stateful(MinReplicaSetSize=4), "MinReplicaSetSize"),
        (stateful(MinReplicaSetSize="1"), "MinReplicaSetSize"),
        (stateful(HasPersistedState="yes"), "HasPersistedState"),
        (stateless(InstanceCount=0), "InstanceCount"),
        (stateless(InstanceCount=-2), "InstanceCount"),
        (stateless(InstanceCount=False), "InstanceCount"),
        (stateless(InstanceCount=[1]), "InstanceCount"),
        (stateless(InstanceCount=10**30), "InstanceCount"),
        (stateless(ServiceName=5), "ServiceName"),
        (stateless(ServiceName=""), "ServiceName"),
        (stateless(ServiceTypeName=["x"]), "ServiceTypeName"),
        (stateless(ServiceKind=None), "ServiceKind"),
        (stateless(ServiceKind=["Stateless"]), "ServiceKind"),
        (stateless(ServicePackageActivationMode=1), "ServicePackageActivationMode"),
        (stateless(InitializationData=5), "InitializationData"),
        (stateless(PartitionDescription=[]), "PartitionDescription"),
        (stateless(PartitionDescription={"PartitionScheme": {}}), "PartitionScheme"),
        (stateless(PartitionDescription=uniform(count=True)), "Count"),
        (stateless(PartitionDescription=uniform(count="2")), "Count"),
        (stateless(PartitionDescription=uniform(count=0)), "Count"),
        (stateless(PartitionDescription=uniform(count=1e400)), "Count"),
        (stateless(PartitionDescription=uniform(count=10**6)), "Count"),
        (stateless(PartitionDescription=uniform(high="99999999999999999999")), "HighKey"),
        (stateless(PartitionDescription=uniform(high=2**63)), "HighKey"),
        (stateless(PartitionDescription=uniform(low=str(-(2**63) - 1))), "LowKey"),
        (stateless(PartitionDescription=uniform(low="zero")), "LowKey"),
        (stateless(PartitionDescription=uniform(low=0.5)), "LowKey"),
        (stateless(PartitionDescription=uniform(low=True)), "LowKey"),
        (stateless(PartitionDescription=uniform(low="9", high="0")), "LowKey"),
        (stateless(PartitionDescription=uniform(count=11, low="0", high="9")), "Count"),
        (stateless(PartitionDescription=named(["a", 1])), "Names"),
        (stateless(PartitionDescription=named("ab")), "Names"),
        (stateless(PartitionDescription=named([])), "Names"),
        (stateless(PartitionDescription=named(["a", "a"])), "Names"),
        (stateless(PartitionDescription=named(["a", ""])), "Names"),
        (stateless(PartitionDescription=named(["a", "b"], Count=3)), "Count"),
        (stateless(PartitionDescription=named(["a", "b"], Count=True)), "Count"),
    ],
)
def test_a_bad_field_is_a_400_naming_it(body: dict[str, Any], field: str) -> None:
    refused(body, field)


@pytest.mark.parametrize("body", [[], "x", None, 5])
def test_a_body_that_is_not_an_object_is_a_400(body: Any) -> None:
    refused(body, "ServiceDescription")


def test_zero_replicas_names_the_target_not_the_minimum() -> None:
    # The CLI's --replicas 0 sends TargetReplicaSetSize 0 with MinReplicaSetSize 0.
    error = refused(stateful(TargetReplicaSetSize=0, MinReplicaSetSize=0), "TargetReplicaSetSize")
    assert "MinReplicaSetSize" not in error.message


def test_int64_keys_at_the_limits_are_accepted_as_strings_or_numbers() -> None:
    low, high = -(2**63), INT64_MAX
    parsed = parse_service_description(
        stateless(PartitionDescription=uniform(count=4, low=str(low), high=high))
    )
    assert (parsed.low_key, parsed.high_key, parsed.partition_count) == (low, high, 4)
    layout = parsed.partition_layout()
    assert layout[0][1] == low
    assert layout[-1][2] == high


def test_good_descriptions_round_trip() -> None:
    descriptions = [
        ServiceDescription("fabric:/A/S", "T", ServiceKind.STATELESS, instance_count=-1),
        ServiceDescription(
            "fabric:/A/S",
            "T",
            ServiceKind.STATEFUL,
            partition_scheme=PartitionScheme.UNIFORM_INT64_RANGE,
            partition_count=3,
            low_key=-5,
            high_key=100,
            target_replica_set_size=3,
            min_replica_set_size=2,
            has_persisted_state=True,
            init_data="x",
        ),
        ServiceDescription(
            "fabric:/A/S",
            "T",
            ServiceKind.STATELESS,
            partition_scheme=PartitionScheme.NAMED,
            partition_count=2,
            partition_names=("a", "b"),
            instance_count=2,
        ),
    ]
    for description in descriptions:
        assert parse_service_description(service_description_json(description)) == description


def test_named_count_may_be_left_out_or_match() -> None:
    for partition in (named(["a", "b"]), named(["a", "b"], Count=2)):
        parsed = parse_service_description(stateless(PartitionDescription=partition))
        assert parsed.partition_names == ("a", "b")
        assert parsed.partition_count == 2
