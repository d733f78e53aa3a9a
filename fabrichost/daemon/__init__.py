"""Running the agent as a process: ``serve`` (the cluster behind its HTTP API), ``up`` in the
background, ``down``, and ``python -m fabrichost.daemon`` (what ``up`` starts).

This is the one place that composes the agent and its HTTP API, so ``fabrichost.agent`` never
imports ``fabrichost.api``.
"""

from __future__ import annotations

import typing

from fabrichost.daemon._control import Started as Started
from fabrichost.daemon._control import running_agent as running_agent
from fabrichost.daemon._control import start_agent as start_agent
from fabrichost.daemon._control import start_background as start_background
from fabrichost.daemon._control import stop_background as stop_background
from fabrichost.daemon._statedir import LOG_FILE as LOG_FILE
from fabrichost.daemon._statedir import StateDirLock as StateDirLock
from fabrichost.daemon._statedir import read_node_count as read_node_count

if typing.TYPE_CHECKING:
    from fabrichost.api import uid_of as uid_of
    from fabrichost.daemon._foreground import main as main
    from fabrichost.daemon._serve import listen as listen
    from fabrichost.daemon._serve import serve as serve

__all__ = (
    "LOG_FILE",
    "Started",
    "StateDirLock",
    "listen",
    "main",
    "read_node_count",
    "running_agent",
    "serve",
    "start_agent",
    "start_background",
    "stop_background",
    "uid_of",
)


def __getattr__(name: str) -> object:
    # Strategy: what needs the agent and its HTTP server is loaded on first use (PEP 562), so a
    # command that only starts, finds or stops an agent (`up`, `status`, `down`) does not pay
    # for importing them.
    value: object
    if name == "uid_of":
        from fabrichost.api import uid_of as value
    elif name == "main":
        from fabrichost.daemon._foreground import main as value
    elif name in ("listen", "serve"):
        from fabrichost.daemon import _serve

        value = getattr(_serve, name)
    else:
        raise AttributeError(f"module 'fabrichost.daemon' has no attribute {name!r}")
    globals()[name] = value
    return value
