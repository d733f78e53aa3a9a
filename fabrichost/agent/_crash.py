"""Crash points: the agent kills itself with SIGKILL at a named step of a create.

For crash tests: ``FABRICHOST_CRASH_AT=<point>`` in the agent's environment makes it die at that
exact step, so "kill -9 before the commit" and "kill -9 after the commit" are tested
deterministically, not by luck of timing. The points are listed in :data:`POINTS`; without the
variable this is one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Final

ENV: Final = "FABRICHOST_CRASH_AT"
POINTS: Final = (
    "instance-claimed",  # the ID is taken in memory, nothing is committed yet
    "instance-committed",  # the instance and its request id are committed, no service yet
    "service-committed",  # the service and its placement are committed, no process yet
    "service-activated",  # the processes are started, the answer is not sent yet
    "application-committed",  # an application and its DefaultServices are committed
)


def crash_point(name: str) -> None:
    """Die here with SIGKILL if the environment asks for this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
