"""Restart after a crash (or a ``down``): load the store, fence the old processes, start again.

Order matters. The runtime model is rebuilt from the store first (types from their image store
copies, applications instantiated with their stored parameters, services, partitions with their
ids, replicas on their nodes, instances, request ids); then the earlier run's processes are
fenced (``_fence``); only then is anything started. A row that cannot be restored (its image
store copy is gone, its node no longer exists) is reported and dropped, never half-used.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from fabrichost.agent._fence import fence_previous_run
from fabrichost.agent._model import (
    Application,
    Partition,
    PartitionScheme,
    Replica,
    ReplicaRole,
    ServiceKind,
)
from fabrichost.agent._persist import description_from_json
from fabrichost.agent._provision import ProvisionedType, instantiate
from fabrichost.errors import FabricHostError
from fabrichost.manifest import load_application_package

if TYPE_CHECKING:
    from fabrichost.agent._cluster import Cluster
    from fabrichost.store import Store

log = logging.getLogger(__name__)

REQUEST_ID_RETENTION = 7 * 86400  # seconds a request id is remembered, as idempotency keys go


async def restore(cluster: Cluster) -> None:
    store = cluster.persist.store
    for name, up in store.nodes().items():
        if name in cluster.nodes:
            cluster.nodes[name].up = up
    await _restore_types(cluster, store)
    _restore_applications(cluster, store)
    _restore_services(cluster, store)
    _restore_replicas(cluster, store)
    unlaunched = cluster.instances.restore(store.instances())

    forgotten = store.forget_requests_before(time.time() - REQUEST_ID_RETENTION)
    if forgotten:
        log.info(
            "forgot %d request id(s) older than %d days", forgotten, REQUEST_ID_RETENTION // 86400
        )
    processes = store.processes()
    await asyncio.to_thread(fence_previous_run, cluster.state_dir, [p.lock_path for p in processes])
    for row in processes:
        store.forget_process(*row.key)

    for app in list(cluster.applications.values()):
        for service in list(app.services.values()):
            for partition in service.partitions:
                try:
                    await cluster._activate_replicas(partition.live_replicas())
                    await cluster._fill_partition(partition)
                except FabricHostError as exc:  # reported; the rest of the cluster still runs
                    log.error("%s partition %s cannot start: %s", service.name, partition.id, exc)
    for instance in unlaunched:
        await cluster.instances.relaunch(instance)
    if cluster.applications:
        log.info("restored %d application(s) from the store", len(cluster.applications))


async def _restore_types(cluster: Cluster, store: Store) -> None:
    for row in store.application_types():
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
        cluster.application_types[(row.name, row.version)] = ProvisionedType(
            row.name, row.version, row.digest, package
        )


def _restore_applications(cluster: Cluster, store: Store) -> None:
    for row in store.applications():
        ptype = cluster.application_types.get((row.type_name, row.type_version))
        try:
            if ptype is None:
                raise FabricHostError(f"its type {row.type_name} {row.type_version} is missing")
            resolved = instantiate(ptype, json.loads(row.parameters_json))
        except (FabricHostError, ValueError) as exc:
            log.error("application %s cannot be restored: %s", row.name, exc)
            store.remove_application(row.name)
            continue
        cluster.applications[row.name] = Application(
            row.name, row.type_name, row.type_version, row.application_id, dict(resolved.parameters)
        )
        cluster.packages[row.name] = dict(resolved.packages)


def _restore_services(cluster: Cluster, store: Store) -> None:
    partitions = defaultdict(list)
    for prow in store.partitions():
        partitions[prow.service].append(prow)
    for row in store.services():
        app = cluster.applications.get(row.application)
        if app is None:
            continue
        try:
            service = cluster._new_service(
                app, description_from_json(row.description_json), cluster.packages[app.name]
            )
        except (FabricHostError, ValueError, KeyError) as exc:
            log.error("service %s cannot be restored: %s", row.name, exc)
            store.remove_service(row.name)
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


def _restore_replicas(cluster: Cluster, store: Store) -> None:
    by_id = {
        p.id: p
        for app in cluster.applications.values()
        for service in app.services.values()
        for p in service.partitions
    }
    for row in store.replicas():
        partition = by_id.get(row.partition_id)
        node = cluster.nodes.get(row.node)
        if partition is None or node is None or not node.up:
            # Its node no longer exists, or is down (a run that stopped it was killed before
            # the stop was whole): it is placed anew, on an up node.
            store.remove_replica(row.id)
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
            cluster.persist.replica_saved(live[0])
