"""The rule for singleton instance IDs, shared by the agent (which enforces it) and the client and
command line (which refuse a bad ID before sending it)."""

from __future__ import annotations

import re
from typing import Final

INSTANCE_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,255}")
INSTANCE_ID_RULE: Final = (
    "1-256 characters, letters, digits and ._:@- only, starting with a letter or digit"
)


def is_valid_instance_id(instance_id: str) -> bool:
    return INSTANCE_ID_PATTERN.fullmatch(instance_id) is not None
