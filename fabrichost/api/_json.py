"""Runtime objects rendered as Service Fabric's REST JSON (its field names and enum spellings).

Entity ids in paths follow SF (``fabrichost.wire.name_to_id``): an application ``fabric:/App1`` is
``App1``; a service ``fabric:/App1/ServiceA`` is ``App1~ServiceA``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fabrichost.agent import ReplicaStatus
from fabrichost.wire import PartitionScheme, ServiceKind, name_to_id

if TYPE_CHECKING:
    from fabrichost.agent import (
        Application,
        CodePackageHost,
        HealthView,
        Node,
        Partition,
        ProvisionedType,
        Replica,
        Service,
        ServicePackageActivation,
    )

Json = dict[str, Any]


def paged(items: list[Json]) -> Json:
    return {"ContinuationToken": "", "Items": items}


def _node_index(node: Node) -> int:
    return int(node.name.rsplit("_", 1)[1])


def node_key(node: Node) -> str:
    """The order of nodes in lists: by their number (``_Node_2`` before ``_Node_10``)."""
    return f"{_node_index(node):020d}"


def node_status(node: Node) -> str:
    return "Up" if node.up else "Down"


def node_info(node: Node, health: HealthView) -> Json:
    index = _node_index(node)
    now = datetime.now(UTC)
    up_for = (now - node.up_at).total_seconds() if node.up else 0
    down_for = (now - node.down_at).total_seconds() if not node.up and node.down_at else 0
    return {
        "Name": node.name,
        "IpAddressOrFQDN": "localhost",
        "Type": f"NodeType{index}",
        "CodeVersion": "fabrichost",
        "ConfigVersion": "1",
        "NodeStatus": node_status(node),
        "NodeUpTimeInSeconds": str(int(up_for)),
        "NodeDownTimeInSeconds": str(int(down_for)),
        "NodeUpAt": _time(node.up_at),
        "NodeDownAt": _time(node.down_at),
        "InstanceId": str(node.instance_id),
        # A node stopped through the API (fabrichost's only way down) is SF's "stopped" node.
        "IsStopped": not node.up,
        "HealthState": health.node(node).health.state,
        "IsSeedNode": index < 3,
        "UpgradeDomain": str(index),
        "FaultDomain": f"fd:/{index}",
        "Id": {"Id": f"{index + 1:032x}"},
        "ActivationCount": len(node.activations),
    }


def application_type_info(ptype: ProvisionedType, *, parameters: bool = True) -> Json:
    """SF's ApplicationTypeInfo (``parameters=False``: ExcludeApplicationParameters)."""
    return {
        "Name": ptype.name,
        "Version": ptype.version,
        "DefaultParameterList": (
            [{"Key": k, "Value": v} for k, v in ptype.default_parameters] if parameters else []
        ),
        "Status": "Available",
        "ApplicationTypeDefinitionKind": "ServiceFabricApplicationPackage",
    }


def application_info(app: Application, health: HealthView, *, parameters: bool = True) -> Json:
    """SF's ApplicationInfo (``parameters=False``: ExcludeApplicationParameters)."""
    return {
        "Id": name_to_id(app.name),
        "Name": app.name,
        "TypeName": app.type_name,
        "TypeVersion": app.type_version,
        # SF's ApplicationStatus: Upgrading while an upgrade moves it to another version.
        "Status": "Upgrading" if app.target_version and app.status == "Ready" else app.status,
        "Parameters": (
            [{"Key": k, "Value": v} for k, v in sorted(app.parameters.items())]
            if parameters
            else []
        ),
        "HealthState": health.application(app).health.state,
        "ApplicationDefinitionKind": "ServiceFabricApplicationDescription",
    }


def service_info(service: Service, health: HealthView) -> Json:
    info: Json = {
        "Id": name_to_id(service.name),
        "ServiceKind": service.kind,
        "Name": service.name,
        "TypeName": service.type_name,
        "ManifestVersion": service.service_manifest_version,
        "ServicePackageActivationMode": service.activation_mode,
        "HealthState": health.service(service).health.state,
        "ServiceStatus": "Active",
        "IsServiceGroup": False,
        # The service's own failures (a replica's open raised) beside the placement warnings.
        "HealthWarnings": [
            *service.health_warnings.values(),
            *(r.failure for r in service.replicas() if r.failure),
        ],
    }
    if service.kind is ServiceKind.STATEFUL:
        info["HasPersistedState"] = service.has_persisted_state
    return info


