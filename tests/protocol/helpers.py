"""A connected pair of connections for protocol tests: bytes go from one to the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from fabrichost.protocol import (
    NEED_DATA,
    SUPPORTED_VERSIONS,
    Connection,
    Hello,
    Message,
    OpenReplica,
    RegisterServiceType,
    ReplicaOpened,
    Role,
    Sentinel,
    ServiceKind,
    ServiceTypeRegistered,
    Welcome,
)

PARTITION: Final = "0f8fad5b-d9cb-469f-a165-70867728950e"
OTHER_PARTITION: Final = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SERVICE_TYPE: Final = "MyServiceType"


def frame(payload: bytes) -> bytes:
    """``payload`` with a correct length header."""
    return len(payload).to_bytes(4, "big") + payload


@dataclass
class ConnectionPair:
    """An agent and a host connection wired back to back (h11's ConnectionPair)."""

    agent: Connection = field(default_factory=lambda: Connection(Role.AGENT))
    host: Connection = field(default_factory=lambda: Connection(Role.HOST))

    def side(self, role: Role) -> Connection:
        return self.agent if role is Role.AGENT else self.host

    def send(self, sender: Role, message: Message) -> list[Message | Sentinel]:
        """Send from ``sender``, feed the bytes to the other side, return what it saw."""
        receiver = self.side(sender.peer)
        receiver.receive_data(self.side(sender).send(message))
        events: list[Message | Sentinel] = []
        while (event := receiver.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, Sentinel):
                break
        return events

    def exchange(self, sender: Role, message: Message) -> Message:
        """Send and check the other side saw exactly that message."""
        events = self.send(sender, message)
        assert events == [message]
        return message

    # -- getting to a state -----------------------------------------------------------------------

    def handshake(self, version: int = max(SUPPORTED_VERSIONS)) -> None:
        """Hello offering every supported version, Welcome choosing ``version``."""
        hello = Hello(
            id=self.host.new_request_id(), versions=SUPPORTED_VERSIONS, pid=42, runtime="test"
        )
        self.exchange(Role.HOST, hello)
        self.exchange(Role.AGENT, Welcome(re=hello.id, version=version, node_name="_Node_0"))

    def register(self, service_type: str = SERVICE_TYPE) -> None:
        request = RegisterServiceType(id=self.host.new_request_id(), service_type=service_type)
        self.exchange(Role.HOST, request)
        self.exchange(Role.AGENT, ServiceTypeRegistered(re=request.id))

    def open_request(
        self, replica_id: int = 1, partition_id: str = PARTITION, service_type: str = SERVICE_TYPE
    ) -> OpenReplica:
        return OpenReplica(
            id=self.agent.new_request_id(),
            service_name="fabric:/App1/ServiceA",
            service_type=service_type,
            service_kind=ServiceKind.STATEFUL,
            partition_id=partition_id,
            replica_id=replica_id,
            role="Primary",  # type: ignore[arg-type]  # the wire spelling is accepted too
            init_data=None,
            endpoints={},
        )

    def open(self, replica_id: int = 1, partition_id: str = PARTITION) -> OpenReplica:
        """Open a replica fully (request and reply); returns the request."""
        request = self.exchange(Role.AGENT, self.open_request(replica_id, partition_id))
        assert isinstance(request, OpenReplica)
        self.exchange(
            Role.HOST,
            ReplicaOpened(
                re=request.id, partition_id=partition_id, replica_id=replica_id, address="a"
            ),
        )
        return request


def opened_pair(version: int = max(SUPPORTED_VERSIONS)) -> ConnectionPair:
    """A pair past the handshake (at ``version``) with ``MyServiceType`` registered."""
    pair = ConnectionPair()
    pair.handshake(version)
    pair.register()
    return pair
