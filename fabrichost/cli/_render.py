"""The node view drawn as a tree in the terminal, like the hosting-model diagrams:

_Node_0
└── fabric:/App1 (MyAppType)
    └── MyServicePackage  activation ""  Active
        └── MyCodePackage  pid 4242  cpu 0.0%  mem 21.3 MiB
            ├── fabric:/App1/ServiceA  P 1f2e…  Primary  Ready
            └── fabric:/App1/ServiceB  P 77aa…  ActiveSecondary  Ready
"""

from __future__ import annotations

from typing import Any

from rich.tree import Tree


def _short(partition_id: str, name: str | None) -> str:
    return name if name else partition_id[:8]


def render_view(view: dict[str, Any]) -> Tree:
    root = Tree("cluster", hide_root=True)
    for node in view["Nodes"]:
        node_branch = root.add(f"[bold]{node['NodeName']}[/bold]  {node['NodeStatus']}")
        if not node["Applications"]:
            node_branch.add("[dim](no applications)[/dim]")
        for app in node["Applications"]:
            app_branch = node_branch.add(f"{app['ApplicationName']} ({app['TypeName']})")
            for act in app["Activations"]:
                aid = act["ServicePackageActivationId"] or '""'
                act_branch = app_branch.add(
                    f"{act['ServicePackageName']}  activation {aid}  {act['Status']}"
                )
                for cp in act["CodePackages"]:
                    mem = cp["MemoryInBytes"] / 1024 / 1024
                    cp_branch = act_branch.add(
                        f"{cp['CodePackageName']}  pid {cp['ProcessId'] or '-'}  {cp['Status']}  "
                        f"cpu {cp['CpuPercent']:.1f}%  mem {mem:.1f} MiB"
                    )
                    for r in cp["Replicas"]:
                        part = _short(r["PartitionId"], r["PartitionName"])
                        cp_branch.add(
                            f"{r['ServiceName']}  partition {part}"
                            f"  replica {r['ReplicaId']}  {r['ReplicaRole']}  {r['ReplicaStatus']}"
                        )
                if act["PendingReplicaIds"]:
                    act_branch.add(
                        f"[yellow]waiting: {len(act['PendingReplicaIds'])} replica(s)[/yellow]"
                    )
    return root
