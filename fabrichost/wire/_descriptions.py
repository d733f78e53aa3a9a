"""What a caller asks for when it creates a service: Service Fabric's ServiceDescription.

The words in it are Service Fabric's own spellings (they go straight into REST JSON). The HTTP
parser, a manifest's DefaultServices and Python callers all build one, and :meth:`validate`
checks it whoever built it, so a bad description never leaves anything half-made.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from fabrichost.errors import ApiError
from fabrichost.protocol import ServiceKind

# Service Fabric's partition keys are int64; the store keeps them as SQLite INTEGERs (int64).
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_PARTITIONS: Final = 10_000  # a service is placed and committed in one step: keep it bounded
MAX_REPLICAS: Final = 1_000  # InstanceCount / TargetReplicaSetSize beyond any local cluster's nodes


class ActivationMode(enum.StrEnum):
    """``ServicePackageActivationMode`` of a service (default ``SharedProcess``)."""

    SHARED_PROCESS = "SharedProcess"
    EXCLUSIVE_PROCESS = "ExclusiveProcess"


class PartitionScheme(enum.StrEnum):
    SINGLETON = "Singleton"
    UNIFORM_INT64_RANGE = "UniformInt64Range"
    NAMED = "Named"


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

    def validate(self) -> None:
        """Raise a 400 ``ApiError`` naming the first field out of range or inconsistent.

        Checked before a service is created, whoever built the description (the HTTP parser,
        a manifest's DefaultServices, a Python caller), so nothing half-made is left behind.
        """
        if self.kind is ServiceKind.STATELESS:
            if not (self.instance_count == -1 or 1 <= self.instance_count <= MAX_REPLICAS):
                raise ApiError(
                    f"InstanceCount must be -1 (one per node) or between 1 and {MAX_REPLICAS}, "
                    f"not {self.instance_count}"
                )
        else:
            if not 1 <= self.target_replica_set_size <= MAX_REPLICAS:
                raise ApiError(
                    f"TargetReplicaSetSize must be between 1 and {MAX_REPLICAS}, "
                    f"not {self.target_replica_set_size}"
                )
            if not 1 <= self.min_replica_set_size <= self.target_replica_set_size:
                raise ApiError(
                    "MinReplicaSetSize must be between 1 and TargetReplicaSetSize "
                    f"({self.target_replica_set_size}), not {self.min_replica_set_size}"
                )
        if self.partition_scheme is PartitionScheme.UNIFORM_INT64_RANGE:
            self._validate_range()
        elif self.partition_scheme is PartitionScheme.NAMED:
            self._validate_names()

    def _validate_range(self) -> None:
        for field_name, key in (("LowKey", self.low_key), ("HighKey", self.high_key)):
            if not INT64_MIN <= key <= INT64_MAX:
                raise ApiError(
                    f"PartitionDescription.{field_name} must be an int64 "
                    f"({INT64_MIN}..{INT64_MAX}), not {key}"
                )
        if self.low_key > self.high_key:
            raise ApiError(
                f"PartitionDescription.LowKey {self.low_key} is greater than "
                f"HighKey {self.high_key}"
            )
        if not 1 <= self.partition_count <= MAX_PARTITIONS:
            raise ApiError(
                f"PartitionDescription.Count must be at least 1 and at most {MAX_PARTITIONS}, "
                f"not {self.partition_count}"
            )
        if self.partition_count > self.high_key - self.low_key + 1:
            raise ApiError(
                f"PartitionDescription.Count: {self.partition_count} partitions do not fit "
                f"keys {self.low_key}..{self.high_key}"
            )

    def _validate_names(self) -> None:
        names = self.partition_names
        if not names or len(names) > MAX_PARTITIONS:
            raise ApiError(
                "PartitionDescription.Names must list at least 1 and at most "
                f"{MAX_PARTITIONS} partition names"
            )
        if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
            raise ApiError("PartitionDescription.Names must list unique, non-empty partition names")
        if self.partition_count != len(names):
            raise ApiError(
                f"PartitionDescription.Count ({self.partition_count}) must equal the "
                f"number of Names ({len(names)})"
            )

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
