"""The rows the state store reads and writes: frozen, slotted dataclasses, one per table.

Rows carry plain values only. Fields that hold structured data (parameters, descriptions,
responses, instance input and output) are JSON text the caller serialises and parses, so the
store never guesses at a schema it does not own. Timestamps are seconds since the epoch
(``time.time()``); process start times are psutil's ``create_time()``.
"""

from __future__ import annotations

from dataclasses import dataclass

# One definition of the statuses, shared with the agent and its clients.
from fabrichost.wire import InstanceStatus as InstanceStatus


@dataclass(frozen=True, slots=True)
class ApplicationTypeRow:
    """A provisioned application type: its package copy in the image store."""

    name: str
    version: str
    digest: str
    image_path: str


@dataclass(frozen=True, slots=True)
class ApplicationRow:
    """An application, e.g. ``fabric:/App1`` of type ``MyAppType`` ``1.0.0``.

    The (type_name, type_version) pair must name a provisioned :class:`ApplicationTypeRow`.
    ``application_id`` is SF's ``<Type>_App<N>`` and is unique too.
    """

    name: str
    type_name: str
    type_version: str
    application_id: str
    parameters_json: str
    created_at: float


@dataclass(frozen=True, slots=True)
class ServiceRow:
    """A service of an application; deleting the application deletes it."""

    name: str
    application: str
    description_json: str
    created_at: float


@dataclass(frozen=True, slots=True)
class PartitionRow:
    """One partition of a service. ``ordinal`` orders the partitions of one service (0, 1, ...).

    ``name`` is set for the Named scheme, ``low_key``/``high_key`` for UniformInt64Range.
    """

    id: str
    service: str
    ordinal: int
    scheme: str
    name: str | None = None
    low_key: int | None = None
    high_key: int | None = None


@dataclass(frozen=True, slots=True)
class UpgradeRow:
    """An application's latest upgrade: where it goes from and to, and how far it got.

    ``state`` is Service Fabric's UpgradeState (``RollingForwardInProgress`` …); the
    application row keeps the version in force until the upgrade completes, so an agent
    restarted mid-upgrade runs that version everywhere. ``description_json`` is the upgrade
    description as asked, ``progress_json`` the per-domain progress and any failure.
    """

    application: str
    from_version: str
    target_version: str
    from_parameters_json: str
    target_parameters_json: str
    state: str
    description_json: str
    progress_json: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    """A placement: which node holds which replica (or instance) of a partition, in which role."""

    id: int
    partition_id: str
    node: str
    role: str
    activation_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """A process the agent started, remembered so a restarted agent can adopt or fence it.

    The key is (node, application, package, activation_id, code_package). A PID alone is not
    an identity (PIDs are reused), so ``start_time`` must match before the process is
    signalled; ``lock_path`` is the kernel lock the process holds while it lives.
    """

    node: str
    application: str
    package: str
    activation_id: str
    code_package: str
    pid: int
    start_time: float
    lock_path: str
    generation: int

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        return (self.node, self.application, self.package, self.activation_id, self.code_package)


@dataclass(frozen=True, slots=True)
class RequestRow:
    """An idempotency record: a request id (``Idempotency-Key``, ``--request-id``) and its answer.

    ``description_hash`` lets the caller tell a retry (same hash) from a reuse of the key for a
    different request (another hash), which must be refused.
    """

    request_id: str
    kind: str
    target: str
    description_hash: str
    response_json: str
    created_at: float


@dataclass(frozen=True, slots=True)
class InstanceRow:
    """A singleton instance. ``generation`` is its fencing token, drawn from
    :meth:`Store.next_generation`; every later change is fenced on it.
    """

    instance_id: str
    function_name: str
    application: str
    service_name: str
    status: InstanceStatus
    input_json: str
    output_json: str | None
    error: str | None
    generation: int
    created_at: float
    updated_at: float
    request_id: str | None = None


__all__ = (
    "ApplicationRow",
    "ApplicationTypeRow",
    "InstanceRow",
    "InstanceStatus",
    "PartitionRow",
    "ProcessRow",
    "ReplicaRow",
    "RequestRow",
    "ServiceRow",
)
