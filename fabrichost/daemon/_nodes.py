"""The node count an agent starts with: asked for (``--nodes``), else recorded, else the default.

``cluster.json`` records it on every start, so ``up`` without ``--nodes`` keeps the count a state
directory had. A state directory from before that file existed is judged by the highest node its
store names. A different count resizes the cluster like compose's ``--scale``: new nodes start
empty and up; removed nodes' replicas are placed again on the others when the cluster restores.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import TYPE_CHECKING

from fabrichost.daemon._statedir import read_node_count, write_node_count

if TYPE_CHECKING:
    from pathlib import Path

    from fabrichost.agent import AgentSettings, Persistence

log = logging.getLogger(__name__)

_NODE_NAME = re.compile(r"_Node_(\d+)")


def recorded_node_count(state_dir: Path, persist: Persistence) -> int | None:
    """How many nodes the cluster of ``state_dir`` has (None: a fresh state directory)."""
    count = read_node_count(state_dir)
    if count is not None:
        return count
    numbers = [
        int(m.group(1)) for n in persist.node_names_in_use() if (m := _NODE_NAME.fullmatch(n))
    ]
    return max(numbers) + 1 if numbers else None


def settle_node_count(
    state_dir: Path, persist: Persistence, settings: AgentSettings, nodes: int | None
) -> AgentSettings:
    """The settings to run with: ``nodes`` if given, else the recorded count, else
    ``settings.node_count``; recorded (file and store) before the cluster is built."""
    recorded = recorded_node_count(state_dir, persist)
    count = nodes if nodes is not None else (recorded or settings.node_count)
    if recorded is not None and count != recorded:
        log.warning(
            "the cluster of %s had %d node(s); it now has %d (--nodes)", state_dir, recorded, count
        )
    known = persist.node_states()
    for i in range(count):
        if f"_Node_{i}" not in known:
            persist.node_saved(f"_Node_{i}", True)
    for name, up in known.items():
        m = _NODE_NAME.fullmatch(name)
        if m and int(m.group(1)) >= count and not up:
            persist.node_saved(name, True)  # a removed node that comes back later comes back up
    write_node_count(state_dir, count)
    return dataclasses.replace(settings, node_count=count)
