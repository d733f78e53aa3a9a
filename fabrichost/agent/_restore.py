"""Turning the store's rows back into the runtime model, after a crash or a ``down``.

Types are loaded from their image store copies, applications instantiated with their stored
parameters, services rebuilt from their descriptions, partitions keep their ids and replicas
their nodes. A row that cannot be restored (its image store copy is gone, its node no longer
exists) is reported and its row dropped, never half-used; a partition left without a Primary
gets one, recorded. Nothing is started here: the cluster fences the earlier run's processes
first (``Cluster.restore``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.agent._model import (
    Application,
    Partition,
    PartitionScheme,
    Replica,
    ReplicaRole,
    ServiceKind,
    new_service,
)
from fabrichost.agent._persist import description_from_json
from fabrichost.agent._provision import ProvisionedType, instantiate
from fabrichost.errors import FabricHostError
from fabrichost.manifest import load_application_package

if TYPE_CHECKING:
    from fabrichost.agent._persist import Persistence
    from fabrichost.agent._state import ClusterState

log = logging.getLogger(__name__)


async def restore_state(state: ClusterState, persist: Persistence) -> None:
    """Fill the empty ``state`` with what ``persist`` holds (nodes, types, applications,
    services, partitions, replicas); rows that cannot be restored are dropped from the store."""
    for name, up in persist.node_states().items():
        if name in state.nodes and not up:
            state.nodes[name].went_down()  # down since before this run: its down time unknown
    await _restore_types(state, persist)
    _restore_applications(state, persist)
    _restore_services(state, persist)
    _restore_replicas(state, persist)


async def _restore_types(state: ClusterState, persist: Persistence) -> None:
    for row in persist.application_type_rows():
        try:
            package = await asyncio.to_thread(load_application_package, Path(row.image_path))
        except (FabricHostError, OSError) as exc:
            log.error(
                "application type %s %s cannot be restored from %s: %s",
                row.name,
                row.version,
                row.image_path,
                exc,
            )
            continue
        state.application_types[(row.name, row.version)] = ProvisionedType(
            row.name, row.version, row.digest, package
        )


def _restore_applications(state: ClusterState, persist: Persistence) -> None:
    for row in persist.application_rows():
        ptype = state.application_types.get((row.type_name, row.type_version))
        try:
            if ptype is None:
                raise FabricHostError(f"its type {row.type_name} {row.type_version} is missing")
            resolved = instantiate(ptype, json.loads(row.parameters_json))
        except (FabricHostError, ValueError) as exc:
            log.error("application %s cannot be restored: %s", row.name, exc)
            persist.application_removed(row.name)
            continue
        state.applications[row.name] = Application(
            row.name, row.type_name, row.type_version, row.application_id, dict(resolved.parameters)
        )
        state.packages[row.name] = dict(resolved.packages)


def _restore_services(state: ClusterState, persist: Persistence) -> None:
    partitions = defaultdict(list)
    for prow in persist.partition_rows():
        partitions[prow.service].append(prow)
    for row in persist.service_rows():
        app = state.applications.get(row.application)
        if app is None:
            continue
        try:
            service = new_service(
                app, description_from_json(row.description_json), state.packages[app.name]
            )
        except (FabricHostError, ValueError, KeyError) as exc:
            log.error("service %s cannot be restored: %s", row.name, exc)
            persist.service_removed(row.name)
            continue
        for prow in sorted(partitions[row.name], key=lambda p: p.ordinal):
            service.partitions.append(
                Partition(
                    service,
                    PartitionScheme(prow.scheme),
                    prow.name,
                    prow.low_key,
                    prow.high_key,
                    id=prow.id,
                )
            )
        app.services[row.name] = service


def _restore_replicas(state: ClusterState, persist: Persistence) -> None:
    by_id = {
        p.id: p
        for app in state.applications.values()
        for service in app.services.values()
        for p in service.partitions
    }
    for row in persist.replica_rows():
        partition = by_id.get(row.partition_id)
        node = state.nodes.get(row.node)
        if partition is None or node is None or not node.up:
            # Its node no longer exists, or is down (a run that stopped it was killed before
            # the stop was whole): it is placed anew, on an up node.
            persist.replica_row_removed(row.id)
            continue
        partition.replicas.append(Replica(partition, row.node, ReplicaRole(row.role), id=row.id))
    for partition in by_id.values():
        live = partition.live_replicas()
        # A crash between a demotion and the promotion after it, or fewer nodes than before,
        # can leave a partition without a Primary: it gets one before anything starts.
        if (
            live
            and partition.service.kind is ServiceKind.STATEFUL
            and not any(r.role is ReplicaRole.PRIMARY for r in live)
        ):
            live[0].role = ReplicaRole.PRIMARY
            persist.replica_saved(live[0])
