"""Names and the ids that stand for them in URLs, shared by the agent and its clients.

Entity ids in paths follow Service Fabric: an application ``fabric:/App1`` is ``App1``; a service
``fabric:/App1/ServiceA`` is ``App1~ServiceA``. Singleton instance IDs have a rule of their own,
enforced by the agent and checked by the client and the command line before they send one.

A name is a URI, so a ``.`` or ``..`` segment (also percent-encoded: ``%2e``) would be resolved
away by anything that normalises it (``fabric:/a/b/../c`` is ``fabric:/a/c``; an id ``..`` in a
URL path climbs out of its route): such names are refused, by the agent and the command line.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, unquote

from fabrichost.errors import ApiError

INSTANCE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}")
INSTANCE_ID_RULE: Final = (
    "1-256 characters, letters, digits and ._:@- only, starting with a letter or digit"
)

DOT_SEGMENT_RULE: Final = (
    "a segment cannot be '.' or '..' (nor their percent-encoded forms such as '%2e%2e'): "
    "URIs resolve dot segments, so the name would stand for another one"
)


def dot_segment(name: str) -> str | None:
    """The first segment of ``name`` that is ``.`` or ``..`` once percent-decoded, else None.

    >>> dot_segment("fabric:/a/b/../c"), dot_segment("fabric:/%2E%2e"), dot_segment("fabric:/a.b")
    ('..', '%2E%2e', None)
    """
    for segment in name.removeprefix("fabric:/").split("/"):
        # One decoding, as a URI normaliser does: "%252e" is the text "%2e", not a dot.
        if unquote(segment) in (".", ".."):
            return segment
    return None


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
