"""The Python client of the agent's HTTP API (what the CLI, the demo and tests use).

``import fabrichost.client`` loads the standard library's sockets and the wire vocabulary only:
nothing of the agent, the HTTP server or the manifest parser, and not httpx (imported only when a
caller gives an httpx transport).
"""

from __future__ import annotations

from fabrichost.client._client import Created as Created
from fabrichost.client._client import Deployed as Deployed
from fabrichost.client._client import FabricClient as FabricClient
from fabrichost.client._health import HEALTH_ENTITIES as HEALTH_ENTITIES
from fabrichost.client._instances import FINAL_STATUSES as FINAL_STATUSES
from fabrichost.client._instances import IF_EXISTS_POLICIES as IF_EXISTS_POLICIES
from fabrichost.client._instances import RUNTIME_STATUSES as RUNTIME_STATUSES
from fabrichost.client._instances import check_new_instance_id as check_new_instance_id
from fabrichost.client._upgrade import FINISHED_UPGRADE_STATES as FINISHED_UPGRADE_STATES
from fabrichost.client._upgrade import UPGRADE_MODES as UPGRADE_MODES
from fabrichost.client._upgrade import UpgradeTimeouts as UpgradeTimeouts

__all__ = (
    "FINAL_STATUSES",
    "FINISHED_UPGRADE_STATES",
    "HEALTH_ENTITIES",
    "IF_EXISTS_POLICIES",
    "RUNTIME_STATUSES",
    "UPGRADE_MODES",
    "Created",
    "Deployed",
    "FabricClient",
    "UpgradeTimeouts",
    "check_new_instance_id",
)
