"""The host <-> agent pipe protocol, sans-IO: bytes in, messages out.

The wire format is documented in ``docs/protocol.md``. :class:`Connection` is the state machine
both ends use; the message classes are frozen dataclasses whose class name is the wire ``type``.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from fabrichost.protocol._base import ErrorCode as ErrorCode
    from fabrichost.protocol._base import Message as Message
    from fabrichost.protocol._base import Notification as Notification
    from fabrichost.protocol._base import ReplicaNotification as ReplicaNotification
    from fabrichost.protocol._base import Reply as Reply
    from fabrichost.protocol._base import Request as Request
    from fabrichost.protocol._connection import CLOSED as CLOSED
    from fabrichost.protocol._connection import NEED_DATA as NEED_DATA
    from fabrichost.protocol._connection import Connection as Connection
    from fabrichost.protocol._connection import ReplicaKey as ReplicaKey
    from fabrichost.protocol._connection import Sentinel as Sentinel
    from fabrichost.protocol._fork import MAX_FORK_MESSAGE as MAX_FORK_MESSAGE
    from fabrichost.protocol._fork import Forked as Forked
    from fabrichost.protocol._fork import ForkFailed as ForkFailed
    from fabrichost.protocol._fork import ForkRequest as ForkRequest
    from fabrichost.protocol._fork import ForkServerReady as ForkServerReady
    from fabrichost.protocol._fork import decode_fork_message as decode_fork_message
    from fabrichost.protocol._fork import encode_fork_message as encode_fork_message
    from fabrichost.protocol._framing import DEFAULT_MAX_FRAME_SIZE as DEFAULT_MAX_FRAME_SIZE
    from fabrichost.protocol._framing import JSON as JSON
    from fabrichost.protocol._framing import FrameDecoder as FrameDecoder
    from fabrichost.protocol._framing import JSONObject as JSONObject
    from fabrichost.protocol._framing import decode_payload as decode_payload
    from fabrichost.protocol._framing import encode_frame as encode_frame
    from fabrichost.protocol._framing import encode_payload as encode_payload
    from fabrichost.protocol._messages import MESSAGE_TYPES as MESSAGE_TYPES
    from fabrichost.protocol._messages import AbortReplica as AbortReplica
    from fabrichost.protocol._messages import ChangeRole as ChangeRole
    from fabrichost.protocol._messages import CloseReplica as CloseReplica
    from fabrichost.protocol._messages import ConfigChanged as ConfigChanged
    from fabrichost.protocol._messages import Error as Error
    from fabrichost.protocol._messages import EventRaised as EventRaised
    from fabrichost.protocol._messages import Fault as Fault
    from fabrichost.protocol._messages import Hello as Hello
    from fabrichost.protocol._messages import OpenReplica as OpenReplica
    from fabrichost.protocol._messages import Ping as Ping
    from fabrichost.protocol._messages import Pong as Pong
    from fabrichost.protocol._messages import RaiseEvent as RaiseEvent
    from fabrichost.protocol._messages import RegisterServiceType as RegisterServiceType
    from fabrichost.protocol._messages import ReplicaClosed as ReplicaClosed
    from fabrichost.protocol._messages import ReplicaFaulted as ReplicaFaulted
    from fabrichost.protocol._messages import ReplicaOpened as ReplicaOpened
    from fabrichost.protocol._messages import ReportHealth as ReportHealth
    from fabrichost.protocol._messages import ReportLoad as ReportLoad
    from fabrichost.protocol._messages import RoleChanged as RoleChanged
    from fabrichost.protocol._messages import RunCompleted as RunCompleted
    from fabrichost.protocol._messages import ServiceTypeRegistered as ServiceTypeRegistered
    from fabrichost.protocol._messages import Shutdown as Shutdown
    from fabrichost.protocol._messages import ShutdownComplete as ShutdownComplete
    from fabrichost.protocol._messages import Welcome as Welcome
    from fabrichost.protocol._messages import message_from_json as message_from_json
    from fabrichost.protocol._state import HANDLES_CONFIG_VERSION as HANDLES_CONFIG_VERSION
    from fabrichost.protocol._state import INTRODUCED_IN as INTRODUCED_IN
    from fabrichost.protocol._state import SUPPORTED_VERSIONS as SUPPORTED_VERSIONS
    from fabrichost.protocol._state import Role as Role
    from fabrichost.protocol._state import State as State
    from fabrichost.protocol._state import negotiate_version as negotiate_version
    from fabrichost.protocol._values import EVENT_NAME_RULE as EVENT_NAME_RULE
    from fabrichost.protocol._values import Endpoint as Endpoint
    from fabrichost.protocol._values import EndpointProtocol as EndpointProtocol
    from fabrichost.protocol._values import EndpointType as EndpointType
    from fabrichost.protocol._values import HealthState as HealthState
    from fabrichost.protocol._values import ReplicaRole as ReplicaRole
    from fabrichost.protocol._values import RunStatus as RunStatus
    from fabrichost.protocol._values import ServiceKind as ServiceKind
    from fabrichost.protocol._values import is_event_name as is_event_name

# Strategy: each name is imported from its module on first use (PEP 562). The wire vocabulary
# (and so every CLI query) needs a few enums and the framing, not the message classes and the
# connection, which take most of the protocol's import time (docs/PERFORMANCE.md).
_HOME: dict[str, str] = {
    "ErrorCode": "_base",
    "Message": "_base",
    "Notification": "_base",
    "ReplicaNotification": "_base",
    "Reply": "_base",
    "Request": "_base",
    "CLOSED": "_connection",
    "NEED_DATA": "_connection",
    "Connection": "_connection",
    "ReplicaKey": "_connection",
    "Sentinel": "_connection",
    "MAX_FORK_MESSAGE": "_fork",
    "Forked": "_fork",
    "ForkFailed": "_fork",
    "ForkRequest": "_fork",
    "ForkServerReady": "_fork",
    "decode_fork_message": "_fork",
    "encode_fork_message": "_fork",
    "DEFAULT_MAX_FRAME_SIZE": "_framing",
    "JSON": "_framing",
    "FrameDecoder": "_framing",
    "JSONObject": "_framing",
    "decode_payload": "_framing",
    "encode_frame": "_framing",
    "encode_payload": "_framing",
    "MESSAGE_TYPES": "_messages",
    "AbortReplica": "_messages",
    "ChangeRole": "_messages",
    "CloseReplica": "_messages",
    "ConfigChanged": "_messages",
    "Error": "_messages",
    "EventRaised": "_messages",
    "Fault": "_messages",
    "Hello": "_messages",
    "OpenReplica": "_messages",
    "Ping": "_messages",
    "Pong": "_messages",
    "RaiseEvent": "_messages",
    "RegisterServiceType": "_messages",
    "ReplicaClosed": "_messages",
    "ReplicaFaulted": "_messages",
    "ReplicaOpened": "_messages",
    "ReportHealth": "_messages",
    "ReportLoad": "_messages",
    "RoleChanged": "_messages",
    "RunCompleted": "_messages",
    "ServiceTypeRegistered": "_messages",
    "Shutdown": "_messages",
    "ShutdownComplete": "_messages",
    "Welcome": "_messages",
    "message_from_json": "_messages",
    "HANDLES_CONFIG_VERSION": "_state",
    "INTRODUCED_IN": "_state",
    "SUPPORTED_VERSIONS": "_state",
    "Role": "_state",
    "State": "_state",
    "negotiate_version": "_state",
    "EVENT_NAME_RULE": "_values",
    "Endpoint": "_values",
    "EndpointProtocol": "_values",
    "EndpointType": "_values",
    "HealthState": "_values",
    "ReplicaRole": "_values",
    "RunStatus": "_values",
    "ServiceKind": "_values",
    "is_event_name": "_values",
}


__all__ = (
    "CLOSED",
    "DEFAULT_MAX_FRAME_SIZE",
    "EVENT_NAME_RULE",
    "HANDLES_CONFIG_VERSION",
    "INTRODUCED_IN",
    "JSON",
    "MAX_FORK_MESSAGE",
    "MESSAGE_TYPES",
    "NEED_DATA",
    "SUPPORTED_VERSIONS",
    "AbortReplica",
    "ChangeRole",
    "CloseReplica",
    "ConfigChanged",
    "Connection",
    "Endpoint",
    "EndpointProtocol",
    "EndpointType",
    "Error",
    "ErrorCode",
    "EventRaised",
    "Fault",
    "ForkFailed",
    "ForkRequest",
    "ForkServerReady",
    "Forked",
    "FrameDecoder",
    "HealthState",
    "Hello",
    "JSONObject",
    "Message",
    "Notification",
    "OpenReplica",
    "Ping",
    "Pong",
    "RaiseEvent",
    "RegisterServiceType",
    "ReplicaClosed",
    "ReplicaFaulted",
    "ReplicaKey",
    "ReplicaNotification",
    "ReplicaOpened",
    "ReplicaRole",
    "Reply",
    "ReportHealth",
    "ReportLoad",
    "Request",
    "Role",
    "RoleChanged",
    "RunCompleted",
    "RunStatus",
    "Sentinel",
    "ServiceKind",
    "ServiceTypeRegistered",
    "Shutdown",
    "ShutdownComplete",
    "State",
    "Welcome",
    "decode_fork_message",
    "decode_payload",
    "encode_fork_message",
    "encode_frame",
    "encode_payload",
    "is_event_name",
    "message_from_json",
    "negotiate_version",
)


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'fabrichost.protocol' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"fabrichost.protocol.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
