"""Service Fabric's ServiceDescription JSON, parsed into :class:`ServiceDescription`.

Bad input gets an error that names the field and what was expected, and changes nothing.
"""

from __future__ import annotations

from typing import Any

from fabrichost.agent._model import ActivationMode, PartitionScheme, ServiceDescription, ServiceKind
from fabrichost.errors import ApiError


def _enum(body: dict[str, Any], key: str, enum_type: Any, default: Any = None) -> Any:
    value = body.get(key, default)
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_type)
        raise ApiError(f"{key} must be one of {allowed}, not {value!r}") from None


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(f"{key} must be an integer, not {value!r}") from None


def parse_service_description(body: dict[str, Any]) -> ServiceDescription:
    for key in ("ServiceName", "ServiceTypeName"):
        if not isinstance(body.get(key), str) or not body[key]:
            raise ApiError(f"ServiceDescription.{key} is required")
    kind = _enum(body, "ServiceKind", ServiceKind, None)
    partition = body.get("PartitionDescription") or {"PartitionScheme": "Singleton"}
    if not isinstance(partition, dict):
        raise ApiError("PartitionDescription must be an object")
    scheme = _enum(partition, "PartitionScheme", PartitionScheme, "Singleton")
    names = tuple(str(n) for n in partition.get("Names") or ())
    count = _int(partition, "Count", len(names) or 1)
    low, high = _int(partition, "LowKey", 0), _int(partition, "HighKey", 0)
    if scheme is PartitionScheme.UNIFORM_INT64_RANGE and not (
        count >= 1 and low <= high and count <= high - low + 1
    ):
        raise ApiError(f"PartitionDescription: {count} partitions do not fit keys {low}..{high}")
    if scheme is PartitionScheme.NAMED and (not names or len(set(names)) != len(names)):
        raise ApiError("PartitionDescription.Names must list unique partition names")
    description = ServiceDescription(
        name=body["ServiceName"],
        type_name=body["ServiceTypeName"],
        kind=kind,
        activation_mode=_enum(
            body, "ServicePackageActivationMode", ActivationMode, "SharedProcess"
        ),
        partition_scheme=scheme,
        partition_count=count,
        low_key=low,
        high_key=high,
        partition_names=names,
        instance_count=_int(body, "InstanceCount", 1),
        target_replica_set_size=_int(body, "TargetReplicaSetSize", 1),
        min_replica_set_size=_int(body, "MinReplicaSetSize", 1),
        has_persisted_state=bool(body.get("HasPersistedState", False)),
        init_data=body.get("InitializationData")
        if isinstance(body.get("InitializationData"), str)
        else None,
    )
    if kind is ServiceKind.STATELESS and (
        description.instance_count == 0 or description.instance_count < -1
    ):
        raise ApiError("InstanceCount must be -1 (every node) or at least 1")
    if kind is ServiceKind.STATEFUL and not (
        1 <= description.min_replica_set_size <= description.target_replica_set_size
    ):
        raise ApiError("MinReplicaSetSize must be between 1 and TargetReplicaSetSize")
    return description


def service_description_json(d: ServiceDescription) -> dict[str, Any]:
    """The inverse of :func:`parse_service_description`, used by the client."""
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
