"""Where replicas go: a partition's replicas on distinct nodes, balanced by replica count.

Pure functions; placement calls them with the nodes that are up and the current load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

EVERY_NODE = -1  # StatelessService InstanceCount="-1": one instance on every node


@dataclass(frozen=True, slots=True)
class PlacementResult:
    """The nodes chosen for one partition, and how many replicas did not fit."""

    nodes: tuple[str, ...]
    missing: int


def choose_nodes(
    up_nodes: Sequence[str],
    load: Mapping[str, int],
    wanted: int,
    *,
    exclude: frozenset[str] = frozenset(),
    avoid: frozenset[str] = frozenset(),
) -> PlacementResult:
    """Choose ``wanted`` distinct nodes for one partition's replicas.

    The least loaded nodes win; ties go to the node listed first, so placement is deterministic.
    ``wanted == EVERY_NODE`` means every up node. Nodes in ``exclude`` already hold a replica of
    the partition and are never chosen twice. Nodes in ``avoid`` (an activation for the partition
    just failed there) come after every other node, whatever their load: they are chosen only
    when no other node fits. When fewer nodes are available than wanted, the result holds what
    fits and ``missing`` says how many replicas could not be placed.
    """
    candidates = [n for n in up_nodes if n not in exclude]
    if wanted == EVERY_NODE:
        return PlacementResult(tuple(candidates), 0)
    if wanted < 0:
        raise ValueError(f"replica count must be -1 or non-negative, not {wanted}")
    order = {name: i for i, name in enumerate(up_nodes)}
    ranked = sorted(candidates, key=lambda n: (n in avoid, load.get(n, 0), order[n]))
    chosen = tuple(ranked[:wanted])
    return PlacementResult(chosen, wanted - len(chosen))