def partition_information(partition: Partition) -> Json:
    """SF's PartitionInformation: the partition's kind, id and keys or name."""
    kind = {
        PartitionScheme.SINGLETON: "Singleton",
        PartitionScheme.UNIFORM_INT64_RANGE: "Int64Range",
        PartitionScheme.NAMED: "Named",
    }[partition.scheme]
    pinfo: Json = {"ServicePartitionKind": kind, "Id": partition.id}
    if partition.scheme is PartitionScheme.UNIFORM_INT64_RANGE:
        pinfo["LowKey"], pinfo["HighKey"] = str(partition.low_key), str(partition.high_key)
    if partition.scheme is PartitionScheme.NAMED:
        pinfo["Name"] = partition.name
    return pinfo


def partition_info(partition: Partition, health: HealthView) -> Json:
    service = partition.service
    info: Json = {
        "ServiceKind": service.kind,
        "PartitionInformation": partition_information(partition),
        "HealthState": health.partition(partition).health.state,
        "PartitionStatus": "Ready",
    }
    if service.kind is ServiceKind.STATEFUL:
        info["TargetReplicaSetSize"] = service.target_count
        info["MinReplicaSetSize"] = service.min_replica_set_size
    else:
        info["InstanceCount"] = service.target_count
    return info


def _replica_id_field(replica: Replica) -> Json:
    if replica.service.kind is ServiceKind.STATEFUL:
        return {"ReplicaId": str(replica.id), "ReplicaRole": replica.role}
    return {"InstanceId": str(replica.id)}


def replica_info(replica: Replica, health: HealthView) -> Json:
    info: Json = {
        "ServiceKind": replica.service.kind,
        **_replica_id_field(replica),
        "ReplicaStatus": replica.status,
        "HealthState": health.replica(replica).health.state,
        "NodeName": replica.node_name,
        "Address": replica.address,
    }
    if replica.status is not ReplicaStatus.READY and replica.last_error:
        info["HealthDescription"] = replica.last_error  # why: the health event's description
    return info


def deployed_application_info(health: HealthView, node: Node, app: Application) -> Json:
    folders = health.state.folders(node, app)
    return {
        "Id": name_to_id(app.name),
        "Name": app.name,
        "TypeName": app.type_name,
        "TypeVersion": app.type_version,
        "Status": "Active",
        "WorkDirectory": str(folders.work),
        "LogDirectory": str(folders.log),
        "TempDirectory": str(folders.temp),
        "HealthState": health.deployed_application(app, node).health.state,
    }


def deployed_service_package_info(activation: ServicePackageActivation) -> Json:
    return {
        "Name": activation.package.name,
        "Version": activation.package.version,
        "Status": activation.status,
        "ServicePackageActivationId": activation.activation_id,
    }


def _time(value: datetime | None) -> str:
    return (
        value.isoformat().replace("+00:00", "Z")
        if value is not None
        else "0001-01-01T00:00:00.000Z"
    )


def _entry_point_info(host: CodePackageHost) -> Json:
    sup = host.supervisor
    stats = sup.statistics
    assert host.spec.main is not None
    return {
        "EntryPointLocation": str(host.spec.main.program),
        "ProcessId": str(sup.pid or 0),
        "RunAsUserName": "",
        "Status": sup.status.value,
        "NextActivationTime": _time(sup.next_activation_time),
        "InstanceId": str(sup.instance_id),
        "CodePackageEntryPointStatistics": {
            name: _time(value) if name.endswith("Time") else str(value)
            for name, value in ((f, getattr(stats, f)) for f in stats.__dataclass_fields__)
        },
    }


def deployed_code_package_info(activation: ServicePackageActivation, host: CodePackageHost) -> Json:
    setup = host.spec.setup
    return {
        "Name": host.spec.name,
        "Version": host.spec.version,
        "ServiceManifestName": activation.package.name,
        "ServicePackageActivationId": activation.activation_id,
        "HostType": "ExeHost",
        "HostIsolationMode": "None",
        "Status": "Active",
        "RunFrequencyInterval": "0",
        "HasSetupEntryPoint": setup is not None,
        "SetupEntryPoint": {"EntryPointLocation": str(setup.program)} if setup else None,
        "MainEntryPoint": _entry_point_info(host),
        "HealthState": host.supervisor.health.value,
    }


def deployed_replica_info(replica: Replica, activation: ServicePackageActivation | None) -> Json:
    service = replica.service
    return {
        "ServiceKind": service.kind,
        "ServiceName": service.name,
        "ServiceTypeName": service.type_name,
        "ServiceManifestName": service.service_manifest_name,
        "ServiceManifestVersion": activation.package.version if activation else "",
        "CodePackageName": replica.code_package_name,
        "PartitionId": replica.partition.id,
        **_replica_id_field(replica),
        "ReplicaStatus": replica.status,
        "Address": replica.address,
        "ServicePackageActivationId": replica.activation_id,
        "HostProcessId": str(replica.host_pid),
    }
