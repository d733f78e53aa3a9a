"""One valid instance of every message type, for round-trip and table-driven tests."""

from __future__ import annotations

from typing import Final

from fabrichost.protocol import (
    AbortReplica,
    ChangeRole,
    CloseReplica,
    ConfigChanged,
    Endpoint,
    EndpointProtocol,
    EndpointType,
    Error,
    EventRaised,
    Fault,
    HealthState,
    Hello,
    Message,
    OpenReplica,
    Ping,
    Pong,
    RaiseEvent,
    RegisterServiceType,
    ReplicaClosed,
    ReplicaFaulted,
    ReplicaOpened,
    ReplicaRole,
    ReportHealth,
    ReportLoad,
    RoleChanged,
    RunCompleted,
    RunStatus,
    ServiceKind,
    ServiceTypeRegistered,
    Shutdown,
    ShutdownComplete,
    Welcome,
)

from .helpers import PARTITION

SAMPLES: Final[tuple[Message, ...]] = (
    Hello(id=1, versions=(1, 2), pid=1234, runtime="python/3.11"),
    RegisterServiceType(id=2, service_type="MyServiceType"),
    ReportHealth(
        partition_id=PARTITION,
        replica_id=7,
        state=HealthState.WARNING,
        property="disk",
        description="",
    ),
    ReportLoad(partition_id=PARTITION, replica_id=7, metrics={"cpu": 3, "memory": 0}),
    ReplicaFaulted(partition_id=PARTITION, replica_id=7, reason="lost its disk"),
    RunCompleted(
        partition_id=PARTITION,
        replica_id=7,
        status=RunStatus.COMPLETED,
        output={"a": [1, 2.5, None, True, "x"]},
        error=None,
    ),
    RunCompleted(
        partition_id=PARTITION, replica_id=7, status=RunStatus.FAILED, output=None, error="boom"
    ),
    OpenReplica(
        id=3,
        service_name="fabric:/App1/ServiceA",
        service_type="MyServiceType",
        service_kind=ServiceKind.STATEFUL,
        partition_id=PARTITION,
        replica_id=7,
        role=ReplicaRole.PRIMARY,
        init_data="seed",
        endpoints={
            "ServiceEndpoint": Endpoint(
                port=30001, protocol=EndpointProtocol.HTTP, type=EndpointType.INPUT
            )
        },
    ),
    OpenReplica(
        id=4,
        service_name="fabric:/App1/Web",
        service_type="WebType",
        service_kind=ServiceKind.STATELESS,
        partition_id=PARTITION,
        replica_id=8,
        role=ReplicaRole.NONE,
        init_data=None,
        endpoints={},
    ),
    ChangeRole(id=5, partition_id=PARTITION, replica_id=7, role=ReplicaRole.ACTIVE_SECONDARY),
    CloseReplica(id=6, partition_id=PARTITION, replica_id=7),
    AbortReplica(partition_id=PARTITION, replica_id=7),
    ConfigChanged(package="Config", settings={"Section": {"Key": "Value"}, "Empty": {}}),
    RaiseEvent(id=11, partition_id=PARTITION, replica_id=7, name="approval", data={"ok": True}),
    Shutdown(id=9),
    Ping(id=10),
    Welcome(re=1, version=1, node_name="_Node_0"),
    ServiceTypeRegistered(re=2),
    ReplicaOpened(re=3, partition_id=PARTITION, replica_id=7, address="tcp://127.0.0.1:30001"),
    RoleChanged(re=5, address=""),
    ReplicaClosed(re=6),
    EventRaised(re=11),
    ShutdownComplete(re=9),
    Pong(re=10),
    Error(re=3, code="ServiceFailed", message="OSError: port in use"),
    Fault(code="ProtocolViolation", message="bad frame"),
)
