"""The node view of the hosting-model diagrams, as data: node → application → service package
activation → code package process → replicas. The CLI and the dashboard draw it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fabrichost.api._json import process_usage

if TYPE_CHECKING:
    from fabrichost.agent._cluster import Cluster


def node_view(cluster: Cluster, node_name: str | None = None) -> dict[str, Any]:
    nodes = []
    for node in cluster.nodes.values():
        if node_name is not None and node.name != node_name:
            continue
        apps: dict[str, list[dict[str, Any]]] = {}
        for (app_name, _pkg, _aid), activation in sorted(node.activations.items()):
            processes = []
            for host in activation.hosts.values():
                pid = host.supervisor.pid or 0
                replicas = [
                    {
                        "ServiceName": r.service.name,
                        "PartitionId": r.partition.id,
                        "PartitionName": r.partition.name,
                        "ReplicaId": str(r.id),
                        "ReplicaRole": r.role.value,
                        "ReplicaStatus": r.status.value,
                        "Address": r.address,
                    }
                    for r in activation.replicas
                    if r.code_package_name == host.spec.name and r.host_pid == pid and pid
                ]
                processes.append(
                    {
                        "CodePackageName": host.spec.name,
                        "ProcessId": pid,
                        "Status": host.supervisor.status.value,
                        **process_usage(pid),
                        "Replicas": replicas,
                    }
                )
            pending = [str(r.id) for r in activation.replicas if r.host_pid == 0]
            apps.setdefault(app_name, []).append(
                {
                    "ServicePackageName": activation.package.name,
                    "ServicePackageActivationId": activation.activation_id,
                    "Status": activation.status,
                    "CodePackages": processes,
                    "PendingReplicaIds": pending,
                }
            )
        nodes.append(
            {
                "NodeName": node.name,
                "NodeStatus": "Up" if node.up else "Down",
                "Applications": [
                    {
                        "ApplicationName": name,
                        "TypeName": cluster.applications[name].type_name
                        if name in cluster.applications
                        else "",
                        "Activations": acts,
                    }
                    for name, acts in apps.items()
                ],
            }
        )
    return {"Nodes": nodes}
