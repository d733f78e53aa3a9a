from __future__ import annotations

import pytest

from fabrichost.agent._node_choice import EVERY_NODE, choose_nodes

NODES = ("_Node_0", "_Node_1", "_Node_2")


def test_replicas_of_a_partition_go_to_distinct_nodes() -> None:
    result = choose_nodes(NODES, {}, 3)
    assert sorted(result.nodes) == sorted(NODES)
    assert result.missing == 0


def test_least_loaded_nodes_are_chosen_first() -> None:
    result = choose_nodes(NODES, {"_Node_0": 5, "_Node_1": 1, "_Node_2": 3}, 2)
    assert result.nodes == ("_Node_1", "_Node_2")


def test_ties_go_to_the_node_listed_first() -> None:
    assert choose_nodes(NODES, {}, 1).nodes == ("_Node_0",)


def test_too_few_nodes_places_what_fits_and_reports_the_rest() -> None:
    result = choose_nodes(NODES[:1], {}, 3)
    assert result.nodes == ("_Node_0",)
    assert result.missing == 2


def test_every_node_means_one_per_up_node() -> None:
    result = choose_nodes(NODES, {"_Node_2": 9}, EVERY_NODE)
    assert result.nodes == NODES
    assert result.missing == 0


def test_excluded_nodes_already_hold_a_replica_of_the_partition() -> None:
    result = choose_nodes(NODES, {}, 2, exclude=frozenset({"_Node_0"}))
    assert result.nodes == ("_Node_1", "_Node_2")


def test_balancing_over_many_partitions_spreads_load_evenly() -> None:
    load: dict[str, int] = {}
    for _ in range(10):
        for node in choose_nodes(NODES, load, 1).nodes:
            load[node] = load.get(node, 0) + 1
    assert sorted(load.values()) == [3, 3, 4]


def test_negative_counts_other_than_every_node_are_refused() -> None:
    with pytest.raises(ValueError, match="-1 or non-negative"):
        choose_nodes(NODES, {}, -2)
