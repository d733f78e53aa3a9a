"""Names and the ids that stand for them in URLs, shared by the agent and its clients.

Entity ids in paths follow Service Fabric: an application ``fabric:/App1`` is ``App1``; a service
``fabric:/App1/ServiceA`` is ``App1~ServiceA``. Singleton instance IDs have a rule of their own,
enforced by the agent and checked by the client and the command line before they send one.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote

from fabrichost.errors import ApiError

INSTANCE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}")
INSTANCE_ID_RULE: Final = (
    "1-256 characters, letters, digits and ._:@- only, starting with a letter or digit"
)


def is_valid_instance_id(instance_id: str) -> bool:
    return INSTANCE_ID_PATTERN.fullmatch(instance_id) is not None


def name_to_id(name: str) -> str:
    """``fabric:/App1/ServiceA`` -> ``App1~ServiceA``, quoted for use as one path segment."""
    return quote(name.removeprefix("fabric:/").replace("/", "~"), safe="~")


def id_to_name(entity_id: str) -> str:
    """``App1~ServiceA`` -> ``fabric:/App1/ServiceA``; a name where an id belongs is an error."""
    if not entity_id or entity_id.startswith("fabric:"):
        raise ApiError(
            f"{entity_id!r} is not an entity id: an id is a name without 'fabric:/', with '~' "
            "for '/' (fabric:/App1/ServiceA is App1~ServiceA)",
            code="FABRIC_E_INVALID_NAME_URI",
        )
    return "fabric:/" + entity_id.replace("~", "/")
