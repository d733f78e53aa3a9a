"""SF's JSON for the by-id and type queries (``_queries``): service types, resolved partitions,
name lookups, deployed service types and replica details. Field names are the
``azure-servicefabric`` models' keys."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from fabrichost.agent import ReplicaStatus
from fabrichost.api import _json as J
from fabrichost.protocol import ReplicaRole
from fabrichost.wire import ServiceKind, name_to_id

if TYPE_CHECKING:
    from fabrichost.agent import (
        Partition,
        Replica,
        Service,
        ServicePackageActivation,
        ServiceTypeRecord,
    )

Json = dict[str, Any]


def service_type_info(record: ServiceTypeRecord) -> Json:
    """SF's ServiceTypeInfo of one type an application type declares."""
    description: Json = {
        "Kind": "Stateful" if record.stateful else "Stateless",
        "IsStateful": record.stateful,
        "ServiceTypeName": record.name,
        "PlacementConstraints": record.placement_constraints,
        "LoadMetrics": [],
        "ServicePlacementPolicies": [],
        "Extensions": [],
    }
    if record.stateful:
        description["HasPersistedState"] = record.has_persisted_state
    else:
        description["UseImplicitHost"] = record.use_implicit_host
    return {
        "ServiceTypeDescription": description,
        "ServiceManifestName": record.manifest_name,
        "ServiceManifestVersion": record.manifest_version,
        "IsServiceGroup": False,
    }


def name_info(name: str) -> Json:
    """SF's ServiceNameInfo / ApplicationNameInfo."""
    return {"Id": name_to_id(name), "Name": name}


def _endpoint_kind(replica: Replica) -> str:
    if replica.service.kind is ServiceKind.STATELESS:
        return "Stateless"
    return "StatefulPrimary" if replica.role is ReplicaRole.PRIMARY else "StatefulSecondary"


def resolved_partition(partition: Partition, serving: list[Replica]) -> Json:
    """SF's ResolvedServicePartition: where ``partition``'s Ready replicas listen.

    ``Version`` changes whenever the endpoints do (a client that resolved before compares it).
    """
    endpoints = [
        {"Kind": _endpoint_kind(r), "Address": r.address}
        for r in sorted(serving, key=lambda r: (r.role is not ReplicaRole.PRIMARY, r.id))
        if r.status is ReplicaStatus.READY
    ]
    digest = hashlib.sha256(repr(sorted((e["Kind"], e["Address"]) for e in endpoints)).encode())
    return {
        "Name": partition.service.name,
        "PartitionInformation": J.partition_information(partition),
        "Endpoints": endpoints,
        "Version": str(int.from_bytes(digest.digest()[:7], "big")),
    }


def deployed_service_type_info(
    activation: ServicePackageActivation, type_name: str, code_package: str | None
) -> Json:
    """SF's DeployedServiceTypeInfo; ``code_package`` is the one that registered the type
    (None: no process of the activation has registered it)."""
    return {
        "ServiceTypeName": type_name,
        "ServiceManifestName": activation.package.name,
        "CodePackageName": code_package or "",
        "Status": "Registered" if code_package else "NotRegistered",
        "ServicePackageActivationId": activation.activation_id,
    }


def _access_status(replica: Replica) -> str:
    if replica.role is not ReplicaRole.PRIMARY:
        return "NotPrimary"
    return "Granted" if replica.status is ReplicaStatus.READY else "ReconfigurationPending"


def deployed_replica_detail(
    replica: Replica, activation: ServicePackageActivation | None, service: Service
) -> Json:
    """SF's DeployedServiceReplicaDetailInfo (stateful) or its stateless instance form."""
    detail: Json = {
        "ServiceKind": service.kind,
        "ServiceName": service.name,
        "PartitionId": replica.partition.id,
        # An opening replica is in its service's Open; fabrichost sees no other operation.
        "CurrentServiceOperation": "Open" if replica.status is ReplicaStatus.IN_BUILD else "None",
        "CurrentServiceOperationStartTimeUtc": "0001-01-01T00:00:00.000Z",
        "ReportedLoad": [],
        "DeployedServiceReplicaQueryResult": J.deployed_replica_info(replica, activation),
    }
    if service.kind is ServiceKind.STATEFUL:
        detail["ReplicaId"] = str(replica.id)
        detail["CurrentReplicatorOperation"] = "None"
        detail["ReadStatus"] = detail["WriteStatus"] = _access_status(replica)
    else:
        detail["InstanceId"] = str(replica.id)
    return detail
