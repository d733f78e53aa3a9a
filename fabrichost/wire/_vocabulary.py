"""Words of requests and answers that are not service descriptions: create policies and the
statuses of singleton instances (Durable Functions' spellings)."""

from __future__ import annotations

import enum


class IfExists(enum.StrEnum):
    """What a create does when its name is taken (``IfExists``, ``--if-exists``)."""

    FAIL = "fail"
    USE_EXISTING = "use-existing"
    REPLACE = "replace"


class InstanceStatus(enum.StrEnum):
    """A singleton instance's runtime status, spelled as Durable Functions spells it."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    TERMINATED = "Terminated"

    @property
    def active(self) -> bool:
        """Pending or Running: the instance's ID is taken by a live incarnation."""
        return self in (InstanceStatus.PENDING, InstanceStatus.RUNNING)
