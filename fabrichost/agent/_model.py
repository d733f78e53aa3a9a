"""The cluster's runtime objects: applications, services, partitions, replicas and instances.

Plain mutable dataclasses held by :class:`~fabrichost.agent._state.ClusterState`; everything runs
on one event loop, so no locks are needed. Enum values are Service Fabric's own spellings,
because they go straight into the JSON the queries return. :func:`new_service` is how a
description becomes a Service, both at create and at restore.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fabrichost.agent._health import EntityReports
from fabrichost.errors import ActivationError, ApiError, NotFoundError

# One definition each, from the layer that owns it: roles, kinds and health are words of the
# protocol; activation modes, partition schemes and descriptions are words of the wire.
from fabrichost.protocol import HealthState as HealthState
from fabrichost.protocol import ReplicaRole as ReplicaRole
from fabrichost.protocol import ServiceKind as ServiceKind
from fabrichost.wire import ActivationMode as ActivationMode
from fabrichost.wire import InstanceStatus as InstanceStatus
from fabrichost.wire import PartitionScheme as PartitionScheme
from fabrichost.wire import ServiceDescription as ServiceDescription

if TYPE_CHECKING:
    from collections.abc import Mapping

    from fabrichost.agent._spec import ServicePackageSpec, ServiceTypeSpec


class ReplicaStatus(enum.StrEnum):
    """SF's ReplicaStatus: InBuild while opening, Ready once open, Down while its host is gone."""

    IN_BUILD = "InBuild"
    STANDBY = "Standby"
    READY = "Ready"
    DOWN = "Down"
    DROPPED = "Dropped"


# SF's replica and instance ids are int64 values unique in the cluster; a time seed keeps them
# from repeating across agent runs, like SF's own sequence numbers.
_replica_ids = itertools.count(time.time_ns() // 1000)


def new_replica_id() -> int:
    return next(_replica_ids)


@dataclass(eq=False)
class Replica:
    """One replica (stateful) or instance (stateless) of a partition, placed on one node."""

    partition: Partition
    node_name: str
    role: ReplicaRole
    id: int = field(default_factory=new_replica_id)
    status: ReplicaStatus = ReplicaStatus.IN_BUILD
    address: str = ""
    activation_id: str = ""
    code_package_name: str = ""
    host_pid: int = 0
    last_error: str = ""
    # The service's own error from its last open (its code raised; the host answered
    # ServiceFailed), kept until it opens: a waiting create reports it at once instead of
    # waiting out its timeout, and the replica's health is Error meanwhile.
    failure: str = ""
    open_failures: int = 0  # failed opens in a row: the retry's backoff grows with them
    health: EntityReports = field(default_factory=EntityReports, repr=False)

    @property
    def service(self) -> Service:
        return self.partition.service

    @property
    def dropped(self) -> bool:
        """Gone from its partition (its service deleted, its node stopped, or replaced)."""
        return self.status is ReplicaStatus.DROPPED


@dataclass(eq=False)
class Partition:
    service: Service
    scheme: PartitionScheme
    name: str | None = None
    low_key: int | None = None
    high_key: int | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    replicas: list[Replica] = field(default_factory=list)
    health: EntityReports = field(default_factory=EntityReports, repr=False)

    def live_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.status is not ReplicaStatus.DROPPED]


@dataclass(eq=False)
class Service:
    """A service: an instance of a service type, split into partitions."""

    name: str
    application: Application
    type_name: str
    kind: ServiceKind
    service_manifest_name: str
    activation_mode: ActivationMode
    target_count: int  # InstanceCount (stateless, -1 = every node) or TargetReplicaSetSize
    min_replica_set_size: int = 1
    has_persisted_state: bool = False
    init_data: str | None = None
    partitions: list[Partition] = field(default_factory=list)
    health_warnings: dict[str, str] = field(default_factory=dict)  # partition id -> warning
    description: ServiceDescription | None = None  # as created; persisted with the service
    service_manifest_version: str = ""  # SF's ManifestVersion of a service
    # The singleton instance this service runs, if any: it is deleted by terminating that
    # instance, not directly.
    instance_id: str | None = None
    health: EntityReports = field(default_factory=EntityReports, repr=False)

    def replicas(self) -> list[Replica]:
        return [r for p in self.partitions for r in p.live_replicas()]


@dataclass(eq=False)
class Application:
    """An application: an instance of an application type, e.g. ``fabric:/App1``."""

    name: str
    type_name: str
    type_version: str
    application_id: str  # SF's "<AppTypeName>_App<N>", used for folder names
    parameters: dict[str, str]
    services: dict[str, Service] = field(default_factory=dict)
    status: str = "Ready"
    # The version an upgrade in progress moves it to (None when none runs): that type version
    # cannot be unprovisioned meanwhile.
    target_version: str | None = None
    # Health reports of the application and of its deployed applications (by node; dropped
    # when it is no longer deployed there): deleting the application deletes them all.
    health: EntityReports = field(default_factory=EntityReports, repr=False)
    deployed_health: dict[str, EntityReports] = field(default_factory=dict, repr=False)


def new_service(
    app: Application, desc: ServiceDescription, packages: Mapping[str, ServicePackageSpec]
) -> Service:
    """The Service ``desc`` describes, checked against the application's packages (no
    partitions yet); raises if the type is unknown, of the other kind, or not runnable."""
    package, type_spec = package_of_type(packages, app.name, desc.type_name)
    if type_spec.stateful != (desc.kind is ServiceKind.STATEFUL):
        raise ApiError(
            f"service type {desc.type_name} is "
            f"{'stateful' if type_spec.stateful else 'stateless'}, "
            f"but a {desc.kind.value} service was asked for"
        )
    for cp in package.code_packages:
        if cp.main is None:
            raise ActivationError(
                f"code package {cp.name!r} of {package.name!r} uses "
                f"{cp.unsupported}; fabrichost runs processes (ExeHost) only"
            )
    return Service(
        desc.name,
        app,
        desc.type_name,
        desc.kind,
        package.name,
        desc.activation_mode,
        desc.target_count,
        desc.min_replica_set_size,
        desc.has_persisted_state,
        desc.init_data,
        description=desc,
        service_manifest_version=package.version,
    )


def package_of_type(
    packages: Mapping[str, ServicePackageSpec], app_name: str, type_name: str
) -> tuple[ServicePackageSpec, ServiceTypeSpec]:
    """The service package of an application that declares ``type_name``, and its type."""
    for package in packages.values():
        type_spec = package.service_type(type_name)
        if type_spec is not None:
            return package, type_spec
    raise NotFoundError(
        f"service type {type_name} is not declared by application {app_name}",
        code="FABRIC_E_SERVICE_TYPE_NOT_FOUND",
    )


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class Instance:
    """A singleton instance (see ``_instances``): one ID, one generation per start."""

    instance_id: str
    function_name: str
    application: str
    service_name: str
    input_json: str
    generation: int
    status: InstanceStatus = InstanceStatus.PENDING
    output_json: str | None = None
    error: str | None = None
    request_id: str | None = None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Set once no process of this incarnation can be running: until then its ID stays taken,
    # even when its status already says it finished.
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    # Held while one external event is delivered: the events of an incarnation go one at a
    # time, in the order they were raised (asyncio.Lock wakes its waiters first come first).
    event_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def touch(self, status: InstanceStatus) -> None:
        """Take ``status`` now (the caller records it, then sets :attr:`finished` if final)."""
        self.status = status
        self.updated_at = _now()
