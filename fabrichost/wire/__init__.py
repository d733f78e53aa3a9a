"""What crosses between the agent and its clients: the shared vocabulary and shapes.

Service descriptions and their REST JSON, names and the entity ids that stand for them, create
policies and instance statuses, how errors travel over HTTP, the ``agent.json`` record a client
reads, and the rules for user JSON and instance IDs. The agent's HTTP API and the Python client
both import this, and it imports nothing heavier than the standard library, so
``import fabrichost.client`` stays small.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from fabrichost.protocol import ServiceKind as ServiceKind
    from fabrichost.wire._description_json import (
        parse_service_description as parse_service_description,
    )
    from fabrichost.wire._description_json import (
        service_description_json as service_description_json,
    )
    from fabrichost.wire._descriptions import INT64_MAX as INT64_MAX
    from fabrichost.wire._descriptions import INT64_MIN as INT64_MIN
    from fabrichost.wire._descriptions import MAX_PARTITIONS as MAX_PARTITIONS
    from fabrichost.wire._descriptions import MAX_REPLICAS as MAX_REPLICAS
    from fabrichost.wire._descriptions import ActivationMode as ActivationMode
    from fabrichost.wire._descriptions import PartitionScheme as PartitionScheme
    from fabrichost.wire._descriptions import ServiceDescription as ServiceDescription
    from fabrichost.wire._endpoints import endpoints_address as endpoints_address
    from fabrichost.wire._endpoints import endpoints_of as endpoints_of
    from fabrichost.wire._endpoints import listener_address as listener_address
    from fabrichost.wire._http import CREATE_HEADER as CREATE_HEADER
    from fabrichost.wire._http import PROVISION_HEADER as PROVISION_HEADER
    from fabrichost.wire._http import SERVICE_FABRIC_VERSION as SERVICE_FABRIC_VERSION
    from fabrichost.wire._http import STATUS_OF as STATUS_OF
    from fabrichost.wire._http import error_answer as error_answer
    from fabrichost.wire._http import error_from_answer as error_from_answer
    from fabrichost.wire._json_text import parse_json_text as parse_json_text
    from fabrichost.wire._limits import MAX_INSTANCE_INPUT_BYTES as MAX_INSTANCE_INPUT_BYTES
    from fabrichost.wire._limits import check_instance_input as check_instance_input
    from fabrichost.wire._limits import instance_input_size as instance_input_size
    from fabrichost.wire._names import DOT_SEGMENT_RULE as DOT_SEGMENT_RULE
    from fabrichost.wire._names import INSTANCE_ID_RULE as INSTANCE_ID_RULE
    from fabrichost.wire._names import dot_segment as dot_segment
    from fabrichost.wire._names import id_to_name as id_to_name
    from fabrichost.wire._names import is_valid_instance_id as is_valid_instance_id
    from fabrichost.wire._names import name_to_id as name_to_id
    from fabrichost.wire._record import AGENT_FILE as AGENT_FILE
    from fabrichost.wire._record import ENV_STATE_DIR as ENV_STATE_DIR
    from fabrichost.wire._record import TOKEN_FILE as TOKEN_FILE
    from fabrichost.wire._record import AgentRecord as AgentRecord
    from fabrichost.wire._record import read_token as read_token
    from fabrichost.wire._record import resolve_state_dir as resolve_state_dir
    from fabrichost.wire._vocabulary import IfExists as IfExists
    from fabrichost.wire._vocabulary import InstanceStatus as InstanceStatus

# Strategy: each name is imported from its module on first use (PEP 562), so a client that
# reads agent.json and sends one query does not import the service descriptions, the JSON
# rules and the limits (docs/PERFORMANCE.md: a CLI query's start-up).
_HOME: dict[str, str] = {
    "parse_service_description": "fabrichost.wire._description_json",
    "ServiceKind": "fabrichost.protocol",
    "service_description_json": "fabrichost.wire._description_json",
    "INT64_MAX": "fabrichost.wire._descriptions",
    "INT64_MIN": "fabrichost.wire._descriptions",
    "MAX_PARTITIONS": "fabrichost.wire._descriptions",
    "MAX_REPLICAS": "fabrichost.wire._descriptions",
    "ActivationMode": "fabrichost.wire._descriptions",
    "PartitionScheme": "fabrichost.wire._descriptions",
    "ServiceDescription": "fabrichost.wire._descriptions",
    "endpoints_address": "fabrichost.wire._endpoints",
    "endpoints_of": "fabrichost.wire._endpoints",
    "listener_address": "fabrichost.wire._endpoints",
    "CREATE_HEADER": "fabrichost.wire._http",
    "PROVISION_HEADER": "fabrichost.wire._http",
    "SERVICE_FABRIC_VERSION": "fabrichost.wire._http",
    "STATUS_OF": "fabrichost.wire._http",
    "error_answer": "fabrichost.wire._http",
    "error_from_answer": "fabrichost.wire._http",
    "parse_json_text": "fabrichost.wire._json_text",
    "MAX_INSTANCE_INPUT_BYTES": "fabrichost.wire._limits",
    "check_instance_input": "fabrichost.wire._limits",
    "instance_input_size": "fabrichost.wire._limits",
    "DOT_SEGMENT_RULE": "fabrichost.wire._names",
    "INSTANCE_ID_RULE": "fabrichost.wire._names",
    "dot_segment": "fabrichost.wire._names",
    "id_to_name": "fabrichost.wire._names",
    "is_valid_instance_id": "fabrichost.wire._names",
    "name_to_id": "fabrichost.wire._names",
    "AGENT_FILE": "fabrichost.wire._record",
    "ENV_STATE_DIR": "fabrichost.wire._record",
    "TOKEN_FILE": "fabrichost.wire._record",
    "AgentRecord": "fabrichost.wire._record",
    "read_token": "fabrichost.wire._record",
    "resolve_state_dir": "fabrichost.wire._record",
    "IfExists": "fabrichost.wire._vocabulary",
    "InstanceStatus": "fabrichost.wire._vocabulary",
}


__all__ = (
    "AGENT_FILE",
    "CREATE_HEADER",
    "DOT_SEGMENT_RULE",
    "ENV_STATE_DIR",
    "INSTANCE_ID_RULE",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_INSTANCE_INPUT_BYTES",
    "MAX_PARTITIONS",
    "MAX_REPLICAS",
    "PROVISION_HEADER",
    "SERVICE_FABRIC_VERSION",
    "STATUS_OF",
    "TOKEN_FILE",
    "ActivationMode",
    "AgentRecord",
    "IfExists",
    "InstanceStatus",
    "PartitionScheme",
    "ServiceDescription",
    "ServiceKind",
    "check_instance_input",
    "dot_segment",
    "endpoints_address",
    "endpoints_of",
    "error_answer",
    "error_from_answer",
    "id_to_name",
    "instance_input_size",
    "is_valid_instance_id",
    "listener_address",
    "name_to_id",
    "parse_json_text",
    "parse_service_description",
    "read_token",
    "resolve_state_dir",
    "service_description_json",
)


def __getattr__(name: str) -> object:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'fabrichost.wire' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
