"""The node view of the hosting-model diagrams, as data: node → application → service package
activation → code package process → replicas. The CLI and the dashboard draw it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from fabrichost.agent import ClusterState

# CPU is measured between two calls on one ``psutil.Process``, so the objects are kept per pid
# while the process lives. A process seen for the first time has no previous call to compare
# with; it shows its lifetime average instead (as ``ps`` does), later views the share since the
# previous view (as ``top`` does).
_sampled: dict[int, psutil.Process] = {}


def process_usage(pid: int) -> dict[str, Any]:
    """CPU (in % of one core) and memory of a host process (zeros if it is gone)."""
    if pid <= 0:
        return {"CpuPercent": 0.0, "MemoryInBytes": 0}
    try:
        proc = _sampled.get(pid)
        if proc is not None and proc.is_running():  # is_running() also catches PID reuse
            with proc.oneshot():
                return {
                    "CpuPercent": proc.cpu_percent(interval=None),
                    "MemoryInBytes": proc.memory_info().rss,
                }
        proc = _sampled[pid] = psutil.Process(pid)
        with proc.oneshot():
            proc.cpu_percent(interval=None)  # the baseline of the next view's figure
            times = proc.cpu_times()
            age = max(_age(pid), 0.001)
            return {
                "CpuPercent": round(100.0 * (times.user + times.system) / age, 1),
                "MemoryInBytes": proc.memory_info().rss,
            }
    except (psutil.Error, OSError, ValueError, IndexError):
        _sampled.pop(pid, None)
        return {"CpuPercent": 0.0, "MemoryInBytes": 0}


def _age(pid: int) -> float:
    """Seconds since ``pid`` started, on the kernel's boot clock: psutil's create_time adds a
    boot time rounded to whole seconds, which is up to a second off for a young process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22; the name may hold spaces
    return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _forget_exited() -> None:
    for pid, proc in list(_sampled.items()):
        if not proc.is_running():
            del _sampled[pid]


def node_view(state: ClusterState, node_name: str | None = None) -> dict[str, Any]:
    _forget_exited()
    nodes = []
    for node in state.nodes.values():
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
                        "TypeName": state.applications[name].type_name
                        if name in state.applications
                        else "",
                        "Activations": acts,
                    }
                    for name, acts in apps.items()
                ],
            }
        )
    return {"Nodes": nodes}
