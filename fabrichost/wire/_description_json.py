"""Service Fabric's ServiceDescription JSON, both ways: the agent parses what a client sends
(:func:`parse_service_description`), the client renders what it sends
(:func:`service_description_json`).

Bad input gets an error that names the field and what was expected, and changes nothing.
"""

from __future__ import annotations

import re
from typing import Any

from fabrichost.errors import ApiError
from fabrichost.protocol import ServiceKind
from fabrichost.wire._descriptions import (
    INT64_MAX,
    INT64_MIN,
    MAX_PARTITIONS,
    MAX_REPLICAS,
    ActivationMode,
    PartitionScheme,
    ServiceDescription,
)

MAX_NAME_LENGTH = 1024  # a ServiceName or ServiceTypeName, a partition name
_INT64_TEXT = re.compile(r"[+-]?[0-9]{1,19}")


def _field(body: dict[str, Any], key: str, default: Any = None) -> Any:
    """A field's value; JSON ``null`` counts as absent."""
    value = body.get(key)
    return default if value is None else value


def _enum(body: dict[str, Any], key: str, enum_type: Any, default: Any = None) -> Any:
    value = _field(body, key, default)
    if isinstance(value, str):
        try:
            return enum_type(value)
        except ValueError:
            pass
    allowed = ", ".join(m.value for m in enum_type)
    raise ApiError(f"{key} must be one of {allowed}, not {_shown(value)}")


def _int(body: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    """A JSON integer (not a bool, a float or a string) within ``low..high``."""
    value = _field(body, key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{key} must be an integer, not {_shown(value)}")
    if not low <= value <= high:
        raise ApiError(f"{key} must be at least {low} and at most {high}, not {_shown(value)}")
    return value


def _int64(body: dict[str, Any], key: str) -> int:
    """A partition key: SF sends int64 values as decimal strings; a JSON integer is taken too."""
    value = _field(body, key)
    if value is None:
        raise ApiError(f"PartitionDescription.{key} is required for UniformInt64Range")
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _INT64_TEXT.fullmatch(value):
        number = int(value)
    if number is None or not INT64_MIN <= number <= INT64_MAX:
        raise ApiError(
            f"PartitionDescription.{key} must be an int64 ({INT64_MIN}..{INT64_MAX}), "
            f"not {_shown(value)}"
        )
    return number


def _text(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value):
        raise ApiError(f"ServiceDescription.{key} is required and must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ApiError(f"ServiceDescription.{key} is longer than {MAX_NAME_LENGTH} characters")
    return value


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _names(partition: dict[str, Any]) -> tuple[str, ...]:
    names = _field(partition, "Names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise ApiError("PartitionDescription.Names must be a list of non-empty strings")
    if any(len(n) > MAX_NAME_LENGTH for n in names):
        raise ApiError(
            f"PartitionDescription.Names: a name is longer than {MAX_NAME_LENGTH} characters"
        )
    return tuple(names)


def _init_data(value: Any) -> str | None:
    """InitializationData: SF's REST model has an array of bytes (integers 0-255).

    A service's initialization data is text inside fabrichost (``ServiceContext.init_data``),
    so the bytes are decoded as UTF-8 (a byte that is not UTF-8 becomes U+FFFD). A JSON string
    is taken as is: fabrichost's own extension.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255 for b in value
    ):
        return bytes(value).decode("utf-8", errors="replace")
    raise ApiError(
        "InitializationData must be an array of bytes (integers 0-255) or a string, "
        f"not {_shown(value)}"
    )


def parse_service_description(body: Any) -> ServiceDescription:
    """Parse and check a ServiceDescription; raise a 400 ``ApiError`` naming the bad field."""
    if not isinstance(body, dict):
        raise ApiError("the ServiceDescription must be a JSON object")
    name = _text(body, "ServiceName")
    type_name = _text(body, "ServiceTypeName")
    assert name is not None
    assert type_name is not None
    kind = _enum(body, "ServiceKind", ServiceKind)
    partition = _field(body, "PartitionDescription", {"PartitionScheme": "Singleton"})
    if not isinstance(partition, dict):
        raise ApiError("PartitionDescription must be an object")
    scheme = _enum(partition, "PartitionScheme", PartitionScheme, "Singleton")
    names: tuple[str, ...] = ()
    count, low, high = 1, 0, 0
    if scheme is PartitionScheme.UNIFORM_INT64_RANGE:
        count = _int(partition, "Count", 1, 1, MAX_PARTITIONS)
        low, high = _int64(partition, "LowKey"), _int64(partition, "HighKey")
    elif scheme is PartitionScheme.NAMED:
        names = _names(partition)
        count = _int(partition, "Count", len(names), 0, MAX_PARTITIONS)
    persisted = _field(body, "HasPersistedState", False)
    if not isinstance(persisted, bool):
        raise ApiError(f"HasPersistedState must be true or false, not {_shown(persisted)}")
    init_data = _init_data(body.get("InitializationData"))
    description = ServiceDescription(
        name=name,
        type_name=type_name,
        kind=kind,
        activation_mode=_enum(
            body, "ServicePackageActivationMode", ActivationMode, "SharedProcess"
        ),
        partition_scheme=scheme,
        partition_count=count,
        low_key=low,
        high_key=high,
        partition_names=names,
        instance_count=_int(body, "InstanceCount", 1, -1, MAX_REPLICAS),
        target_replica_set_size=_int(body, "TargetReplicaSetSize", 1, 1, MAX_REPLICAS),
        min_replica_set_size=_int(body, "MinReplicaSetSize", 1, 1, MAX_REPLICAS),
        has_persisted_state=persisted,
        init_data=init_data,
    )
    description.validate()  # InstanceCount 0, MinReplicaSetSize > Target, keys that do not fit
    return description


def service_description_json(d: ServiceDescription) -> dict[str, Any]:
    """The inverse of :func:`parse_service_description`, as the client sends it."""
    partition: dict[str, Any] = {"PartitionScheme": d.partition_scheme.value}
    if d.partition_scheme is PartitionScheme.UNIFORM_INT64_RANGE:
        partition.update(Count=d.partition_count, LowKey=str(d.low_key), HighKey=str(d.high_key))
    elif d.partition_scheme is PartitionScheme.NAMED:
        partition.update(Count=len(d.partition_names), Names=list(d.partition_names))
    body: dict[str, Any] = {
        "ServiceKind": d.kind.value,
        "ServiceName": d.name,
        "ServiceTypeName": d.type_name,
        "PartitionDescription": partition,
        "ServicePackageActivationMode": d.activation_mode.value,
    }
    if d.kind is ServiceKind.STATELESS:
        body["InstanceCount"] = d.instance_count
    else:
        body.update(
            TargetReplicaSetSize=d.target_replica_set_size,
            MinReplicaSetSize=d.min_replica_set_size,
            HasPersistedState=d.has_persisted_state,
        )
    if d.init_data is not None:
        body["InitializationData"] = d.init_data
    return body
