"""The channel's states and which message may pass in which, written down as data.

Theory of operation
-------------------

One channel joins one agent and one runtime host. Both ends run the same
:class:`~fabrichost.protocol.Connection` state machine, each in its :class:`Role`, and since both
see the same sequence of messages, both walk through the same states::

    IDLE --Hello--> HANDSHAKE --Welcome--> OPEN --Shutdown--> CLOSING --ShutdownComplete--> DONE
                        |                    |                   |
                        +--Error (refused)---+--Fault------------+--Fault--> DONE
    any state --EOF--> CLOSED          any state --the peer broke a rule--> FAULTED

* IDLE: the host must speak first, with ``Hello`` and nothing else; the agent may send nothing
  but ``Fault`` before it has a ``Hello`` to answer.
* HANDSHAKE: the host waits for its answer and sends nothing (``Fault`` aside); the agent answers
  ``Welcome`` with one version from the host's list, or ``Error`` (for instance
  ``UnsupportedVersion``) and closes the channel.
* OPEN: the host registers service types, pings, reports health, load, faults and finished runs,
  and answers the agent's requests; the agent opens, changes and closes replicas, aborts them,
  pushes configuration, raises external events (version 2), pings, and answers the host's
  requests.
* CLOSING: the agent asked the host to shut down. No new requests either way; replies to what was
  already asked still flow, as do the host's reports and the agent's ``AbortReplica``. The host's
  last message is ``ShutdownComplete``.
* DONE: both sides have said their last word (or one sent ``Fault``); the channel should be
  closed. Nothing may be sent.
* CLOSED: the peer closed the channel (EOF). Nothing may be sent.
* FAULTED: the peer broke a rule. The only thing left to send is one ``Fault`` saying why; the
  channel should then be closed.

The tables below say who may send what in each state (:data:`SENDABLE`), which messages move the
state (:data:`TRANSITIONS`), and which replies answer which request (:data:`REPLIES`). Request ids,
reply matching and replica ownership are checked by the connection itself, and so is the
version a message type needs (:data:`INTRODUCED_IN`).
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Mapping


class Role(Enum):
    """Which end of the channel a connection is."""

    AGENT = "agent"
    HOST = "host"

    @property
    def peer(self) -> Role:
        """The other end."""
        return Role.HOST if self is Role.AGENT else Role.AGENT


class State(Enum):
    """Where the channel is in its life; see the module's theory of operation."""

    IDLE = "IDLE"
    HANDSHAKE = "HANDSHAKE"
    OPEN = "OPEN"
    CLOSING = "CLOSING"
    DONE = "DONE"
    CLOSED = "CLOSED"
    FAULTED = "FAULTED"


#: The protocol versions this implementation speaks, newest last.
SUPPORTED_VERSIONS: Final[tuple[int, ...]] = (1, 2, 3)

#: The version that added ``RegisterServiceType.handles_config`` (a host sends it only on a
#: channel that agreed on this version or a later one, so an older agent never sees it).
HANDLES_CONFIG_VERSION: Final = 3

#: Message types added after version 1 -> the version that added them. On a channel whose
#: agreed version is lower, such a message may not be sent, and receiving one is a violation:
#: a host that offered only version 1 never sees a type it does not know.
INTRODUCED_IN: Final[Mapping[str, int]] = {"RaiseEvent": 2, "EventRaised": 2}

_HOST_REPORTS: Final = frozenset({"ReportHealth", "ReportLoad", "ReplicaFaulted", "RunCompleted"})
_HOST_REPLIES: Final = frozenset(
    {
        "ReplicaOpened",
        "RoleChanged",
        "ReplicaClosed",
        "EventRaised",
        "ShutdownComplete",
        "Pong",
        "Error",
    }
)
_AGENT_REPLIES: Final = frozenset({"ServiceTypeRegistered", "Pong", "Error"})
_AGENT_REQUESTS: Final = frozenset(
    {"OpenReplica", "ChangeRole", "CloseReplica", "RaiseEvent", "Shutdown", "Ping"}
)
_NOTHING: Final[frozenset[str]] = frozenset()
_FAULT: Final = frozenset({"Fault"})

#: (who sends, state) -> the message types that sender may send in that state.
SENDABLE: Final[Mapping[tuple[Role, State], frozenset[str]]] = {
    (Role.HOST, State.IDLE): frozenset({"Hello", "Fault"}),
    (Role.HOST, State.HANDSHAKE): _FAULT,
    (Role.HOST, State.OPEN): (
        _HOST_REPORTS | _HOST_REPLIES | {"RegisterServiceType", "Ping", "Fault"}
    ),
    (Role.HOST, State.CLOSING): _HOST_REPORTS | _HOST_REPLIES | _FAULT,
    (Role.HOST, State.DONE): _NOTHING,
    (Role.HOST, State.CLOSED): _NOTHING,
    (Role.HOST, State.FAULTED): _FAULT,
    (Role.AGENT, State.IDLE): _FAULT,
    (Role.AGENT, State.HANDSHAKE): frozenset({"Welcome", "Error", "Fault"}),
    (Role.AGENT, State.OPEN): (
        _AGENT_REQUESTS | _AGENT_REPLIES | {"AbortReplica", "ConfigChanged", "Fault"}
    ),
    (Role.AGENT, State.CLOSING): _AGENT_REPLIES | {"AbortReplica", "Fault"},
    (Role.AGENT, State.DONE): _NOTHING,
    (Role.AGENT, State.CLOSED): _NOTHING,
    (Role.AGENT, State.FAULTED): _FAULT,
}

#: (state, message type) -> the state after that message passes, in either direction.
TRANSITIONS: Final[Mapping[tuple[State, str], State]] = {
    (State.IDLE, "Hello"): State.HANDSHAKE,
    (State.HANDSHAKE, "Welcome"): State.OPEN,
    (State.HANDSHAKE, "Error"): State.DONE,
    (State.OPEN, "Shutdown"): State.CLOSING,
    (State.CLOSING, "ShutdownComplete"): State.DONE,
    (State.IDLE, "Fault"): State.DONE,
    (State.HANDSHAKE, "Fault"): State.DONE,
    (State.OPEN, "Fault"): State.DONE,
    (State.CLOSING, "Fault"): State.DONE,
}

#: request type -> the reply types that may answer it.
REPLIES: Final[Mapping[str, frozenset[str]]] = {
    "Hello": frozenset({"Welcome", "Error"}),
    "RegisterServiceType": frozenset({"ServiceTypeRegistered", "Error"}),
    "OpenReplica": frozenset({"ReplicaOpened", "Error"}),
    "ChangeRole": frozenset({"RoleChanged", "Error"}),
    "CloseReplica": frozenset({"ReplicaClosed", "Error"}),
    "RaiseEvent": frozenset({"EventRaised", "Error"}),
    "Shutdown": frozenset({"ShutdownComplete"}),
    "Ping": frozenset({"Pong"}),
}


def negotiate_version(
    offered: tuple[int, ...], supported: tuple[int, ...] = SUPPORTED_VERSIONS
) -> int | None:
    """The version the agent should choose: the highest both speak, or ``None`` if none."""
    common = set(offered).intersection(supported)
    return max(common) if common else None
