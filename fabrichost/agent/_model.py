"""The cluster's runtime objects: applications, services, partitions and replicas.

Plain mutable dataclasses owned by the cluster (``_cluster.Cluster``), which is the only writer;
everything runs on one event loop, so no locks are needed. Enum values are Service Fabric's own
spellings, because they go straight into the JSON the queries return.
"""

from __future__ import annotations

import enum
import itertools
import time
import uuid
from dataclasses import dataclass, field

# One definition each, from the layer that owns it: roles, kinds and health are words of the
# protocol; the activation mode is a word of the manifests. Re-exported for the agent's modules.
from fabrichost.manifest import ActivationMode as ActivationMode
from fabrichost.protocol import HealthState as HealthState
from fabrichost.protocol import ReplicaRole as ReplicaRole
from fabrichost.protocol import ServiceKind as ServiceKind


class ReplicaStatus(enum.StrEnum):
    """SF's ReplicaStatus: InBuild while opening, Ready once open, Down while its host is gone."""

    IN_BUILD = "InBuild"
    STANDBY = "Standby"
    READY = "Ready"
    DOWN = "Down"
    DROPPED = "Dropped"


class PartitionScheme(enum.StrEnum):
    SINGLETON = "Singleton"
    UNIFORM_INT64_RANGE = "UniformInt64Range"
    NAMED = "Named"


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


@dataclass(frozen=True, slots=True)
class ServiceDescription:
    """What a caller asks for when creating a service (SF's ServiceDescription, trimmed)."""

    name: str
    type_name: str
    kind: ServiceKind
    activation_mode: ActivationMode = ActivationMode.SHARED_PROCESS
    partition_scheme: PartitionScheme = PartitionScheme.SINGLETON
    partition_count: int = 1
    low_key: int = 0
    high_key: int = 0
    partition_names: tuple[str, ...] = ()
    instance_count: int = 1  # stateless; -1 = every node
    target_replica_set_size: int = 1  # stateful
    min_replica_set_size: int = 1
    has_persisted_state: bool = False
    init_data: str | None = None

    @property
    def target_count(self) -> int:
        if self.kind is ServiceKind.STATELESS:
            return self.instance_count
        return self.target_replica_set_size

    def partition_layout(self) -> list[tuple[str | None, int | None, int | None]]:
        """(name, low, high) of every partition, splitting an Int64 range evenly as SF does."""
        if self.partition_scheme is PartitionScheme.SINGLETON:
            return [(None, None, None)]
        if self.partition_scheme is PartitionScheme.NAMED:
            return [(n, None, None) for n in self.partition_names]
        size = self.high_key - self.low_key + 1
        bounds: list[tuple[str | None, int | None, int | None]] = []
        for i in range(self.partition_count):
            low = self.low_key + size * i // self.partition_count
            high = self.low_key + size * (i + 1) // self.partition_count - 1
            bounds.append((None, low, high))
        return bounds
